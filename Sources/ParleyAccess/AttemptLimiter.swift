import Foundation
import Synchronization

/// Failed password, invite and sign-in attempts, counted per key (a meeting, a client address)
/// over a sliding window. Once a key has too many, every attempt under it is refused (even a
/// right one) until the oldest failure leaves the window.
public final class AttemptLimiter: Sendable {
    public struct Rule: Sendable {
        public var failures: Int
        public var window: TimeInterval
        public init(failures: Int, window: TimeInterval) { self.failures = failures; self.window = window }
    }

    private let rule: Rule
    private let failures = Mutex<[String: [Date]]>([:])
    private let maximumKeys = 100_000

    public init(rule: Rule) { self.rule = rule }

    /// Seconds to wait before `key` may try again; nil if it may try now.
    public func retryAfter(_ key: String, now: Date = Date()) -> Int? {
        failures.withLock { table -> Int? in
            let recent = (table[key] ?? []).filter { now.timeIntervalSince($0) < rule.window }
            table[key] = recent.isEmpty ? nil : recent
            guard recent.count >= rule.failures, let oldest = recent.first else { return nil }
            return max(1, Int((rule.window - now.timeIntervalSince(oldest)).rounded(.up)))
        }
    }

    public func recordFailure(_ key: String, now: Date = Date()) {
        failures.withLock { table in
            if table.count >= maximumKeys { table = table.filter { $0.value.contains { now.timeIntervalSince($0) < rule.window } } }
            table[key, default: []].append(now)
            if table[key]!.count > rule.failures * 2 { table[key]!.removeFirst(table[key]!.count - rule.failures * 2) }
        }
    }
}
