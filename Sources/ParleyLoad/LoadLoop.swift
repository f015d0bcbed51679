import CParleySocket
import Foundation
import ParleyTransport
import Synchronization

/// The thread that owns every simulated peer and its UDP socket: ticks the peers every few
/// milliseconds, sends their datagrams, reads what arrives. Signaling tasks reach the peers only
/// through `execute`/`submit`, which run on this thread.
public final class LoadLoop: @unchecked Sendable {
    // `peers` and `sockets` are touched only on the loop's thread; `commands` is behind its Mutex.
    private var peers: [LoadPeer] = []
    private var sockets: [Int32] = []
    private let commands = Mutex<[@Sendable (LoadLoop) -> Void]>([])
    private let running = Atomic<Bool>(true)
    private let wakeFD = parley_wake_fd()
    private var thread: Thread?
    public private(set) var sendErrors = 0

    public init() {}

    deinit {
        for fd in sockets { close(fd) }
        close(wakeFD)
    }

    public func start() {
        let thread = Thread { [self] in self.run() }
        self.thread = thread
        thread.start()
    }

    public func stop() {
        running.store(false, ordering: .relaxed)
        wake()
    }

    public func execute(_ body: @escaping @Sendable (LoadLoop) -> Void) {
        commands.withLock { $0.append(body) }
        wake()
    }

    public func submit<T: Sendable>(_ body: @escaping @Sendable (LoadLoop) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            execute { loop in continuation.resume(with: Result { try body(loop) }) }
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
                let work = commands.withLock { queue -> [@Sendable (LoadLoop) -> Void] in
                    defer { queue.removeAll() }
                    return queue
                }
                for command in work { command(self) }
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
    }
}
