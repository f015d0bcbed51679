import ParleyWire
import ParleyTransport

public enum MediaKind: String, Sendable, Codable {
    case audio, video
}

/// Header extensions the SFU reads or writes, by URI (RFC 8285 registrations).
public enum HeaderExtensionURI {
    public static let mid = "urn:ietf:params:rtp-hdrext:sdes:mid"
    public static let audioLevel = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
    public static let rid = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
    public static let repairedRid = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
}

/// One encoding of a Producer: a single stream today, one per simulcast layer later.
public struct ProducerEncoding: Sendable {
    public var rid: String?
    public var ssrc: UInt32?
    public var rtxSSRC: UInt32?
    public var statistics = ReceiveStatistics()
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
    public var encodings: [ProducerEncoding]
    public let audioLevelExtensionID: UInt8?
    unowned let transport: WebRtcTransport
    public internal(set) var consumers: [Consumer] = []
    var keyframeRequests = KeyframeRequestThrottle()
    private var firSequence: UInt8 = 0
    let retransmissions: RetransmissionBuffer?
    public private(set) var closed = false
    public let createdAt: Nanoseconds
    public var participantID: String { transport.participantID }

    init(id: String, kind: MediaKind, mid: String, source: String, codec: RTPCodec, rtxPayloadType: UInt8?,
         encodings: [ProducerEncoding], audioLevelExtensionID: UInt8?, transport: WebRtcTransport, now: Nanoseconds) {
        self.id = id
        self.kind = kind
        self.mid = mid
        self.source = source
        self.codec = codec
        self.codecKind = CodecPayload.kind(ofCodecNamed: codec.name)
        self.rtxPayloadType = rtxPayloadType
        self.encodings = encodings.isEmpty ? [ProducerEncoding()] : encodings
        self.audioLevelExtensionID = audioLevelExtensionID
        self.transport = transport
        self.retransmissions = kind == .video ? RetransmissionBuffer() : nil
        self.createdAt = now
    }

    /// Forwards one decrypted RTP packet of this producer to every consumer.
    func receive(_ packet: UnsafeRawBufferPointer, header: RTPHeader, now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters) {
        guard let index = encodings.firstIndex(where: { $0.ssrc == header.ssrc }) else {
            // RTX from the publisher (padding probes, or repairs Parley did not ask for).
            counters.droppedUnroutable += 1
            return
        }
        guard header.payloadType == codec.payloadType, header.payloadLength > 0 else {
            counters.droppedUnroutable += 1
            return
        }
        encodings[index].statistics.update(sequence: header.sequenceNumber, timestamp: header.timestamp, arrival: now, clockRate: codec.clockRate)
        let payload = UnsafeRawBufferPointer(rebasing: packet[header.payloadOffset..<(header.payloadOffset + header.payloadLength)])
        let isKeyframe = kind == .video && CodecPayload.isKeyframe(codecKind, payload: payload)
        if isKeyframe { keyframeRequests.satisfied() }
        var audioLevel: UInt8?
        if let audioLevelExtensionID {
            header.forEachExtension(in: packet) { id, offset, length in
                if id == audioLevelExtensionID, length >= 1 { audioLevel = packet[offset] }
            }
        }
        retransmissions?.store(packet, sequence: header.sequenceNumber)
        for consumer in consumers {
            if consumer.forward(packet, header: header, isKeyframe: isKeyframe, audioLevel: audioLevel, now: now, output: output) {
                counters.rtpForwarded += 1
            }
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
        transport.sendRTCP(bytes, output: output)
        counters.keyframeRequestsSent += 1
    }

    func close() {
        closed = true
        for consumer in consumers { consumer.detach() }
        consumers.removeAll()
    }
}
