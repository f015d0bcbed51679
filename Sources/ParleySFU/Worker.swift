import CParleySocket
import Foundation
import Logging
import ParleyTransport
import Synchronization

/// Why a worker could not start.
public struct WorkerStartError: Error, CustomStringConvertible {
    public var description: String
}

/// One worker event loop: a thread that owns one UDP socket (one port) and the `WorkerCore` of
/// every meeting placed on it. Datagrams are read with `recvmmsg` into preallocated slots and
/// written with `sendmmsg` once per batch; nothing on that path locks or allocates. Control calls
/// arrive as closures through a locked queue, woken by an eventfd, between batches.
public final class Worker: @unchecked Sendable {
    // Mutable state below is touched only on the worker's own thread (`core`, the batches);
    // `commands` is the one shared structure, behind its Mutex.
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
    private let commands = Mutex<[@Sendable (WorkerCore, any DatagramOutput) -> Void]>([])
    private let running = Atomic<Bool>(true)
    private var thread: Thread?
    private let logger: Logger
    static let slotSize: Int32 = 1500 + 32

    public init(index: Int, host: String, port: UInt16, announceAddress: String, dtlsContext: DTLSContext,
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
        self.wakeFD = parley_wake_fd()
        self.core = WorkerCore(announceAddress: announceAddress, port: self.port, dtlsContext: dtlsContext, events: events)
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
        let thread = Thread { [self] in self.run() }
        thread.stackSize = 4 << 20
        self.thread = thread
        thread.start()
    }

    public func stop() {
        running.store(false, ordering: .relaxed)
        wake()
    }

    /// Runs `body` on the worker's thread.
    public func execute(_ body: @escaping @Sendable (WorkerCore, any DatagramOutput) -> Void) {
        commands.withLock { $0.append(body) }
        wake()
    }

    /// Runs `body` on the worker's thread and returns its result.
    public func submit<T: Sendable, E: Error>(_ body: @escaping @Sendable (WorkerCore, any DatagramOutput) throws(E) -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            execute { core, output in
                do throws(E) {
                    continuation.resume(returning: try body(core, output))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private func run() {
        // Named so that profilers, `top -H` and allocation probes can find the media threads.
        parley_name_current_thread("parley-worker-\(index)")
        let output = BatchOutput(worker: self)
        var descriptors = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        var nextTick: Nanoseconds = 0
        let tickPeriod: Nanoseconds = .milliseconds(20)
        while running.load(ordering: .relaxed) {
            let now = MonotonicClock.now()
            let wait = nextTick > now ? Int32((nextTick - now) / 1_000_000) + 1 : 0
            _ = poll(&descriptors, 2, wait)
            if descriptors[1].revents != 0 {
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)
                let work = commands.withLock { queue -> [@Sendable (WorkerCore, any DatagramOutput) -> Void] in
                    defer { queue.removeAll() }
                    return queue
                }
                for command in work { command(core, output) }
                flush()
            }
            if descriptors[0].revents != 0 { receiveAll(output: output) }
            let after = MonotonicClock.now()
            if after >= nextTick {
                core.tick(now: after, output: output)
                flush()
                nextTick = after + tickPeriod
            }
        }
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
        var ip = address.ipBytes16
        parley_batch_set(sendBatch, pendingSends, Int32(length), address.family.rawValue, &ip, address.port, ipv6Socket)
        pendingSends += 1
    }

    private func flush() {
        guard pendingSends > 0 else { return }
        _ = parley_batch_send(fd, sendBatch, pendingSends)
        pendingSends = 0
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
