#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The control plane's clock, injected so its rules run on fake time in tests: wall time for
/// what people see (when someone joined, a chat line, a report, token and TURN lifetimes, attempt
/// windows), monotonic time for graces, and the pauses of its timers.
public protocol ServiceClock: Sendable {
    /// Seconds since 1970.
    func wallNow() -> Double
    /// Monotonic time, from an arbitrary start.
    func uptime() -> Duration
    func sleep(for duration: Duration) async throws
}

public struct SystemServiceClock: ServiceClock {
    public init() {}

    public func wallNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    public func uptime() -> Duration { .nanoseconds(Int64(MonotonicClock.now())) }

    public func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
}
