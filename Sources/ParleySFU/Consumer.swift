import ParleyBase
import ParleyMediaAPI
import ParleyWire
import ParleyTransport

/// One outgoing track to one subscriber (mediasoup's Consumer): a sink of the Producer it is
/// attached to. Its sequence numbers and timestamps are its own, so the subscriber sees one
/// continuous stream whichever Producer feeds it; its `SendStream` numbers, encrypts and sends.
public final class Consumer {
    public let id: String
    public let mid: String
    public let kind: MediaKind
    /// Its subscriber's transport, for routing; packets go through `stream` alone.
    unowned let transport: WebRtcTransport
    let stream: SendStream
    public var ssrc: UInt32 { stream.ssrc }
    public var rtxSSRC: UInt32 { stream.rtxSSRC }
    /// Codecs the subscriber accepted for this m-line, with their payload types on its side.
    let codecs: [RTPCodec]
    let midExtensionID: UInt8?
    let audioLevelExtensionID: UInt8?
    /// Numbers every packet transport-wide, so the subscriber's feedback drives our estimate.
    let transportWideCCExtensionID: UInt8?
    let midBytes: [UInt8]
    /// The length of the header-extension block we write, without and with an audio level (nil:
    /// the subscriber takes none); worked out once, at attach.
    private let extensionBlockLength: (plain: Int, withLevel: Int?)
    public private(set) var producer: Producer?
    /// Audio: the CSRC its packets carry, naming the speaker in this slot (RFC 3550 §7.1, as a
    /// mixer names its sources), so a client tells speakers apart packet by packet.
    private var contributingSource: UInt32?
    private var payloadType: UInt8 = 0
    private var rtxPayloadType: UInt8?
    /// The subscriber's RFC 2198 payload type around our codec, if it takes redundant audio.
    private var redPayloadType: UInt8?
    private var clockRate: UInt32 = 90000
    /// VP8 picture numbering, continuous across source changes (nil for other codecs).
    private var vp8: VP8Rewriter?
    private(set) var waitingForKeyframe = false
    private var lastKeyframeAsk: Nanoseconds?
    /// Packets resent lately, so a NACK repeated within the interval is not answered twice.
    private var resends = ResendGuard()
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
    public var packetsSent: UInt32 { stream.packetsSent }

    init(id: String, mid: String, kind: MediaKind, transport: WebRtcTransport, codecs: [RTPCodec],
         midExtensionID: UInt8?, audioLevelExtensionID: UInt8?, transportWideCCExtensionID: UInt8? = nil) {
        self.id = id
        self.mid = mid
        self.kind = kind
        self.transport = transport
        self.stream = SendStream(path: transport.sendPath)
        self.codecs = codecs
        // Packets are written with one-byte extension headers, which hold ids 1...14 only.
        let writable = OneByteExtensionWriter.ids
        self.midExtensionID = midExtensionID.flatMap { writable.contains($0) ? $0 : nil }
        self.audioLevelExtensionID = audioLevelExtensionID.flatMap { writable.contains($0) ? $0 : nil }
        self.transportWideCCExtensionID = transportWideCCExtensionID.flatMap { writable.contains($0) ? $0 : nil }
        self.midBytes = OneByteExtensionWriter.elementBytes(of: mid)
        // The extension block's layout is the same for every packet of this subscriber, but for
        // the audio level, which only audio packets that carry one have.
        let writesMid = self.midExtensionID != nil && !midBytes.isEmpty, writesSequence = self.transportWideCCExtensionID != nil
        let elements = (writesMid ? 1 : 0) + (writesSequence ? 1 : 0), dataBytes = (writesMid ? midBytes.count : 0) + (writesSequence ? 2 : 0)
        self.extensionBlockLength = (OneByteExtensionWriter.blockLength(elements: elements, dataBytes: dataBytes),
                                     self.audioLevelExtensionID == nil ? nil : OneByteExtensionWriter.blockLength(elements: elements + 1, dataBytes: dataBytes + 1))
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
        guard take(producer, now: now) else { return false }
        producer.sinks.append(.subscriber(self))
        return true
    }

    /// A speaker slot (an audio consumer) starts carrying `producer`: not one of its sinks, its
    /// packets come through the meeting's `SpeakerFanout`; the numbering continues across.
    func takeSpeakerSlot(for producer: Producer, now: Nanoseconds) -> Bool {
        take(producer, now: now)
    }

    private func take(_ producer: Producer, now: Nanoseconds) -> Bool {
        guard let codec = matchingCodec(for: producer.codec) else { return false }
        detach()
        self.producer = producer
        contributingSource = kind == .audio ? producer.sourceID : nil
        payloadType = codec.payloadType
        clockRate = codec.clockRate
        vp8 = CodecPayload.kind(ofCodecNamed: codec.name) == .vp8 ? (vp8 ?? VP8Rewriter()) : nil
        vp8?.switchSource()
        rtxPayloadType = codecs.first { $0.name.lowercased() == "rtx" && $0.associatedPayloadType == codec.payloadType }?.payloadType
        redPayloadType = MediaCapabilities.red(for: codec, in: codecs)?.payloadType
        stream.numbering.switchSource()
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
        if let producer { producer.sinks.removeAll { $0.consumer === self } }
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

    /// What to do with one packet of its producer; changes nothing (`forward` applies it).
    func decide(_ packet: IncomingPacket, now: Nanoseconds) -> ForwardingDecision {
        guard stream.path.address != nil else { return .drop(.notSending) }
        guard !pausedForBandwidth else { return .drop(.pausedForBandwidth) }
        if packet.layer != currentLayer {
            // Another simulcast layer: switch to it only if it is the wanted one, on a keyframe.
            if packet.layer == targetLayer, packet.isKeyframe { return .switchLayer(to: packet.layer) }
            return keyframeAskDue(now: now) ? .requestKeyframe : .drop(.otherLayer)
        }
        if waitingForKeyframe, !packet.isKeyframe { return keyframeAskDue(now: now) ? .requestKeyframe : .drop(.waitingForKeyframe) }
        if let temporal = packet.temporalLayer, temporal > (packet.startsBaseLayerFrame ? allocatedTemporalLayer : temporalLayerLimit) {
            return .drop(.temporalLayerFiltered)
        }
        return .forward
    }

    /// Decides on one packet of its producer and acts on it: rewrites and sends it, or takes a
    /// dropped frame's numbers out of the stream, or asks for a keyframe. True if it went out.
    func forward(_ packet: IncomingPacket, now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters) -> Bool {
        switch decide(packet, now: now) {
        case .drop(.temporalLayerFiltered):
            // A frame of a temporal layer left out: its numbers are taken out of the stream.
            stream.numbering.drop(sequence: packet.header.sequenceNumber)
            if let descriptor = packet.vp8 { vp8?.drop(descriptor) }
            return false
        case .drop:
            return false
        case .requestKeyframe:
            if keyframeOverdue(now: now) { producer?.requestKeyframe(now: now, output: output, counters: &counters) }
            return false
        case .switchLayer(let layer):
            if currentLayer != nil {
                stream.numbering.switchSource()
                vp8?.switchSource()
            }
            currentLayer = layer
            waitingForKeyframe = false
        case .forward:
            waitingForKeyframe = false
        }
        if packet.startsBaseLayerFrame { temporalLayerLimit = allocatedTemporalLayer }
        let header = packet.header
        guard let address = stream.path.address,
              let (sequence, timestamp) = stream.numbering.rewrite(sequence: header.sequenceNumber, timestamp: header.timestamp, now: now, clockRate: clockRate) else {
            return false
        }
        let slot = output.reserveSlot()
        guard let length = write(packet.bytes, header: header, red: packet.isRED ? .some(packet.redPrimary) : nil, sequence: sequence, timestamp: timestamp,
                                 audioLevel: packet.audioLevel, vp8: packet.vp8, retransmission: false, now: now, into: slot),
              stream.send(slot, length: length, repair: false, to: address, output: output, counters: &counters) != nil else { return false }
        stream.countMedia(payloadBytes: header.payloadLength)
        return true
    }

    /// Answers a NACK from the subscriber out of the producer's retransmission buffer (RTX if negotiated).
    func retransmit(_ sequences: [UInt16], now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters) {
        guard let producer, let layer = currentLayer, layer < producer.encodings.count, let buffer = producer.encodings[layer].retransmissions,
              let address = stream.path.address else { return }
        for outgoing in sequences.prefix(64) {
            guard let incoming = stream.numbering.incomingSequence(of: outgoing), let packet = buffer.packet(sequence: incoming),
                  let header = try? RTPHeader(parsing: packet) else { continue }
            guard resends.allow(outgoing, now: now) else {
                counters.resendsHeldBack += 1
                continue
            }
            let slot = output.reserveSlot()
            guard let length = write(packet, header: header, red: nil, sequence: outgoing, timestamp: stream.numbering.outgoingTimestamp(of: header.timestamp),
                                     audioLevel: nil, retransmission: rtxPayloadType != nil, resend: true, now: now, into: slot),
                  stream.send(slot, length: length, repair: rtxPayloadType != nil, to: address, output: output, counters: &counters) != nil else { continue }
            counters.retransmitted += 1
        }
    }

    /// Sends one padding-only packet on this consumer's RTX stream (bandwidth probing): numbered
    /// transport-wide like media, so the subscriber's feedback shows whether the path carries more.
    /// Returns its size, or nil when this consumer cannot pad (no RTX, not sending yet).
    func sendPadding(bytes: Int, now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters) -> Int? {
        guard let rtxPayloadType, let id = transportWideCCExtensionID, stream.packetsSent > 0, let address = stream.path.address else { return nil }
        let padding = max(4, min(255, bytes - 20)) & ~3
        let slot = output.reserveSlot()
        let headerLength = 12 + OneByteExtensionWriter.blockLength(elements: 1, dataBytes: 2)
        guard headerLength + padding + SRTPSession.maximumTrailer <= slot.count else { return nil }
        let offset = RTPHeader.writeFixed(into: slot, hasExtension: true, marker: false, payloadType: rtxPayloadType, sequenceNumber: stream.nextRTXSequence(),
                                          timestamp: stream.numbering.lastTimestamp, ssrc: stream.rtxSSRC)
        slot[0] |= 0x20  // padding
        let length = headerLength + padding
        var extensions = OneByteExtensionWriter(into: slot, at: offset)
        TransportWideSequenceExtension(sequence: stream.nextTransportSequence(size: length, now: now)).write(id: id, into: &extensions)
        let end = extensions.finish()
        for index in end..<(end + padding) { slot[index] = 0 }
        slot[end + padding - 1] = UInt8(padding)
        guard stream.send(slot, length: length, repair: true, to: address, output: output, counters: &counters) != nil else { return nil }
        return length
    }

    /// Writes header (our SSRC, sequence, timestamp, payload type), our extensions, then the payload
    /// (VP8: renumbered). `red`: for RED audio, where its primary block lies (nil inside when the
    /// blocks did not parse). `retransmission`: as RTX; `resend`: a packet sent before, by either means.
    private func write(_ packet: UnsafeRawBufferPointer, header: RTPHeader, red: (offset: Int, length: Int)??, sequence: UInt16, timestamp: UInt32,
                       audioLevel: UInt8?, vp8 descriptor: VP8PayloadDescriptor? = nil, retransmission: Bool, resend: Bool = false, now: Nanoseconds,
                       into slot: UnsafeMutableRawBufferPointer) -> Int? {
        let writesMid = midExtensionID != nil && !midBytes.isEmpty
        let extensionBlock = audioLevel == nil ? extensionBlockLength.plain : extensionBlockLength.withLevel ?? extensionBlockLength.plain
        let extra = retransmission ? 2 : 0
        var payloadStart = header.payloadOffset, payloadLength = header.payloadLength
        var outPayloadType = payloadType
        var renumberRED = false
        if let red {
            if let redPayloadType {
                // Redundant audio as it came, its blocks renumbered for this subscriber's codec.
                outPayloadType = redPayloadType
                renumberRED = producer?.codec.payloadType != payloadType
            } else {
                // A subscriber without RED gets the primary block as plain audio.
                guard let primary = red else { return nil }
                payloadStart += primary.offset
                payloadLength = primary.length
            }
        }
        let total = 12 + (contributingSource == nil ? 0 : 4) + extensionBlock + extra + payloadLength
        guard total + SRTPSession.maximumTrailer <= slot.count else { return nil }
        var offset = RTPHeader.writeFixed(into: slot, hasExtension: extensionBlock > 0, marker: header.marker,
                                          payloadType: retransmission ? rtxPayloadType! : outPayloadType,
                                          sequenceNumber: retransmission ? stream.nextRTXSequence() : sequence, timestamp: timestamp,
                                          ssrc: retransmission ? stream.rtxSSRC : stream.ssrc, contributingSource: contributingSource)
        if extensionBlock > 0 {
            var extensions = OneByteExtensionWriter(into: slot, at: offset)
            if writesMid, let id = midExtensionID { extensions.append(id: id, bytes: midBytes) }
            if let id = audioLevelExtensionID, let audioLevel { AudioLevelExtension(byte: audioLevel).write(id: id, into: &extensions) }
            if let id = transportWideCCExtensionID {
                TransportWideSequenceExtension(sequence: stream.nextTransportSequence(size: total, now: now)).write(id: id, into: &extensions)
            }
            offset = extensions.finish()
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
        stream.senderReport(ntp: ntp, now: now, clockRate: clockRate)
    }

    /// True when a video consumer waiting for its first keyframe should ask the publisher: at once,
    /// then every second until one arrives. Counts as asking.
    func keyframeOverdue(now: Nanoseconds) -> Bool {
        guard keyframeAskDue(now: now) else { return false }
        lastKeyframeAsk = now
        return true
    }

    func keyframeAskDue(now: Nanoseconds) -> Bool {
        guard needsKeyframe else { return false }
        if let lastKeyframeAsk, now < lastKeyframeAsk + .seconds(1) { return false }
        return true
    }
}
