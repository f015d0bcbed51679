import CParleySocket
import Foundation
import ParleyBase
import ParleyTransport
import Synchronization

/// The thread that owns every simulated peer and its UDP socket: ticks the peers every few
/// milliseconds, sends their datagrams, reads what arrives. Signaling tasks reach the peers only
/// through `execute`/`submit`, which run on this thread.
public final class LoadLoop: @unchecked Sendable {
    // `peers` and `sockets` are touched only on the loop's thread; `commands` and `thread` are
    // each behind a lock.
    private var peers: [LoadPeer] = []
    private var sockets: [Int32] = []
    private let commands = CommandQueue<@Sendable (LoadLoop) -> Void>()
    private let running = Atomic<Bool>(true)
    private let wakeFD = parley_wake_fd()
    private let thread = Mutex<LoopThread?>(nil)
    public private(set) var sendErrors = 0

    public init() {}

    deinit {
        for fd in sockets { close(fd) }
        close(wakeFD)
    }

    public func start() {
        thread.withLock { thread in
            guard thread == nil else { return }
            thread = LoopThread { [self] in self.run() }
        }
    }

    /// Stops the loop and waits for its thread to end; the peers (and their OpenSSL and libsrtp2
    /// objects) are freed on that thread before it does.
    public func stop() {
        running.store(false, ordering: .relaxed)
        wake()
        thread.withLock { $0 }?.join()
    }

    /// Runs `body` on the loop's thread; false (and `body` never runs) once the loop has stopped.
    @discardableResult
    public func execute(_ body: @escaping @Sendable (LoadLoop) -> Void) -> Bool {
        guard commands.enqueue(body) else { return false }
        wake()
        return true
    }

    public func submit<T: Sendable>(_ body: @escaping @Sendable (LoadLoop) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let queued = execute { loop in continuation.resume(with: Result { try body(loop) }) }
            if !queued { continuation.resume(throwing: LoopStoppedError()) }
        }
    }

    /// Adds a peer with its own socket bound to `bindHost` (call on the loop thread).
    public func add(_ peer: LoadPeer, bindHost: String) throws -> Int {
        var error: Int32 = 0
        let fd = parley_udp_bind(bindHost, 0, &error)
        guard fd >= 0 else { throw LoadError.unreachable("cannot bind a UDP socket on \(bindHost): \(String(cString: strerror(error)))") }
        if bindHost != "0.0.0.0" { peer.localCandidate = (bindHost, UInt16(truncatingIfNeeded: parley_udp_local_port(fd))) }
        peers.append(peer)
        sockets.append(fd)
        return peers.count - 1
    }

    public func peer(_ index: Int) -> LoadPeer { peers[index] }
    public var allPeers: [LoadPeer] { peers }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private func run() {
        parley_name_current_thread("parley-load")
        var buffer = [UInt8](repeating: 0, count: 2048)
        let ip = UnsafeMutablePointer<UInt8>.allocate(capacity: 16)
        defer { ip.deallocate() }
        var family: UInt8 = 0
        var port: UInt16 = 0
        var descriptors: [pollfd] = []
        var nextTick: Nanoseconds = 0
        while running.load(ordering: .relaxed) {
            if descriptors.count != sockets.count + 1 {
                descriptors = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)] + sockets.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            }
            for index in descriptors.indices { descriptors[index].revents = 0 }
            _ = poll(&descriptors, nfds_t(descriptors.count), 2)
            if descriptors[0].revents != 0 {
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)
                for command in commands.takeAll() { command(self) }
            }
            let now = MonotonicClock.now()
            for (index, descriptor) in descriptors.dropFirst().enumerated() where descriptor.revents != 0 {
                for _ in 0..<64 {
                    let length = buffer.withUnsafeMutableBytes { raw in
                        parley_udp_receive(sockets[index], raw.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(raw.count), &family, ip, &port)
                    }
                    guard length > 0 else { break }
                    let address = family == 4 ? PeerAddress(ipv4: (ip[0], ip[1], ip[2], ip[3]), port: port)
                                              : PeerAddress(ipv6: UnsafeBufferPointer(start: ip, count: 16), port: port)
                    buffer.withUnsafeBytes { peers[index].receive(UnsafeRawBufferPointer(rebasing: $0[0..<Int(length)]), from: address, now: now) }
                }
            }
            // Timers and media every 5 ms, not on every wake-up: with hundreds of peers, ticking
            // all of them per received datagram would cost peers × packets.
            guard now >= nextTick else { continue }
            nextTick = now + .milliseconds(5)
            for (index, peer) in peers.enumerated() {
                peer.tick(now: now)
                guard let remote = peer.remoteAddress, !peer.outbox.isEmpty else { continue }
                var target = remote.ipBytes
                target += [UInt8](repeating: 0, count: 16 - target.count)
                for datagram in peer.outbox {
                    let sent = datagram.withUnsafeBytes { raw in
                        parley_udp_send(sockets[index], raw.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(raw.count),
                                        remote.family.rawValue, target, remote.port)
                    }
                    if sent < 0 { sendErrors += 1 }
                }
                peer.outbox.removeAll(keepingCapacity: true)
            }
        }
        for command in commands.close() { command(self) }
        peers.removeAll()  // their DTLS and SRTP objects go here, on this thread
    }
}
