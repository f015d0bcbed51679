import ParleyBase
import ParleySFU

/// The SFU's worker core as an endpoint of a `SimulatedNetwork`, with what it sends collected.
public final class WorkerCoreEndpoint: NetworkEndpoint {
    public let address: PeerAddress
    public let core: WorkerCore
    public let output = CollectingOutput()

    public init(core: WorkerCore, address: PeerAddress) {
        self.core = core
        self.address = address
    }

    public func receive(_ datagram: [UInt8], from sender: PeerAddress, now: Nanoseconds) {
        // Room behind the datagram, as a worker's receive slot has, for decryption in place.
        var buffer = datagram + [UInt8](repeating: 0, count: 64)
        buffer.withUnsafeMutableBytes { core.receive($0, length: datagram.count, from: sender, now: now, output: output) }
    }

    public func tick(now: Nanoseconds) { core.tick(now: now, output: output) }

    public func takeSent() -> [(bytes: [UInt8], to: PeerAddress)] {
        defer { output.sent.removeAll() }
        return output.sent
    }
}
