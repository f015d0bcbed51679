import ParleyBase
import ParleyTransport
import ParleyWire

/// What every send stream of one transport shares: the secure transport that holds the SRTP
/// keys and the selected address, and the transport-wide numbering of everything sent on it
/// (draft-holmer-rmcat-transport-wide-cc), whose feedback drives the subscriber's estimate.
final class SendPath {
    let secure: SecureTransport
    var history = SendHistory()

    init(secure: SecureTransport) { self.secure = secure }

    /// Where packets go now: nil until the transport is connected.
    var address: PeerAddress? { secure.isConnected ? secure.remoteAddress : nil }
}

/// One outgoing stream towards a subscriber: an SSRC and its RTX repair SSRC, their numbering
/// (sequence numbers and timestamps continuous across source changes and planned drops, and the
/// RTX sequence), their SRTP contexts (taken once, when keys exist, not looked up per packet) and
/// the counts sender reports carry. Its Consumer decides and writes each packet with the
/// stream's numbers; the stream numbers it transport-wide, encrypts it and hands it to the output.
final class SendStream {
    let ssrc: UInt32
    let rtxSSRC: UInt32
    let path: SendPath
    private var session: SRTPSession?
    private var rtxSession: SRTPSession?
    /// The media SSRC's sequence numbers and timestamps.
    var numbering = RTPRewriter()
    private(set) var rtxSequence: UInt16
    private(set) var packetsSent: UInt32 = 0
    private(set) var octetsSent: UInt32 = 0

    init(path: SendPath, ssrc: UInt32 = .random(in: 1...UInt32.max), rtxSSRC: UInt32 = .random(in: 1...UInt32.max),
         rtxSequence: UInt16 = .random(in: 0...UInt16.max)) {
        self.path = path
        self.ssrc = ssrc
        self.rtxSSRC = rtxSSRC
        self.rtxSequence = rtxSequence
    }

    /// The next sequence number of the RTX stream.
    func nextRTXSequence() -> UInt16 {
        defer { rtxSequence &+= 1 }
        return rtxSequence
    }

    /// Numbers a packet of `size` bytes transport-wide, sent at `now`.
    func nextTransportSequence(size: Int, now: Nanoseconds) -> UInt16 {
        let sequence = path.history.nextSequence()
        path.history.sent(sequence, size: size, at: now)
        return sequence
    }

    /// Encrypts the `length` bytes of RTP in `slot` (on the RTX SSRC when `repair`) and queues
    /// them for `address`. Returns the bytes sent, or nil when encryption failed (counted).
    func send(_ slot: UnsafeMutableRawBufferPointer, length: Int, repair: Bool, to address: PeerAddress, output: any DatagramOutput,
              counters: inout PacketCounters) -> Int? {
        guard let protected = context(repair: repair).flatMap({ try? $0.protectRTP(slot.baseAddress!, length: length, capacity: slot.count) }) else {
            counters.dropped[.encryptionFailed] += 1
            return nil
        }
        output.commitSlot(length: protected, to: address)
        return protected
    }

    /// Counts a media packet (not a repair or padding) for the sender reports.
    func countMedia(payloadBytes: Int) {
        packetsSent &+= 1
        octetsSent &+= UInt32(truncatingIfNeeded: payloadBytes)
    }

    /// A sender report at NTP time `ntp`, the RTP clock (`clockRate`) extrapolated from the last
    /// packet sent to `now`; nil before any media.
    func senderReport(ntp: UInt64, now: Nanoseconds, clockRate: UInt32) -> SenderReport? {
        guard packetsSent > 0 else { return nil }
        let elapsedMilliseconds = (now &- numbering.lastSentAt) / 1_000_000
        let rtpNow = numbering.lastTimestamp &+ UInt32(truncatingIfNeeded: elapsedMilliseconds * UInt64(clockRate) / 1000)
        return SenderReport(ssrc: ssrc, ntpTimestamp: ntp, rtpTimestamp: rtpNow, packetCount: packetsSent, octetCount: octetsSent)
    }

    private func context(repair: Bool) -> SRTPSession? {
        if repair {
            if rtxSession == nil { rtxSession = path.secure.outboundSession(ssrc: rtxSSRC) }
            return rtxSession
        }
        if session == nil { session = path.secure.outboundSession(ssrc: ssrc) }
        return session
    }
}
