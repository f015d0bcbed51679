#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Monotonic time in nanoseconds. Protocol code takes `now` as a parameter so tests can run on
/// fake time; only the worker loop reads the real clock.
public typealias Nanoseconds = UInt64

public enum MonotonicClock {
    public static func now() -> Nanoseconds {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

public enum WallClock {
    /// Current time as a 64-bit NTP timestamp (RFC 3550 §4), for sender reports.
    public static func ntpNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let seconds = UInt64(ts.tv_sec) + 2_208_988_800
        let fraction = (UInt64(ts.tv_nsec) << 32) / 1_000_000_000
        return seconds << 32 | fraction
    }
}

/// Wall-clock time as 64-bit NTP timestamps (RFC 3550 §4) at monotonic instants: the clock of
/// sender reports. The media core is handed one and reads no clock itself; the worker loop takes
/// the system's time every second, tests fix it.
public struct NTPClock: Sendable, Equatable {
    /// The NTP time at monotonic instant `reference`.
    public var ntpAtReference: UInt64
    public var reference: Nanoseconds

    public init(ntp: UInt64, at monotonic: Nanoseconds) {
        ntpAtReference = ntp
        reference = monotonic
    }

    /// The system's wall clock now, tied to the monotonic clock now.
    public static func system() -> NTPClock { NTPClock(ntp: WallClock.ntpNow(), at: MonotonicClock.now()) }

    /// The NTP time at monotonic instant `now` (before the reference too).
    public func ntp(at now: Nanoseconds) -> UInt64 {
        let later = now >= reference
        let elapsed = later ? now - reference : reference - now
        let offset = (elapsed / 1_000_000_000) << 32 | ((elapsed % 1_000_000_000) << 32) / 1_000_000_000
        return later ? ntpAtReference &+ offset : ntpAtReference &- offset
    }
}

public extension Nanoseconds {
    static func milliseconds(_ ms: UInt64) -> Nanoseconds { ms * 1_000_000 }
    static func seconds(_ s: UInt64) -> Nanoseconds { s * 1_000_000_000 }
}
