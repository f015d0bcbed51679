import Foundation

/// State behind an NSLock (a pthread mutex, which ThreadSanitizer intercepts), for test helpers
/// that append a continuation under the lock inside `withCheckedContinuation` on one thread while
/// another polls: ThreadSanitizer reported "Swift access races" between two accesses both under
/// one Synchronization `Mutex` there (CI, 2026-12-03, ManualServiceClock and Inbox), not seeing
/// its futex order them.
public final class Locked<State>: @unchecked Sendable {
    private let lock = NSLock()
    private var state: State

    public init(_ state: State) { self.state = state }

    public func withLock<T>(_ body: (inout State) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&state)
    }
}
