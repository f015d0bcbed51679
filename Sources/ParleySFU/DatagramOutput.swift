import ParleyBase
import ParleyTransport

/// Where the SFU writes datagrams. The worker loop implements it with preallocated slots flushed
/// by `sendmmsg`; tests implement it by collecting bytes.
public protocol DatagramOutput: AnyObject {
    /// A buffer to write one datagram into; its capacity includes room for the SRTP trailer.
    func reserveSlot() -> UnsafeMutableRawBufferPointer
    /// Queues the slot last reserved with `length` bytes for `address`.
    func commitSlot(length: Int, to address: PeerAddress)
}

extension DatagramOutput {
    /// Queues a control datagram (STUN, DTLS) by copying it into a slot.
    func send(_ bytes: [UInt8], to address: PeerAddress) {
        let slot = reserveSlot()
        guard bytes.count <= slot.count else { return }
        bytes.withUnsafeBytes { slot.copyMemory(from: $0) }
        commitSlot(length: bytes.count, to: address)
    }
}

/// A `DatagramOutput` that keeps every datagram it is given: for tests and in-process harnesses
/// that drive a `WorkerCore` without sockets.
public final class CollectingOutput: DatagramOutput {
    public var sent: [(bytes: [UInt8], to: PeerAddress)] = []
    private let slot = UnsafeMutableRawBufferPointer.allocate(byteCount: 1600, alignment: 16)

    public init() {}
    deinit { slot.deallocate() }

    public func reserveSlot() -> UnsafeMutableRawBufferPointer { slot }
    public func commitSlot(length: Int, to address: PeerAddress) { sent.append((Array(slot[0..<length]), address)) }
}

/// Counts of what a worker did with packets; bad input is counted here, never thrown out of the loop.
public struct PacketCounters: Sendable, Equatable {
    public var datagramsReceived = 0
    public var rtpReceived = 0
    public var rtcpReceived = 0
    public var rtpForwarded = 0
    public var retransmitted = 0
    public var nacksSent = 0
    /// Repairs (RTX) of packets that were lost on the way here.
    public var repairsReceived = 0
    /// Video packets that had come before (a publisher's bandwidth probes repeat packets over RTX).
    public var droppedDuplicate = 0
    public var droppedUnknownSender = 0
    public var droppedMalformed = 0
    public var droppedUnauthenticated = 0
    public var droppedUnroutable = 0
    /// RTP from a producer a host blocked (muted, video stopped, screen sharing disabled).
    public var droppedBlocked = 0
    public var keyframeRequestsSent = 0
    /// Transport-wide congestion control feedback sent to publishers.
    public var transportFeedbackSent = 0
    /// Padding packets sent to probe a subscriber's path for more bandwidth.
    public var probePacketsSent = 0

    public init() {}

    public static func + (a: PacketCounters, b: PacketCounters) -> PacketCounters {
        var c = a
        c.datagramsReceived += b.datagramsReceived; c.rtpReceived += b.rtpReceived; c.rtcpReceived += b.rtcpReceived
        c.rtpForwarded += b.rtpForwarded; c.retransmitted += b.retransmitted
        c.nacksSent += b.nacksSent; c.repairsReceived += b.repairsReceived
        c.droppedUnknownSender += b.droppedUnknownSender; c.droppedMalformed += b.droppedMalformed
        c.droppedUnauthenticated += b.droppedUnauthenticated; c.droppedUnroutable += b.droppedUnroutable
        c.keyframeRequestsSent += b.keyframeRequestsSent; c.droppedBlocked += b.droppedBlocked
        c.transportFeedbackSent += b.transportFeedbackSent; c.probePacketsSent += b.probePacketsSent
        c.droppedDuplicate += b.droppedDuplicate
        return c
    }
}
