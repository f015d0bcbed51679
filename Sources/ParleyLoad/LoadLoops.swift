import Foundation
import ParleyBase

/// A peer on one of the load generator's threads.
public struct PeerRef: Sendable, Hashable {
    public let loop: Int
    public let index: Int
}

/// The load generator's threads (`--threads`): each `LoadLoop` owns its peers and their sockets.
/// A participant's peers all go to one loop, chosen from its label, so what one participant
/// measured is gathered on one thread.
public final class LoadLoops: Sendable {
    let loops: [LoadLoop]

    public init(threads: Int) {
        loops = (0..<max(1, threads)).map { _ in LoadLoop() }
    }

    public var count: Int { loops.count }

    public func start() { for loop in loops { loop.start() } }
    public func stop() { for loop in loops { loop.stop() } }

    /// The loop of a participant: a stable hash of its label.
    func loopIndex(for label: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in label.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int(hash % UInt64(loops.count))
    }

    /// Makes a participant's peer on its loop's thread, with a socket bound to `bindHost`.
    public func add(label: String, options: LoadPeerOptions, bindHost: String) async throws -> PeerRef {
        let number = loopIndex(for: label)
        let index = try await loops[number].submit { loop in
            try loop.add(LoadPeer(label: label, options: options, now: MonotonicClock.now()), bindHost: bindHost)
        }
        return PeerRef(loop: number, index: index)
    }

    /// Runs `body` with the peer, on its loop's thread.
    public func submit<T: Sendable>(_ peer: PeerRef, _ body: @escaping @Sendable (LoadPeer) throws -> T) async throws -> T {
        try await loops[peer.loop].submit { loop in try body(loop.peer(peer.index)) }
    }

    /// Runs `body` on every loop's thread (one after the other); the results of those still running.
    public func gather<T: Sendable>(_ body: @escaping @Sendable (LoadLoop) -> T) async -> [T] {
        var results: [T] = []
        for loop in loops {
            if let result = try? await loop.submit(body) { results.append(result) }
        }
        return results
    }
}
