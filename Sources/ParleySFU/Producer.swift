import Foundation
import ParleyBase
import ParleyMediaAPI
import ParleyWire
import ParleyTransport

/// One incoming track from a publisher (mediasoup's Producer): its receive streams (one per
/// encoding) take its RTP, and each packet goes to its sinks (subscribers' Consumers).
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
    public var encodings: [ReceiveStream]
    public let audioLevelExtensionID: UInt8?
    /// Where its packets come from: a publisher's transport, or a pipe from another worker or SFU
    /// (a piped copy of a producer there, with its id).
    let origin: ProducerOrigin
    /// Where its packets go, in the order they were attached.
    var sinks: [ProducerSink] = []
    /// The subscribers among the sinks (not for the media path: it builds an array).
    public var consumers: [Consumer] { sinks.compactMap(\.consumer) }
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
    /// Audio: the CSRC naming this source in subscribers' speaker slots (random, never 0; a piped
    /// copy keeps its origin's).
    public let sourceID: UInt32
    public let participantID: String
    /// The participant as a number within its Router (speaker selection compares it per packet).
    let owner: Int
    /// A piped copy: what the origin reports of the layers that do not cross (whether the
    /// publisher sends them, what they cost), and how many temporal layers it sends.
    var originTemporalLayers: Int?

    convenience init(id: String, kind: MediaKind, mid: String, source: String, codec: RTPCodec, rtxPayloadType: UInt8?, redPayloadType: UInt8? = nil,
         encodings: [ReceiveStream], audioLevelExtensionID: UInt8?, transport: WebRtcTransport, now: Nanoseconds) {
        self.init(id: id, kind: kind, mid: mid, source: source, codec: codec, rtxPayloadType: rtxPayloadType, redPayloadType: redPayloadType,
                  encodings: encodings, audioLevelExtensionID: audioLevelExtensionID, origin: .publisher(transport),
                  participantID: transport.participantID, owner: transport.owner, sourceID: .random(in: 1...UInt32.max), now: now)
    }

    init(id: String, kind: MediaKind, mid: String, source: String, codec: RTPCodec, rtxPayloadType: UInt8?, redPayloadType: UInt8?,
         encodings: [ReceiveStream], audioLevelExtensionID: UInt8?, origin: ProducerOrigin, participantID: String, owner: Int, sourceID: UInt32,
         now: Nanoseconds) {
        self.id = id
        self.kind = kind
        self.mid = mid
        self.source = source
        self.codec = codec
        self.codecKind = CodecPayload.kind(ofCodecNamed: codec.name)
        self.rtxPayloadType = rtxPayloadType
        self.redPayloadType = redPayloadType
        self.encodings = encodings.isEmpty ? [ReceiveStream()] : encodings
        if kind == .video {
            for index in self.encodings.indices { self.encodings[index].retransmissions = RetransmissionBuffer() }
        }
        self.audioLevelExtensionID = audioLevelExtensionID
        self.origin = origin
        self.participantID = participantID
        self.owner = owner
        self.sourceID = sourceID
        self.createdAt = now
    }

    /// Forwards one decrypted RTP packet of encoding `layer` to every sink. A repair (RTX) is
    /// turned back into the packet it carries, in place, first.
    func receive(_ packet: UnsafeMutableRawBufferPointer, header: RTPHeader, layer: Int, isRepair: Bool, now: Nanoseconds, output: any DatagramOutput,
                 counters: inout PacketCounters) {
        if blocked {
            counters.dropped[.blocked] += 1
            return
        }
        var packet = packet
        var header = header
        if isRepair {
            guard let unwrapped = unwrapRetransmission(packet, header: header, primarySSRC: encodings[layer].ssrc) else {
                // Padding-only RTX: the publisher probing bandwidth.
                counters.dropped[.unroutable] += 1
                return
            }
            (packet, header) = unwrapped
        }
        guard header.payloadType == codec.payloadType || (redPayloadType != nil && header.payloadType == redPayloadType), header.payloadLength > 0 else {
            counters.dropped[.unroutable] += 1
            return
        }
        let incoming = IncomingPacket(UnsafeRawBufferPointer(packet), header: header, layer: layer, isRepair: isRepair, of: self)
        guard encodings[layer].receive(header, kind: kind, clockRate: codec.clockRate, temporalLayer: incoming.temporalLayer, now: now) else {
            counters.dropped[.duplicate] += 1
            return
        }
        if isRepair { counters.repairsReceived += 1 }
        if incoming.isKeyframe {
            keyframeRequests.satisfied()
            if codecKind == .vp8, let size = CodecPayload.vp8KeyframeSize(incoming.payload) {
                encodings[layer].width = size.width
                encodings[layer].height = size.height
            }
        }
        if let audioLevel = incoming.audioLevel { speech.add(level: audioLevel) }
        encodings[layer].retransmissions?.store(incoming.bytes, sequence: header.sequenceNumber)
        for sink in sinks {
            switch sink {
            case .subscriber(let consumer):
                if consumer.forward(incoming, now: now, output: output, counters: &counters) { counters.rtpForwarded += 1 }
            case .speakers(let fanout):
                fanout.forward(incoming, of: self, owner: owner, now: now, output: output, counters: &counters)
            case .pipe(let pipe):
                pipe.forward(incoming, now: now, output: output, counters: &counters)
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
            GenericNACK(senderSSRC: origin.rtcpSSRC, mediaSSRC: ssrc, lost: lost).write(into: &bytes)
            origin.sendRTCP(bytes, output: output, counters: &counters)
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
                FullIntraRequest(senderSSRC: origin.rtcpSSRC, entries: [.init(ssrc: ssrc, sequenceNumber: firSequence)]).write(into: &bytes)
            } else {
                PictureLossIndication(senderSSRC: origin.rtcpSSRC, mediaSSRC: ssrc).write(into: &bytes)
            }
        }
        guard !bytes.isEmpty else { return }
        origin.sendRTCP(bytes, output: output, counters: &counters)
        counters.keyframeRequestsSent += 1
    }

    /// Samples each layer's rate (call every `interval`).
    func sampleBitrates(interval: Nanoseconds) {
        for index in encodings.indices {
            let measured = Double(encodings[index].bytesSinceSample * 8) * 1e9 / Double(interval)
            // A piped copy's layer rates are the origin's (most layers do not cross).
            if !origin.isPipe { encodings[index].bitrate = Int(0.6 * Double(encodings[index].bitrate) + 0.4 * measured) }
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
        // What crosses a pipe may be capped: the origin says how many the publisher sends.
        if let originTemporalLayers { return originTemporalLayers }
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

    /// The pipes its packets cross (to other workers and SFUs).
    var pipeSinks: [PipeSink] {
        sinks.compactMap { if case .pipe(let pipe) = $0 { pipe } else { nil } }
    }

    func close() {
        closed = true
        for consumer in consumers { consumer.detach() }
        sinks.removeAll()
    }
}

/// Where a Producer's packets come from. Unowned: the transport or link owns its producers.
enum ProducerOrigin {
    case publisher(Unowned<WebRtcTransport>)
    case pipe(Unowned<PipeLink>)

    static func publisher(_ transport: WebRtcTransport) -> ProducerOrigin { .publisher(Unowned(transport)) }

    var isPipe: Bool {
        if case .pipe = self { true } else { false }
    }

    /// The SSRC our RTCP towards the origin is sent from.
    var rtcpSSRC: UInt32 {
        switch self {
        case .publisher(let transport): transport.object.rtcpSSRC
        case .pipe(let link): link.object.trunk.rtcpSSRC
        }
    }

    func sendRTCP(_ bytes: [UInt8], output: any DatagramOutput, counters: inout PacketCounters) {
        switch self {
        case .publisher(let transport): transport.object.sendRTCP(bytes, output: output, counters: &counters)
        case .pipe(let link): link.object.trunk.sendRTCP(bytes, output: output, counters: &counters)
        }
    }
}

/// An unowned reference as a value (enum payloads cannot be declared unowned).
struct Unowned<Object: AnyObject> {
    unowned let object: Object
    init(_ object: Object) { self.object = object }
}
