import CParleySocket
import Foundation
import ParleyBase
import ParleyTransport
import Synchronization

/// The thread that owns every simulated peer and its UDP socket: ticks the peers every few
/// milliseconds, sends their datagrams, reads what arrives. Socket I/O is batched as the SFU's
/// is: `recvmmsg` reads what a socket holds in one call, `sendmmsg` sends a peer's tick output
/// in one. Signaling tasks reach the peers only through `execute`/`submit`, on this thread.
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
    /// Preallocated slots for one socket's datagrams in, and one peer's out.
    private let receiveBatch = parley_batch_create(32, 2048)!
    private let sendBatch = parley_batch_create(64, 2048)!

    public init() {}

    deinit {
        for fd in sockets { close(fd) }
        close(wakeFD)
        parley_batch_free(receiveBatch)
        parley_batch_free(sendBatch)
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

    /// One peer's datagrams in one `sendmmsg` (more than a batch holds: several).
    private func send(_ datagrams: [[UInt8]], from socket: Int32, to remote: PeerAddress) {
        var target = remote.ipBytes
        target += [UInt8](repeating: 0, count: 16 - target.count)
        let slotSize = Int(parley_batch_slot_size(sendBatch)), capacity = parley_batch_count(sendBatch)
        let ipv6Socket = parley_udp_is_ipv6(socket)
        var pending: Int32 = 0
        func flush() {
            guard pending > 0 else { return }
            let sent = parley_batch_send(socket, sendBatch, pending)
            if sent < pending { sendErrors += Int(pending - max(sent, 0)) }
            pending = 0
        }
        for datagram in datagrams {
            guard datagram.count <= slotSize else {
                sendErrors += 1
                continue
            }
            datagram.withUnsafeBytes { parley_batch_buffer(sendBatch, pending).update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: datagram.count) }
            parley_batch_set(sendBatch, pending, Int32(datagram.count), remote.family.rawValue, target, remote.port, ipv6Socket)
            pending += 1
            if pending == capacity { flush() }
        }
        flush()
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private func run() {
        parley_name_current_thread("parley-load")
        let ip = UnsafeMutablePointer<UInt8>.allocate(capacity: 16)
        defer { ip.deallocate() }
        var family: UInt8 = 0
        var port: UInt16 = 0
        var descriptors: [pollfd] = []
        var nextTick: Nanoseconds = 0
        let capacity = parley_batch_count(receiveBatch)
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
                // At most a few batches per socket per wake-up, so no peer starves the others.
                for _ in 0..<4 {
                    let count = parley_batch_receive(sockets[index], receiveBatch)
                    guard count > 0 else { break }
                    for slot in 0..<count {
                        let length = Int(parley_batch_length(receiveBatch, slot))
                        guard length > 0 else { continue }
                        parley_batch_address(receiveBatch, slot, &family, ip, &port)
                        let address = family == 4 ? PeerAddress(ipv4: (ip[0], ip[1], ip[2], ip[3]), port: port)
                                                  : PeerAddress(ipv6: UnsafeBufferPointer(start: ip, count: 16), port: port)
                        peers[index].receive(UnsafeRawBufferPointer(start: parley_batch_buffer(receiveBatch, slot), count: length), from: address, now: now)
                    }
                    if count < capacity { break }
                }
            }
            // Timers and media every 5 ms, not on every wake-up: with hundreds of peers, ticking
            // all of them per received datagram would cost peers × packets.
            guard now >= nextTick else { continue }
            nextTick = now + .milliseconds(5)
            for (index, peer) in peers.enumerated() {
                peer.tick(now: now)
                guard let remote = peer.remoteAddress, !peer.outbox.isEmpty else { continue }
                send(peer.outbox, from: sockets[index], to: remote)
                peer.outbox.removeAll(keepingCapacity: true)
            }
        }
        for command in commands.close() { command(self) }
        peers.removeAll()  // their DTLS and SRTP objects go here, on this thread
    }
}
