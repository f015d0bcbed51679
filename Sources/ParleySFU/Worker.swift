import CParleySocket
import Foundation
import Logging
import ParleyTransport
import ParleyWire
import Synchronization

/// Why a worker could not start.
public struct WorkerStartError: Error, CustomStringConvertible {
    public var description: String
}

/// One worker event loop: a thread that owns one UDP socket (one port; ICE-TCP connections on
/// the same port number) and the `WorkerCore` of every meeting placed on it. Datagrams are read with `recvmmsg` into preallocated slots and
/// written with `sendmmsg` once per batch; nothing on that path locks or allocates. Control calls
/// arrive as closures through a locked queue, woken by an eventfd, between batches.
public final class Worker: @unchecked Sendable {
    // Mutable state below is touched only on the worker's own thread (`core`, the batches);
    // `commands` and `thread` are the shared structures, each behind its lock.
    public let index: Int
    public let port: UInt16
    private let fd: Int32
    private let wakeFD: Int32
    private let ipv6Socket: Int32
    private let core: WorkerCore
    private let receiveBatch: OpaquePointer
    private let sendBatch: OpaquePointer
    private let sendCapacity: Int32
    private var pendingSends: Int32 = 0
    /// Where the C batch writes a datagram's source address; allocated once.
    private let addressScratch = UnsafeMutablePointer<UInt8>.allocate(capacity: 16)
    private let commands = CommandQueue<@Sendable (WorkerCore, any DatagramOutput) -> Void>()
    private let running = Atomic<Bool>(true)
    private let thread = Mutex<LoopThread?>(nil)
    private let logger: Logger
    static let slotSize: Int32 = 1500 + 32
    /// ICE-TCP (RFC 6544): a listening socket on the same port number, and its connections.
    private let tcpListenFD: Int32
    public var iceTCP: Bool { tcpListenFD >= 0 }
    private var tcpPeers: [UInt32: TCPPeer] = [:]
    private var nextTCPConnection: UInt32 = 1
    private var descriptors: [pollfd] = []
    private var polledPeers: [TCPPeer] = []
    private var descriptorsChanged = true
    /// Where one TCP frame is copied to be handled like a datagram (decrypted in place).
    private let tcpScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(slotSize), alignment: 16)
    static let maximumTCPPeers = 1024
    /// One address cannot take every ICE-TCP connection of a worker.
    static let maximumTCPPeersPerAddress = 32
    static let tcpIdleTimeout: Nanoseconds = 30_000_000_000
    static let maximumTCPBacklog = 1 << 20

    public init(index: Int, host: String, port: UInt16, announceAddress: String, iceTCP: Bool = true, dtlsContext: DTLSContext,
                logger: Logger, events: @escaping @Sendable (SFUEvent) -> Void) throws {
        var error: Int32 = 0
        let fd = parley_udp_bind(host, port, &error)
        guard fd >= 0 else {
            throw WorkerStartError(description: "cannot bind UDP \(host.isEmpty ? "*" : host):\(port): \(String(cString: strerror(error)))")
        }
        self.fd = fd
        self.index = index
        self.port = UInt16(parley_udp_local_port(fd))
        self.ipv6Socket = parley_udp_is_ipv6(fd)
        var tcpListenFD: Int32 = -1
        if iceTCP {
            tcpListenFD = parley_tcp_listen(host, self.port, &error)
            if tcpListenFD < 0 {
                // Media over UDP still works: this worker only offers no TCP candidate.
                logger.warning("no ICE-TCP on this worker: cannot listen on TCP \(host.isEmpty ? "*" : host):\(self.port): \(String(cString: strerror(error)))",
                               metadata: ["worker": "\(index)"])
            }
        }
        self.tcpListenFD = tcpListenFD
        self.wakeFD = parley_wake_fd()
        self.core = WorkerCore(announceAddress: announceAddress, port: self.port, iceTCP: tcpListenFD >= 0, dtlsContext: dtlsContext, events: events)
        self.receiveBatch = parley_batch_create(64, Self.slotSize)
        self.sendCapacity = 256
        self.sendBatch = parley_batch_create(sendCapacity, Self.slotSize)
        var logger = logger
        logger[metadataKey: "worker"] = "\(index)"
        self.logger = logger
    }

    deinit {
        close(fd)
        close(wakeFD)
        if tcpListenFD >= 0 { close(tcpListenFD) }
        for peer in tcpPeers.values { close(peer.fd) }  // a worker that never ran
        tcpScratch.deallocate()
        parley_batch_free(receiveBatch)
        parley_batch_free(sendBatch)
        addressScratch.deallocate()
    }

    public func start() {
        thread.withLock { thread in
            guard thread == nil else { return }
            thread = LoopThread(stackSize: 4 << 20) { [self] in self.run() }
        }
    }

    /// Stops the loop and waits for its thread to end. Before it ends, the thread runs what was
    /// queued, closes every transport (peers get a DTLS close_notify) and frees every OpenSSL and
    /// libsrtp2 object itself: none may be left to a thread racing process exit.
    public func stop() {
        running.store(false, ordering: .relaxed)
        wake()
        thread.withLock { $0 }?.join()
    }

    /// Runs `body` on the worker's thread; false (and `body` never runs) once the worker has stopped.
    @discardableResult
    public func execute(_ body: @escaping @Sendable (WorkerCore, any DatagramOutput) -> Void) -> Bool {
        guard commands.enqueue(body) else { return false }
        wake()
        return true
    }

    /// Runs `body` on the worker's thread and returns its result; throws `LoopStoppedError` once
    /// the worker has stopped.
    public func submit<T: Sendable, E: Error>(_ body: @escaping @Sendable (WorkerCore, any DatagramOutput) throws(E) -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let queued = execute { core, output in
                do throws(E) {
                    continuation.resume(returning: try body(core, output))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            if !queued { continuation.resume(throwing: LoopStoppedError()) }
        }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private func run() {
        // Named so that profilers, `top -H` and allocation probes can find the media threads.
        parley_name_current_thread("parley-worker-\(index)")
        core.adoptCurrentThread()
        let output = BatchOutput(worker: self)
        var nextTick: Nanoseconds = 0
        let tickPeriod: Nanoseconds = .milliseconds(20)
        while running.load(ordering: .relaxed) {
            let now = MonotonicClock.now()
            let wait = nextTick > now ? Int32((nextTick - now) / 1_000_000) + 1 : 0
            if descriptorsChanged { rebuildDescriptors() }
            _ = poll(&descriptors, nfds_t(descriptors.count), wait)
            if descriptors.count > 2 { serviceTCP(output: output) }
            if descriptors[1].revents != 0 {
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)
                for command in commands.takeAll() { command(core, output) }
                flush()
            }
            if descriptors[0].revents != 0 { receiveAll(output: output) }
            let after = MonotonicClock.now()
            if after >= nextTick {
                core.tick(now: after, output: output)
                flush()
                nextTick = after + tickPeriod
                if !tcpPeers.isEmpty { closeIdleTCPPeers(now: after) }
            }
        }
        // What was queued before the stop still runs (a caller waits for it); then everything
        // this thread owns is closed and freed here, on this thread.
        for command in commands.close() { command(core, output) }
        core.closeAll(reason: "server shutting down", now: MonotonicClock.now(), output: output)
        flush()
        for peer in tcpPeers.values { closeTCP(peer) }
        logger.debug("worker stopped")
    }

    private func receiveAll(output: BatchOutput) {
        var family: UInt8 = 0
        let ip = addressScratch
        var port: UInt16 = 0
        // Bounded so timers and commands still run under a flood.
        for _ in 0..<16 {
            let count = parley_batch_receive(fd, receiveBatch)
            guard count > 0 else { return }
            let now = MonotonicClock.now()
            for i in 0..<count {
                let length = Int(parley_batch_length(receiveBatch, i))
                guard length > 0 else { core.counters.droppedMalformed += 1; continue }
                parley_batch_address(receiveBatch, i, &family, ip, &port)
                let address = family == 4
                    ? PeerAddress(ipv4: (ip[0], ip[1], ip[2], ip[3]), port: port)
                    : PeerAddress(ipv6: UnsafeBufferPointer(start: ip, count: 16), port: port)
                let buffer = UnsafeMutableRawBufferPointer(start: parley_batch_buffer(receiveBatch, i), count: Int(Self.slotSize))
                core.receive(buffer, length: length, from: address, now: now, output: output)
            }
            flush()
            if count < parley_batch_count(receiveBatch) { return }
        }
    }

    fileprivate func reserve() -> UnsafeMutableRawBufferPointer {
        if pendingSends == sendCapacity { flush() }
        return UnsafeMutableRawBufferPointer(start: parley_batch_buffer(sendBatch, pendingSends), count: Int(Self.slotSize))
    }

    fileprivate func commit(length: Int, to address: PeerAddress) {
        if address.isTCP {
            sendTCP(UnsafeRawBufferPointer(start: parley_batch_buffer(sendBatch, pendingSends), count: length), to: address)
            return
        }
        var ip = address.ipBytes16
        parley_batch_set(sendBatch, pendingSends, Int32(length), address.family.rawValue, &ip, address.port, ipv6Socket)
        pendingSends += 1
    }

    private func flush() {
        guard pendingSends > 0 else { return }
        _ = parley_batch_send(fd, sendBatch, pendingSends)
        pendingSends = 0
    }

    // MARK: ICE-TCP

    /// One TCP connection of ICE-TCP: what it sent, reassembled into packets, and what could not
    /// be written yet.
    final class TCPPeer {
        let fd: Int32
        let address: PeerAddress
        var reader = RFC4571Reassembler()
        var pending: [UInt8] = []
        var lastActivity: Nanoseconds
        var framesReceived = 0
        init(fd: Int32, address: PeerAddress, now: Nanoseconds) {
            self.fd = fd
            self.address = address
            self.lastActivity = now
        }
    }

    private func rebuildDescriptors() {
        descriptors = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        polledPeers = []
        if tcpListenFD >= 0 {
            descriptors.append(pollfd(fd: tcpListenFD, events: Int16(POLLIN), revents: 0))
            for peer in tcpPeers.values {
                descriptors.append(pollfd(fd: peer.fd, events: Int16(POLLIN) | (peer.pending.isEmpty ? 0 : Int16(POLLOUT)), revents: 0))
                polledPeers.append(peer)
            }
        }
        descriptorsChanged = false
    }

    private func serviceTCP(output: BatchOutput) {
        if descriptors[2].revents != 0 { acceptTCP() }
        for (offset, peer) in polledPeers.enumerated() {
            let events = descriptors[3 + offset].revents
            guard events != 0, tcpPeers[peer.address.tcpConnection] === peer else { continue }
            if events & Int16(POLLOUT) != 0 { writePending(peer) }
            if events & Int16(POLLIN | POLLHUP | POLLERR) != 0 { readTCP(peer, output: output) }
        }
        flush()
    }

    private func acceptTCP() {
        var family: UInt8 = 0
        var port: UInt16 = 0
        for _ in 0..<32 {
            let client = parley_tcp_accept(tcpListenFD, &family, addressScratch, &port)
            guard client >= 0 else { return }
            var address = family == 4
                ? PeerAddress(ipv4: (addressScratch[0], addressScratch[1], addressScratch[2], addressScratch[3]), port: port)
                : PeerAddress(ipv6: UnsafeBufferPointer(start: addressScratch, count: 16), port: port)
            let fromSameAddress = tcpPeers.values.count { $0.address.high == address.high && $0.address.low == address.low }
            guard tcpPeers.count < Self.maximumTCPPeers, fromSameAddress < Self.maximumTCPPeersPerAddress else {
                close(client)
                core.counters.droppedUnknownSender += 1
                continue
            }
            address.tcpConnection = nextTCPConnection
            nextTCPConnection = nextTCPConnection == UInt32.max ? 1 : nextTCPConnection + 1
            tcpPeers[address.tcpConnection] = TCPPeer(fd: client, address: address, now: MonotonicClock.now())
            descriptorsChanged = true
        }
    }

    /// Reads what the connection has, and hands every whole packet to the core as a datagram
    /// from the connection's address. The first must be a STUN check (RFC 6544 §3): anything
    /// else closes the connection.
    private func readTCP(_ peer: TCPPeer, output: BatchOutput) {
        let now = MonotonicClock.now()
        for _ in 0..<8 {
            let count = peer.reader.fill { space in read(peer.fd, space.baseAddress, space.count) }
            if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) {
                closeTCP(peer)
                return
            }
            if count < 0 { break }
            peer.lastActivity = now
            while let frame = peer.reader.next(into: tcpScratch) {
                guard case .packet(let length) = frame, length > 0 else {
                    core.counters.droppedMalformed += 1
                    continue
                }
                if peer.framesReceived == 0, PacketClass(UnsafeRawBufferPointer(rebasing: tcpScratch[0..<length])) != .stun {
                    core.counters.droppedUnauthenticated += 1
                    closeTCP(peer)
                    return
                }
                peer.framesReceived += 1
                core.receive(tcpScratch, length: length, from: peer.address, now: now, output: output)
                guard tcpPeers[peer.address.tcpConnection] === peer else { return }
            }
        }
    }

    /// Sends one packet on its connection, framed; what the socket does not take now waits
    /// (up to a megabyte: a connection that far behind drops packets, as a full UDP buffer does).
    private func sendTCP(_ packet: UnsafeRawBufferPointer, to address: PeerAddress) {
        guard let peer = tcpPeers[address.tcpConnection] else { return }
        let (high, low) = RFC4571Reassembler.header(length: packet.count)
        if !peer.pending.isEmpty {
            guard peer.pending.count + packet.count + 2 <= Self.maximumTCPBacklog else { return }
            peer.pending.append(high)
            peer.pending.append(low)
            peer.pending.append(contentsOf: packet)
            return
        }
        var header = (high, low)
        let written = withUnsafeMutableBytes(of: &header) { raw -> Int in
            var vectors = (iovec(iov_base: raw.baseAddress, iov_len: 2), iovec(iov_base: UnsafeMutableRawPointer(mutating: packet.baseAddress), iov_len: packet.count))
            return withUnsafeMutablePointer(to: &vectors) { $0.withMemoryRebound(to: iovec.self, capacity: 2) { writev(peer.fd, $0, 2) } }
        }
        if written == packet.count + 2 { return }
        if written < 0, errno != EAGAIN, errno != EINTR {
            closeTCP(peer)
            return
        }
        let sent = max(0, written)
        let framed = [high, low] + Array(packet)
        peer.pending.append(contentsOf: framed[sent...])
        descriptorsChanged = true
    }

    private func writePending(_ peer: TCPPeer) {
        let written = peer.pending.withUnsafeBytes { write(peer.fd, $0.baseAddress, $0.count) }
        if written < 0 {
            if errno != EAGAIN, errno != EINTR { closeTCP(peer) }
            return
        }
        peer.pending.removeFirst(written)
        if peer.pending.isEmpty { descriptorsChanged = true }
    }

    private func closeTCP(_ peer: TCPPeer) {
        close(peer.fd)
        tcpPeers[peer.address.tcpConnection] = nil
        descriptorsChanged = true
    }

    private func closeIdleTCPPeers(now: Nanoseconds) {
        for peer in tcpPeers.values where now &- peer.lastActivity > Self.tcpIdleTimeout { closeTCP(peer) }
    }

    /// The worker's `DatagramOutput`: slots of the send batch.
    private final class BatchOutput: DatagramOutput {
        unowned let worker: Worker
        init(worker: Worker) { self.worker = worker }
        func reserveSlot() -> UnsafeMutableRawBufferPointer { worker.reserve() }
        func commitSlot(length: Int, to address: PeerAddress) { worker.commit(length: length, to: address) }
    }
}

extension PeerAddress {
    /// The address as a 16-byte tuple-free value for the C batch (IPv4 in the first four bytes).
    var ipBytes16: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) {
        switch family {
        case .ipv4:
            return (UInt8(truncatingIfNeeded: low >> 24), UInt8(truncatingIfNeeded: low >> 16), UInt8(truncatingIfNeeded: low >> 8), UInt8(truncatingIfNeeded: low),
                    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        case .ipv6:
            return (UInt8(truncatingIfNeeded: high >> 56), UInt8(truncatingIfNeeded: high >> 48), UInt8(truncatingIfNeeded: high >> 40), UInt8(truncatingIfNeeded: high >> 32),
                    UInt8(truncatingIfNeeded: high >> 24), UInt8(truncatingIfNeeded: high >> 16), UInt8(truncatingIfNeeded: high >> 8), UInt8(truncatingIfNeeded: high),
                    UInt8(truncatingIfNeeded: low >> 56), UInt8(truncatingIfNeeded: low >> 48), UInt8(truncatingIfNeeded: low >> 40), UInt8(truncatingIfNeeded: low >> 32),
                    UInt8(truncatingIfNeeded: low >> 24), UInt8(truncatingIfNeeded: low >> 16), UInt8(truncatingIfNeeded: low >> 8), UInt8(truncatingIfNeeded: low))
        }
    }
}
