import Foundation
import ParleyBase
import ParleyMediaAPI
import ParleyWire
import ParleyTransport

/// One encoding of a Producer: its only stream, or one simulcast layer (lowest first, as offered).
public struct ProducerEncoding {
    public var rid: String?
    public var ssrc: UInt32?
    public var rtxSSRC: UInt32?
    public var statistics = ReceiveStatistics()
    public var nack = NACKGenerator()
    /// The last packets of this stream (video), to answer NACKs.
    var retransmissions: RetransmissionBuffer?
    /// The picture size its last keyframe announced (VP8), once one came.
    public var width: Int?
    public var height: Int?
    /// When its last packet came: a layer the publisher paused (or stopped sending) goes quiet.
    public var lastPacketAt: Nanoseconds?
    /// Bytes since the last rate sample, and the smoothed rate (bits per second).
    var bytesSinceSample = 0
    public internal(set) var bitrate = 0
    /// The same per VP8 temporal layer (TID 0, 1, 2), when the publisher sends temporal layers.
    var temporalBytesSinceSample = [0, 0, 0]
    var temporalBitrates = [0, 0, 0]
    /// The highest TID seen lately (nil: no temporal layers).
    public internal(set) var highestTemporalLayer: Int?
    var temporalLayerSeenAt: Nanoseconds = 0

    public init(rid: String? = nil, ssrc: UInt32? = nil, rtxSSRC: UInt32? = nil) {
        self.rid = rid; self.ssrc = ssrc; self.rtxSSRC = rtxSSRC
    }

    /// Sending now: a packet within the last second.
    func isActive(now: Nanoseconds) -> Bool {
        guard let lastPacketAt else { return false }
        return now &- lastPacketAt < 1_000_000_000
    }
}

/// One incoming track from a publisher (mediasoup's Producer): receives its RTP, keeps the
/// retransmission buffer and the reception statistics, and hands each packet to its Consumers.
public final class Producer {
    public let id: String
    public let kind: MediaKind
    public let mid: String
    /// What the publisher says the track is: "camera", "microphone", "screen", …
    public let source: String
    public let codec: RTPCodec
    public let codecKind: CodecPayload.Kind
    public let rtxPayloadType: UInt8?
    /// Audio with RFC 2198 redundancy: packets of this payload type wrap `codec`.
    public let redPayloadType: UInt8?
    public var encodings: [ProducerEncoding]
    public let audioLevelExtensionID: UInt8?
    unowned let transport: WebRtcTransport
    public internal(set) var consumers: [Consumer] = []
    var keyframeRequests = KeyframeRequestThrottle()
    private var firSequence: UInt8 = 0
    public private(set) var closed = false
    /// A host stopped this media: packets are counted and dropped, whatever the client sends.
    var blocked = false
    /// Audio: how loud it has been lately (active speaker).
    var speech = SpeechActivity()
    /// Simulcast: the layers (bit per index) the publisher was last told somebody receives.
    var announcedLayers: UInt64 = 0
    public let createdAt: Nanoseconds
    public var participantID: String { transport.participantID }

    init(id: String, kind: MediaKind, mid: String, source: String, codec: RTPCodec, rtxPayloadType: UInt8?, redPayloadType: UInt8? = nil,
         encodings: [ProducerEncoding], audioLevelExtensionID: UInt8?, transport: WebRtcTransport, now: Nanoseconds) {
        self.id = id
        self.kind = kind
        self.mid = mid
        self.source = source
        self.codec = codec
        self.codecKind = CodecPayload.kind(ofCodecNamed: codec.name)
        self.rtxPayloadType = rtxPayloadType
        self.redPayloadType = redPayloadType
        self.encodings = encodings.isEmpty ? [ProducerEncoding()] : encodings
        if kind == .video {
            for index in self.encodings.indices { self.encodings[index].retransmissions = RetransmissionBuffer() }
        }
        self.audioLevelExtensionID = audioLevelExtensionID
        self.transport = transport
        self.createdAt = now
    }

    /// Forwards one decrypted RTP packet of this producer to every consumer. Repairs (RTX) are
    /// turned back into the packet they carry, in place, first.
    func receive(_ packet: UnsafeMutableRawBufferPointer, header: RTPHeader, now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters) {
        if blocked {
            counters.dropped[.blocked] += 1
            return
        }
        var packet = packet
        var header = header
        var isRepair = false
        var index = encodings.firstIndex { $0.ssrc == header.ssrc }
        if index == nil, let repaired = encodings.firstIndex(where: { $0.rtxSSRC == header.ssrc }) {
            guard let unwrapped = unwrapRetransmission(packet, header: header, primarySSRC: encodings[repaired].ssrc) else {
                // Padding-only RTX: the publisher probing bandwidth.
                counters.dropped[.unroutable] += 1
                return
            }
            (packet, header) = unwrapped
            index = repaired
            isRepair = true
        }
        guard let index else {
            counters.dropped[.unroutable] += 1
            return
        }
        guard header.payloadType == codec.payloadType || (redPayloadType != nil && header.payloadType == redPayloadType), header.payloadLength > 0 else {
            counters.dropped[.unroutable] += 1
            return
        }
        // A packet that came before (a probe repeating it over RTX, a duplicate on the network)
        // is not forwarded again: subscribers would pay for it, and it would inflate the layer's rate.
        if kind == .video, !encodings[index].nack.received(header.sequenceNumber, now: now) {
            counters.dropped[.duplicate] += 1
            return
        }
        if isRepair { counters.repairsReceived += 1 }
        encodings[index].statistics.update(sequence: header.sequenceNumber, timestamp: header.timestamp, arrival: now, clockRate: codec.clockRate)
        encodings[index].lastPacketAt = now
        encodings[index].bytesSinceSample &+= header.payloadLength + 40
        let readable = UnsafeRawBufferPointer(packet)
        let payload = UnsafeRawBufferPointer(rebasing: readable[header.payloadOffset..<(header.payloadOffset + header.payloadLength)])
        let isKeyframe = kind == .video && CodecPayload.isKeyframe(codecKind, payload: payload)
        let vp8 = codecKind == .vp8 ? try? VP8PayloadDescriptor(parsing: payload) : nil
        if let temporal = vp8?.temporalLayer.map(Int.init), temporal < 3 {
            encodings[index].temporalBytesSinceSample[temporal] &+= header.payloadLength + 40
            if temporal >= encodings[index].highestTemporalLayer ?? 0 || now &- encodings[index].temporalLayerSeenAt > 2_000_000_000 {
                encodings[index].highestTemporalLayer = temporal
                encodings[index].temporalLayerSeenAt = now
            }
        }
        if isKeyframe {
            keyframeRequests.satisfied()
            if codecKind == .vp8, let size = CodecPayload.vp8KeyframeSize(payload) {
                encodings[index].width = size.width
                encodings[index].height = size.height
            }
        }
        var audioLevel: UInt8?
        if let audioLevelExtensionID {
            header.forEachExtension(in: readable) { id, offset, length in
                if id == audioLevelExtensionID, length >= 1 { audioLevel = readable[offset] }
            }
            if let audioLevel { speech.add(level: audioLevel) }
        }
        encodings[index].retransmissions?.store(readable, sequence: header.sequenceNumber)
        for consumer in consumers {
            if consumer.forward(readable, header: header, layer: index, isKeyframe: isKeyframe, vp8: vp8, audioLevel: audioLevel, now: now, output: output,
                                counters: &counters) {
                counters.rtpForwarded += 1
            }
        }
    }

    /// RFC 4588: an RTX payload is the original sequence number then the original payload. Rewrites
    /// the packet in place into the original (payload type, sequence number, SSRC) and re-reads it.
    private func unwrapRetransmission(_ packet: UnsafeMutableRawBufferPointer, header: RTPHeader, primarySSRC: UInt32?) -> (UnsafeMutableRawBufferPointer, RTPHeader)? {
        guard let primarySSRC, header.payloadLength > 2 else { return nil }
        let start = header.payloadOffset
        let originalSequence = UnsafeRawBufferPointer(packet).readU16(at: start)
        let originalLength = header.payloadLength - 2
        if let base = packet.baseAddress {
            (base + start).copyMemory(from: base + start + 2, byteCount: originalLength)
        }
        packet[0] &= ~0x20  // the padding went with the RTX payload's tail
        packet[1] = (packet[1] & 0x80) | codec.payloadType
        packet.writeU16(originalSequence, at: 2)
        packet.writeU32(primarySSRC, at: 8)
        let original = UnsafeMutableRawBufferPointer(rebasing: packet[0..<(start + originalLength)])
        guard let parsed = try? RTPHeader(parsing: UnsafeRawBufferPointer(original)) else { return nil }
        return (original, parsed)
    }

    /// Asks the publisher again for what it lost on the way here (video with `nack` negotiated).
    func sendNACKs(now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters) {
        guard kind == .video, !closed, codec.feedback.contains("nack") else { return }
        for index in encodings.indices {
            guard let ssrc = encodings[index].ssrc else { continue }
            let lost = encodings[index].nack.due(now: now)
            guard !lost.isEmpty else { continue }
            var bytes: [UInt8] = []
            GenericNACK(senderSSRC: transport.rtcpSSRC, mediaSSRC: ssrc, lost: lost).write(into: &bytes)
            transport.sendRTCP(bytes, output: output, counters: &counters)
            counters.nacksSent += 1
        }
    }

    /// Asks the publisher for a keyframe, at most once per throttle interval.
    func requestKeyframe(now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters) {
        guard kind == .video, !closed, keyframeRequests.request(now: now) else { return }
        sendPictureLossIndication(output: output, counters: &counters)
    }

    /// Sends a keyframe request that waited out the throttle.
    func pollKeyframeRequest(now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters) {
        guard !closed, keyframeRequests.poll(now: now) else { return }
        sendPictureLossIndication(output: output, counters: &counters)
    }

    /// PLI, or FIR (RFC 5104) for a publisher that negotiated only `ccm fir`.
    private func sendPictureLossIndication(output: any DatagramOutput, counters: inout PacketCounters) {
        var bytes: [UInt8] = []
        let usesFIR = !codec.feedback.contains("nack pli") && codec.feedback.contains("ccm fir")
        for encoding in encodings {
            guard let ssrc = encoding.ssrc else { continue }
            if usesFIR {
                firSequence &+= 1
                FullIntraRequest(senderSSRC: transport.rtcpSSRC, entries: [.init(ssrc: ssrc, sequenceNumber: firSequence)]).write(into: &bytes)
            } else {
                PictureLossIndication(senderSSRC: transport.rtcpSSRC, mediaSSRC: ssrc).write(into: &bytes)
            }
        }
        guard !bytes.isEmpty else { return }
        transport.sendRTCP(bytes, output: output, counters: &counters)
        counters.keyframeRequestsSent += 1
    }

    /// Samples each layer's rate (call every `interval`).
    func sampleBitrates(interval: Nanoseconds) {
        for index in encodings.indices {
            let measured = Double(encodings[index].bytesSinceSample * 8) * 1e9 / Double(interval)
            encodings[index].bitrate = Int(0.6 * Double(encodings[index].bitrate) + 0.4 * measured)
            encodings[index].bytesSinceSample = 0
            for temporal in 0..<3 {
                let measured = Double(encodings[index].temporalBytesSinceSample[temporal] * 8) * 1e9 / Double(interval)
                encodings[index].temporalBitrates[temporal] = Int(0.6 * Double(encodings[index].temporalBitrates[temporal]) + 0.4 * measured)
                encodings[index].temporalBytesSinceSample[temporal] = 0
            }
        }
    }

    /// How many temporal layers the publisher sends now (1 without temporal scalability). A
    /// layer gone quiet for two seconds no longer counts.
    func temporalLayerCount(now: Nanoseconds) -> Int {
        var count = 1
        for encoding in encodings {
            guard let highest = encoding.highestTemporalLayer, now &- encoding.temporalLayerSeenAt < 2_000_000_000 else { continue }
            count = max(count, highest + 1)
        }
        return count
    }

    /// What layer `layer` costs with temporal layers up to `temporal` of the `count` sent: the
    /// share measured on that layer (or any layer), else libwebrtc's split (60/20/20 %, 60/40 %).
    func bitrate(ofLayer layer: Int, temporal: Int, of count: Int) -> Int {
        let full = bitrate(ofLayer: layer)
        guard temporal < count - 1, temporal < 2 else { return full }
        let measured = encodings[layer].temporalBitrates.reduce(0, +) > 0 ? encodings[layer]
            : encodings.first { $0.temporalBitrates.reduce(0, +) > 0 }
        let share: Double
        if let rates = measured?.temporalBitrates {
            share = Double(rates[0...temporal].reduce(0, +)) / Double(rates.reduce(0, +))
        } else {
            share = [0.6, 0.8][temporal]
        }
        return Int(Double(full) * share)
    }

    /// What sending layer `layer` costs, bits per second: measured where it ever sent (a muted
    /// track costs nothing), else a guess from the layers measured (each layer about three times
    /// the one below), else a typical rate.
    func bitrate(ofLayer layer: Int) -> Int {
        let measured = encodings[layer].bitrate
        if measured > 0 || encodings[layer].lastPacketAt != nil || kind == .audio { return measured }
        if let known = encodings.indices.first(where: { encodings[$0].bitrate > 0 }) {
            let steps = layer - known
            return steps >= 0 ? encodings[known].bitrate * Int(pow(3.0, Double(steps))) : encodings[known].bitrate / Int(pow(3.0, Double(-steps)))
        }
        return kind == .audio ? 40_000 : [150_000, 500_000, 1_500_000, 3_000_000][min(layer, 3)]
    }

    /// Simulcast: more than one layer to choose from.
    public var isSimulcast: Bool { encodings.count > 1 }

    /// The layer a subscriber who shows this video in a `width`×`height` box (device pixels,
    /// fitted without cropping) needs (nil: as large as it comes): the lowest layer that fills the
    /// box in one dimension, which is as large as the picture is shown. Sizes not seen yet are
    /// guessed from the largest seen (layers halve, as offered); none seen: the top layer.
    func desiredLayer(fitting size: (width: Int, height: Int)?) -> Int {
        let top = encodings.count - 1
        guard let size else { return top }
        var reference: Int?
        for index in encodings.indices where encodings[index].width != nil { reference = index }
        guard let reference, let referenceWidth = encodings[reference].width, let referenceHeight = encodings[reference].height else { return top }
        for index in encodings.indices {
            var width = referenceWidth, height = referenceHeight
            if let known = encodings[index].width, let knownHeight = encodings[index].height {
                (width, height) = (known, knownHeight)
            } else if index < reference {
                (width, height) = (referenceWidth >> (reference - index), referenceHeight >> (reference - index))
            } else if index > reference {
                (width, height) = (referenceWidth << (index - reference), referenceHeight << (index - reference))
            }
            if width >= size.width || height >= size.height { return index }
        }
        return top
    }

    /// The layer to send instead of `desired` while some layers are quiet (paused by the
    /// publisher, or dropped by its encoder): the best sending one up to `desired`, else the
    /// lowest sending one, else `desired`.
    func sendingLayer(atMost desired: Int, now: Nanoseconds) -> Int {
        var best: Int?
        for index in encodings.indices where encodings[index].isActive(now: now) {
            if index <= desired { best = index } else if best == nil { return index }
        }
        return best ?? desired
    }

    func close() {
        closed = true
        for consumer in consumers { consumer.detach() }
        consumers.removeAll()
    }
}
