import ParleyBase
import ParleyMediaAPI
import ParleyWire
import ParleyTransport

/// One outgoing track to one subscriber (mediasoup's Consumer). Its SSRC, sequence numbers and
/// timestamps are its own, so the subscriber sees one continuous stream whichever Producer feeds it.
public final class Consumer {
    public let id: String
    public let mid: String
    public let kind: MediaKind
    public let ssrc: UInt32
    public let rtxSSRC: UInt32
    unowned let transport: WebRtcTransport
    /// Codecs the subscriber accepted for this m-line, with their payload types on its side.
    let codecs: [RTPCodec]
    let midExtensionID: UInt8?
    let audioLevelExtensionID: UInt8?
    /// Numbers every packet transport-wide, so the subscriber's feedback drives our estimate.
    let transportWideCCExtensionID: UInt8?
    let midBytes: [UInt8]
    public private(set) var producer: Producer?
    private var payloadType: UInt8 = 0
    private var rtxPayloadType: UInt8?
    /// The subscriber's RFC 2198 payload type around our codec, if it takes redundant audio.
    private var redPayloadType: UInt8?
    private var clockRate: UInt32 = 90000
    var rewriter = RTPRewriter()
    /// VP8 picture numbering, continuous across source changes (nil for other codecs).
    private var vp8: VP8Rewriter?
    private var rtxSequence: UInt16 = UInt16.random(in: 0...UInt16.max)
    private(set) var waitingForKeyframe = false
    private var lastKeyframeAsk: Nanoseconds?
    /// Simulcast: the layer being forwarded (nil before the first keyframe), and the one wanted,
    /// switched to on its next keyframe.
    public private(set) var currentLayer: Int?
    public private(set) var targetLayer = 0
    /// What the viewport asks for, whether the publisher sends it now or not (it is asked to).
    public private(set) var desiredLayer = 0
    /// How large the subscriber shows this video (device pixels), when it said so; nil: as large
    /// as it comes.
    var viewport: (width: Int, height: Int)?
    /// The highest layer the subscriber's bandwidth leaves room for (the degradation ladder).
    var allocatedLayer = Int.max
    /// The highest VP8 temporal layer the subscriber's bandwidth leaves room for (a lower frame
    /// rate), and the one in force: a change takes effect at the next base-layer frame, which
    /// every frame after it can be decoded from.
    var allocatedTemporalLayer = Int.max
    public private(set) var temporalLayerLimit = Int.max
    /// No room even for the lowest layer: video paused, audio goes on.
    public internal(set) var pausedForBandwidth = false
    /// Checks in a row that found no room: a pause needs two (a passing dip is not worth a
    /// frozen picture and a keyframe to recover).
    var checksWithoutRoom = 0
    public private(set) var packetsSent: UInt32 = 0
    public private(set) var octetsSent: UInt32 = 0

    init(id: String, mid: String, kind: MediaKind, transport: WebRtcTransport, codecs: [RTPCodec],
         midExtensionID: UInt8?, audioLevelExtensionID: UInt8?, transportWideCCExtensionID: UInt8? = nil) {
        self.id = id
        self.mid = mid
        self.kind = kind
        self.transport = transport
        self.codecs = codecs
        // Packets are written with one-byte extension headers, which hold ids 1...14 only.
        self.midExtensionID = midExtensionID.flatMap { (1...14).contains($0) ? $0 : nil }
        self.audioLevelExtensionID = audioLevelExtensionID.flatMap { (1...14).contains($0) ? $0 : nil }
        self.transportWideCCExtensionID = transportWideCCExtensionID.flatMap { (1...14).contains($0) ? $0 : nil }
        self.midBytes = Array(mid.utf8.prefix(16))
        self.ssrc = UInt32.random(in: 1...UInt32.max)
        self.rtxSSRC = UInt32.random(in: 1...UInt32.max)
    }

    /// The subscriber's codec matching a producer's (same name; H.264 also same packetization mode).
    func matchingCodec(for codec: RTPCodec) -> RTPCodec? {
        codecs.first { candidate in
            guard candidate.name.lowercased() == codec.name.lowercased(), candidate.clockRate == codec.clockRate else { return false }
            if candidate.name.uppercased() == "H264" {
                return (candidate.parameter("packetization-mode") ?? "0") == (codec.parameter("packetization-mode") ?? "0")
            }
            return true
        }
    }

    func canConsume(_ producer: Producer) -> Bool {
        producer.kind == kind && matchingCodec(for: producer.codec) != nil
    }

    /// Starts (or switches) this consumer's source. Video waits for a keyframe, asked for now.
    @discardableResult
    func attach(to producer: Producer, now: Nanoseconds) -> Bool {
        guard let codec = matchingCodec(for: producer.codec) else { return false }
        detach()
        self.producer = producer
        producer.consumers.append(self)
        payloadType = codec.payloadType
        clockRate = codec.clockRate
        vp8 = CodecPayload.kind(ofCodecNamed: codec.name) == .vp8 ? (vp8 ?? VP8Rewriter()) : nil
        vp8?.switchSource()
        rtxPayloadType = codecs.first { $0.name.lowercased() == "rtx" && $0.associatedPayloadType == codec.payloadType }?.payloadType
        redPayloadType = MediaCapabilities.red(for: codec, in: codecs)?.payloadType
        rewriter.switchSource()
        waitingForKeyframe = kind == .video
        lastKeyframeAsk = nil
        currentLayer = producer.isSimulcast ? nil : 0
        desiredLayer = min(producer.desiredLayer(fitting: viewport), allocatedLayer)
        targetLayer = producer.sendingLayer(atMost: desiredLayer, now: now)
        return true
    }

    /// Chooses the layer to send from the viewport and what the publisher sends now; a change
    /// waits for that layer's keyframe (asked for by `keyframeOverdue`). Returns whether the
    /// target changed.
    @discardableResult
    func updateLayer(now: Nanoseconds) -> Bool {
        guard let producer, producer.isSimulcast else { return false }
        desiredLayer = min(producer.desiredLayer(fitting: viewport), allocatedLayer)
        let layer = producer.sendingLayer(atMost: desiredLayer, now: now)
        guard layer != targetLayer else { return false }
        targetLayer = layer
        if currentLayer != layer { lastKeyframeAsk = nil }
        return true
    }

    func detach() {
        if let producer { producer.consumers.removeAll { $0 === self } }
        producer = nil
    }

    var needsKeyframe: Bool { producer != nil && !pausedForBandwidth && (waitingForKeyframe || currentLayer != targetLayer) }

    /// Video stops for lack of bandwidth (or resumes, from a keyframe).
    func setPaused(_ paused: Bool) {
        guard paused != pausedForBandwidth else { return }
        pausedForBandwidth = paused
        if !paused {
            waitingForKeyframe = true
            lastKeyframeAsk = nil
        }
    }

    /// Rewrites and sends one packet of layer `layer` (0 without simulcast); returns true if it went out.
    func forward(_ packet: UnsafeRawBufferPointer, header: RTPHeader, layer: Int, isKeyframe: Bool, vp8 descriptor: VP8PayloadDescriptor? = nil,
                 audioLevel: UInt8?, now: Nanoseconds, output: any DatagramOutput) -> Bool {
        guard transport.isConnected, let address = transport.remoteAddress, !pausedForBandwidth else { return false }
        if layer != currentLayer {
            // Another simulcast layer: switch to it only if it is the wanted one, on a keyframe.
            guard layer == targetLayer, isKeyframe else { return false }
            if currentLayer != nil {
                rewriter.switchSource()
                vp8?.switchSource()
            }
            currentLayer = layer
            waitingForKeyframe = false
        } else if waitingForKeyframe {
            guard isKeyframe else { return false }
            waitingForKeyframe = false
        }
        if let descriptor, let temporal = descriptor.temporalLayer.map(Int.init) {
            if temporal == 0, descriptor.startOfPartition, descriptor.partitionID == 0 { temporalLayerLimit = allocatedTemporalLayer }
            if temporal > temporalLayerLimit {
                // A frame of a temporal layer left out: its numbers are taken out of the stream.
                rewriter.drop(sequence: header.sequenceNumber)
                vp8?.drop(descriptor)
                return false
            }
        }
        guard let (sequence, timestamp) = rewriter.rewrite(sequence: header.sequenceNumber, timestamp: header.timestamp, now: now, clockRate: clockRate) else {
            return false
        }
        let slot = output.reserveSlot()
        guard let length = write(packet, header: header, sequence: sequence, timestamp: timestamp, audioLevel: audioLevel, vp8: descriptor, retransmission: false,
                                 now: now, into: slot),
              let protected = transport.secure.protectRTP(slot.baseAddress!, length: length, capacity: slot.count) else { return false }
        output.commitSlot(length: protected, to: address)
        packetsSent &+= 1
        octetsSent &+= UInt32(header.payloadLength)
        return true
    }

    /// Answers a NACK from the subscriber out of the producer's retransmission buffer (RTX if negotiated).
    func retransmit(_ sequences: [UInt16], now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters) {
        guard let producer, let layer = currentLayer, layer < producer.encodings.count, let buffer = producer.encodings[layer].retransmissions,
              transport.isConnected, let address = transport.remoteAddress else { return }
        for outgoing in sequences.prefix(64) {
            guard let incoming = rewriter.incomingSequence(of: outgoing), let packet = buffer.packet(sequence: incoming),
                  let header = try? RTPHeader(parsing: packet) else { continue }
            let slot = output.reserveSlot()
            guard let length = write(packet, header: header, sequence: outgoing, timestamp: rewriter.outgoingTimestamp(of: header.timestamp),
                                     audioLevel: nil, retransmission: rtxPayloadType != nil, resend: true, now: now, into: slot),
                  let protected = transport.secure.protectRTP(slot.baseAddress!, length: length, capacity: slot.count) else { continue }
            output.commitSlot(length: protected, to: address)
            counters.retransmitted += 1
        }
    }

    /// Sends one padding-only packet on this consumer's RTX stream (bandwidth probing): numbered
    /// transport-wide like media, so the subscriber's feedback shows whether the path carries more.
    /// Returns its size, or nil when this consumer cannot pad (no RTX, not sending yet).
    func sendPadding(bytes: Int, now: Nanoseconds, output: any DatagramOutput) -> Int? {
        guard let rtxPayloadType, let id = transportWideCCExtensionID, packetsSent > 0, transport.isConnected,
              let address = transport.remoteAddress else { return nil }
        let padding = max(4, min(255, bytes - 20)) & ~3
        let slot = output.reserveSlot()
        guard 20 + padding + SRTPSession.maximumTrailer <= slot.count else { return nil }
        var offset = RTPHeader.writeFixed(into: slot, hasExtension: true, marker: false, payloadType: rtxPayloadType, sequenceNumber: rtxSequence,
                                          timestamp: rewriter.lastTimestamp, ssrc: rtxSSRC)
        rtxSequence &+= 1
        slot[0] |= 0x20  // padding
        let transportSequence = transport.sendHistory.nextSequence()
        slot.writeU16(0xBEDE, at: offset)
        slot.writeU16(1, at: offset + 2)
        slot[offset + 4] = id << 4 | 1
        slot.writeU16(transportSequence, at: offset + 5)
        slot[offset + 7] = 0
        offset += 8
        for index in 0..<padding { slot[offset + index] = 0 }
        slot[offset + padding - 1] = UInt8(padding)
        let length = offset + padding
        guard let protected = transport.secure.protectRTP(slot.baseAddress!, length: length, capacity: slot.count) else { return nil }
        transport.sendHistory.sent(transportSequence, size: length, at: now)
        output.commitSlot(length: protected, to: address)
        return length
    }

    /// Writes header (our SSRC, sequence, timestamp, payload type), our extensions, then the payload
    /// (VP8: renumbered). `retransmission`: as RTX; `resend`: a packet sent before, by either means.
    private func write(_ packet: UnsafeRawBufferPointer, header: RTPHeader, sequence: UInt16, timestamp: UInt32,
                       audioLevel: UInt8?, vp8 descriptor: VP8PayloadDescriptor? = nil, retransmission: Bool, resend: Bool = false, now: Nanoseconds,
                       into slot: UnsafeMutableRawBufferPointer) -> Int? {
        let extensionBytes = (midExtensionID != nil ? 1 + midBytes.count : 0) + (audioLevelExtensionID != nil && audioLevel != nil ? 2 : 0)
            + (transportWideCCExtensionID != nil ? 3 : 0)
        let extensionBlock = extensionBytes == 0 ? 0 : 4 + (extensionBytes + 3) / 4 * 4
        let extra = retransmission ? 2 : 0
        var payloadStart = header.payloadOffset, payloadLength = header.payloadLength
        var outPayloadType = payloadType
        var renumberRED = false
        if let incomingRED = producer?.redPayloadType, header.payloadType == incomingRED {
            if let redPayloadType {
                // Redundant audio as it came, its blocks renumbered for this subscriber's codec.
                outPayloadType = redPayloadType
                renumberRED = producer?.codec.payloadType != payloadType
            } else {
                // A subscriber without RED gets the primary block as plain audio.
                guard let primary = REDPayload.primary(in: UnsafeRawBufferPointer(rebasing: packet[payloadStart..<(payloadStart + payloadLength)])) else {
                    return nil
                }
                payloadStart += primary.offset
                payloadLength = primary.length
            }
        }
        let total = 12 + extensionBlock + extra + payloadLength
        guard total + SRTPSession.maximumTrailer <= slot.count else { return nil }
        var outSequence = sequence
        if retransmission {
            outSequence = rtxSequence
            rtxSequence &+= 1
        }
        var offset = RTPHeader.writeFixed(into: slot, hasExtension: extensionBlock > 0, marker: header.marker,
                                          payloadType: retransmission ? rtxPayloadType! : outPayloadType,
                                          sequenceNumber: outSequence, timestamp: timestamp, ssrc: retransmission ? rtxSSRC : ssrc)
        if extensionBlock > 0 {
            slot.writeU16(0xBEDE, at: offset)
            slot.writeU16(UInt16((extensionBlock - 4) / 4), at: offset + 2)
            var cursor = offset + 4
            if let id = midExtensionID, !midBytes.isEmpty {
                slot[cursor] = id << 4 | UInt8(midBytes.count - 1)
                for (index, byte) in midBytes.enumerated() { slot[cursor + 1 + index] = byte }
                cursor += 1 + midBytes.count
            }
            if let id = audioLevelExtensionID, let audioLevel {
                slot[cursor] = id << 4
                slot[cursor + 1] = audioLevel
                cursor += 2
            }
            if let id = transportWideCCExtensionID {
                let transportSequence = transport.sendHistory.nextSequence()
                slot[cursor] = id << 4 | 1
                slot.writeU16(transportSequence, at: cursor + 1)
                cursor += 3
                transport.sendHistory.sent(transportSequence, size: total, at: now)
            }
            while cursor < offset + extensionBlock { slot[cursor] = 0; cursor += 1 }
            offset += extensionBlock
        }
        if retransmission {
            slot.writeU16(sequence, at: offset)
            offset += 2
        }
        let payload = UnsafeRawBufferPointer(rebasing: packet[payloadStart..<(payloadStart + payloadLength)])
        let written = UnsafeMutableRawBufferPointer(rebasing: slot[offset..<(offset + payload.count)])
        written.copyMemory(from: payload)
        vp8?.rewrite(written, descriptor: descriptor, retransmission: resend)
        if renumberRED { REDPayload.setPayloadTypes(payloadType, in: written) }
        return offset + payload.count
    }

    /// A sender report for this stream, extrapolating the RTP clock to `now`.
    func senderReport(now: Nanoseconds, ntp: UInt64) -> SenderReport? {
        guard packetsSent > 0 else { return nil }
        let elapsedMilliseconds = (now &- rewriter.lastSentAt) / 1_000_000
        let rtpNow = rewriter.lastTimestamp &+ UInt32(truncatingIfNeeded: elapsedMilliseconds * UInt64(clockRate) / 1000)
        return SenderReport(ssrc: ssrc, ntpTimestamp: ntp, rtpTimestamp: rtpNow, packetCount: packetsSent, octetCount: octetsSent)
    }

    /// True when a video consumer waiting for its first keyframe should ask the publisher: at once,
    /// then every second until one arrives.
    func keyframeOverdue(now: Nanoseconds) -> Bool {
        guard needsKeyframe else { return false }
        if let lastKeyframeAsk, now < lastKeyframeAsk + .seconds(1) { return false }
        lastKeyframeAsk = now
        return true
    }
}
