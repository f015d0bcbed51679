import COpenSSL
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A thread that owns C resources (OpenSSL and libsrtp2 objects, sockets) and is joined when it
/// stops: `join()` returns only after its body has returned and OpenSSL has released the thread's
/// own state. Nothing of the thread may outlive `join()`, because process exit runs OpenSSL's
/// cleanup, which frees every thread's handlers without taking a lock: a thread still winding
/// down beside it frees them a second time (the "double free or corruption (fasttop)" seen on
/// `parley-worker-0` at shutdown, issue 11).
public final class LoopThread: Sendable {
    private let handle: pthread_t
    private let joined = Atomic<Bool>(false)

    /// Starts `body` on a new thread with `stackSize` bytes of stack.
    public init(stackSize: Int = 4 << 20, _ body: @escaping @Sendable () -> Void) {
        OpenSSLRuntime.initialize()
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setstacksize(&attributes, stackSize)
        var handle = pthread_t()
        let status = pthread_create(&handle, &attributes, { raw in
            let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
            body.run()
            // Released here, on this thread, rather than by a TLS destructor racing process exit.
            OPENSSL_thread_stop()
            return nil
        }, box)
        pthread_attr_destroy(&attributes)
        precondition(status == 0, "pthread_create failed: \(status)")
        self.handle = handle
    }

    /// Whether the caller is this thread (a loop must not join itself).
    public var isCurrent: Bool { pthread_equal(pthread_self(), handle) != 0 }

    /// Waits until the thread has ended; later calls return at once.
    public func join() {
        guard !isCurrent, joined.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        pthread_join(handle, nil)
    }

    private final class Body: Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
}

/// The queue through which other threads hand work to a loop thread. It stops taking work when
/// the loop ends, so a caller learns that its command will never run instead of waiting forever.
public final class CommandQueue<Command: Sendable>: Sendable {
    private struct State: ~Copyable {
        var pending: [Command] = []
        var accepting = true
    }

    private let state = Mutex(State())

    public init() {}

    /// Queues a command; false when the loop has stopped taking work.
    public func enqueue(_ command: Command) -> Bool {
        state.withLock { state in
            guard state.accepting else { return false }
            state.pending.append(command)
            return true
        }
    }

    /// Everything queued so far (called by the loop thread).
    public func takeAll() -> [Command] {
        state.withLock { state in
            defer { state.pending.removeAll() }
            return state.pending
        }
    }

    /// Stops taking work and returns what was still queued (called by the loop thread as it ends).
    public func close() -> [Command] {
        state.withLock { state in
            state.accepting = false
            defer { state.pending.removeAll() }
            return state.pending
        }
    }
}

/// Why a command handed to a loop thread did not run.
public struct LoopStoppedError: Error, CustomStringConvertible, Sendable {
    public init() {}
    public var description: String { "the media loop has stopped (server shutting down)" }
}
