import ParleyBase
import Synchronization

/// A control-plane clock that moves only when a test says so: `advance(by:)` moves both readings
/// and wakes the sleepers whose time has come, so a test of a grace or a retry window waits for
/// nothing.
public final class ManualServiceClock: ServiceClock {
    private struct State {
        var wall: Double
        var uptime: Duration = .zero
        var sleepers: [(deadline: Duration, continuation: CheckedContinuation<Void, Never>)] = []
    }
    // `Locked`, not a Mutex: a test polls `sleepers` while a task parks (see Locked).
    private let state: Locked<State>

    /// Starts at the real wall time (tokens it stamps are checked against the real clock by jwt-kit).
    public init(wall: Double = SystemServiceClock().wallNow()) {
        state = Locked(State(wall: wall))
        Self.everyClock.withLock { $0.append(self) }
    }

    /// Every clock made stays for the process's life, as the system clock's timers do: a task
    /// asleep on one (a hub's sweep loop) is alive, not leaked, and LeakSanitizer sees it so.
    private static let everyClock = Mutex<[ManualServiceClock]>([])

    public func wallNow() -> Double { state.withLock { $0.wall } }
    public func uptime() -> Duration { state.withLock { $0.uptime } }

    /// How many tasks sleep on this clock now (a test waits for a timer loop to park before it advances).
    public var sleepers: Int { state.withLock { $0.sleepers.count } }

    public func sleep(for duration: Duration) async throws {
        await withCheckedContinuation { continuation in
            let due: Bool = state.withLock { state in
                guard duration > .zero else { return true }
                state.sleepers.append((state.uptime + duration, continuation))
                return false
            }
            if due { continuation.resume() }
        }
    }

    public func advance(by duration: Duration) {
        let due = state.withLock { state in
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
