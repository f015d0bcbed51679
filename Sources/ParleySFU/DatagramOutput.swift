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

extension DatagramOutput {
    /// Copies an RTCP compound packet into a slot, protects it there with `protect` (SRTCP: in
    /// place, returns the new length) and queues it for `address`; a failure is counted.
    func sendRTCP(_ bytes: [UInt8], to address: PeerAddress, counters: inout PacketCounters,
                  protect: (UnsafeMutableRawPointer, _ length: Int, _ capacity: Int) -> Int?) {
        let slot = reserveSlot()
        guard bytes.count + SRTPSession.maximumTrailer <= slot.count else { return }
        bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: slot[0..<bytes.count]).copyMemory(from: $0) }
        guard let length = protect(slot.baseAddress!, bytes.count, slot.count) else {
            counters.dropped[.encryptionFailed] += 1
            return
        }
        commitSlot(length: length, to: address)
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
