import CParleySocket
import Foundation
import Logging
import ParleyBase
import ParleyMediaAPI
import ParleySFU
import ParleyTransport
import Synchronization

/// Why a worker could not start.
public struct WorkerStartError: Error, CustomStringConvertible {
    public var description: String
}

/// One worker event loop: a thread that owns one UDP socket (one port; ICE-TCP connections on
/// the same port number, `ICETCPServer`) and the `WorkerCore` of every meeting placed on it.
/// Datagrams are read with `recvmmsg` into preallocated slots and
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
    /// ICE-TCP (RFC 6544) on the same port number; nil when it is off or could not listen.
    private let tcp: ICETCPServer?
    public var iceTCP: Bool { tcp != nil }
    /// The poll set: the UDP socket, the wake eventfd, then ICE-TCP's sockets.
    private var descriptors: [pollfd] = []

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
        var tcp: ICETCPServer?
        if iceTCP {
            do {
                tcp = try ICETCPServer(host: host, port: self.port, frameCapacity: Int(Self.slotSize))
            } catch {
                // Media over UDP still works: this worker only offers no TCP candidate.
                logger.warning("no ICE-TCP on this worker: \(error)", metadata: ["worker": "\(index)"])
            }
        }
        self.tcp = tcp
        self.wakeFD = parley_wake_fd()
        self.core = WorkerCore(announceAddress: announceAddress, port: self.port, iceTCP: tcp != nil, dtlsContext: dtlsContext, ntpClock: .system(),
                               events: events)
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
        var nextClockSync: Nanoseconds = 0
        let tickPeriod: Nanoseconds = .milliseconds(20)
        while running.load(ordering: .relaxed) {
            let now = MonotonicClock.now()
            let wait = nextTick > now ? Int32((nextTick - now) / 1_000_000) + 1 : 0
            if descriptors.isEmpty || tcp?.descriptorsChanged == true { rebuildDescriptors() }
            _ = poll(&descriptors, nfds_t(descriptors.count), wait)
            if let tcp {
                tcp.service(descriptors[2...], core: core, output: output, now: MonotonicClock.now())
                flush()
            }
            if descriptors[1].revents != 0 {
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)
                for command in commands.takeAll() { command(core, output) }
                flush()
            }
            if descriptors[0].revents != 0 { receiveAll(output: output) }
            let after = MonotonicClock.now()
            if after >= nextTick {
                if after >= nextClockSync {
                    core.ntpClock = .system()
                    nextClockSync = after + .seconds(1)
                }
                core.tick(now: after, output: output)
                flush()
                nextTick = after + tickPeriod
                if let tcp, tcp.hasPeers { tcp.closeIdlePeers(now: after) }
            }
        }
        // What was queued before the stop still runs (a caller waits for it); then everything
        // this thread owns is closed and freed here, on this thread.
        for command in commands.close() { command(core, output) }
        core.closeAll(reason: "server shutting down", now: MonotonicClock.now(), output: output)
        flush()
        tcp?.closeAll()
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
                guard length > 0 else { core.counters.dropped[.malformed] += 1; continue }
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
            tcp?.send(UnsafeRawBufferPointer(start: parley_batch_buffer(sendBatch, pendingSends), count: length), to: address)
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

    private func rebuildDescriptors() {
        descriptors = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        tcp?.appendDescriptors(to: &descriptors)
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
