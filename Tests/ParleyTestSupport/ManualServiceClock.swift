import Foundation
import ParleyBase
import Synchronization

/// A control-plane clock that moves only when a test says so: `advance(by:)` moves both readings
/// and wakes the sleepers whose time has come, so a test of a grace or a retry window waits for
/// nothing.
public final class ManualServiceClock: ServiceClock, @unchecked Sendable {
    private struct State {
        var wall: Double
        var uptime: Duration = .zero
        var sleepers: [(deadline: Duration, continuation: CheckedContinuation<Void, Never>)] = []
    }
    // An NSLock (a pthread mutex) rather than a Mutex: a test polls `sleepers` from one thread
    // while a task parks on another, and ThreadSanitizer did not see Synchronization's futex
    // order the two (CI, 2026-12-03: a "Swift access race" between the two locked accesses).
    private let lock = NSLock()
    private var unlockedState: State

    private func withState<T>(_ body: (inout State) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&unlockedState)
    }

    /// Starts at the real wall time (tokens it stamps are checked against the real clock by jwt-kit).
    public init(wall: Double = SystemServiceClock().wallNow()) {
        unlockedState = State(wall: wall)
        Self.everyClock.withLock { $0.append(self) }
    }

    /// Every clock made stays for the process's life, as the system clock's timers do: a task
    /// asleep on one (a hub's sweep loop) is alive, not leaked, and LeakSanitizer sees it so.
    private static let everyClock = Mutex<[ManualServiceClock]>([])

    public func wallNow() -> Double { withState { $0.wall } }
    public func uptime() -> Duration { withState { $0.uptime } }

    /// How many tasks sleep on this clock now (a test waits for a timer loop to park before it advances).
    public var sleepers: Int { withState { $0.sleepers.count } }

    public func sleep(for duration: Duration) async throws {
        await withCheckedContinuation { continuation in
            let due: Bool = withState { state in
                guard duration > .zero else { return true }
                state.sleepers.append((state.uptime + duration, continuation))
                return false
            }
            if due { continuation.resume() }
        }
    }

    public func advance(by duration: Duration) {
        let due = withState { state in
            state.uptime += duration
            state.wall += Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
            let due = state.sleepers.filter { $0.deadline <= state.uptime }
            state.sleepers.removeAll { $0.deadline <= state.uptime }
            return due.map(\.continuation)
        }
        for continuation in due { continuation.resume() }
    }

    /// Waits (yielding, in real time) until `count` tasks sleep on this clock.
    public func waitForSleepers(_ count: Int = 1) async {
        while sleepers < count { await Task.yield() }
    }
}
