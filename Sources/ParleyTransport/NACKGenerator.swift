import ParleyBase
import ParleyWire

/// Tracks the sequence numbers missing from a received stream (at the SFU a publisher's, in the
/// load generator the SFU's) and says which to ask for again (RFC 4585 generic NACK), after
/// pion's receive log: fixed memory, no allocation per packet.
public struct NACKGenerator: Sendable {
    static let capacity = 512
    /// Give up on a packet after this long: it would arrive too late to play.
    public var maximumAge: Nanoseconds = .milliseconds(1000)
    /// Ask again after this long without the packet.
    public var retryInterval: Nanoseconds = .milliseconds(100)
    public var maximumTries = 5

    private var highest: UInt16?
    private var slots: [Int32]
    private var firstMissingAt: [Nanoseconds]
    private var lastAskedAt: [Nanoseconds]
    private var tries: [UInt8]
    public private(set) var missingCount = 0

    public init() {
        slots = Array(repeating: -1, count: Self.capacity)
        firstMissingAt = Array(repeating: 0, count: Self.capacity)
        lastAskedAt = Array(repeating: 0, count: Self.capacity)
        tries = Array(repeating: 0, count: Self.capacity)
    }

    /// Records a received packet (original or repaired). Returns false for a packet received
    /// before: a publisher probing its bandwidth resends packets over RTX that were never lost.
    @discardableResult
    public mutating func received(_ sequence: UInt16, now: Nanoseconds) -> Bool {
        guard let last = highest else {
            highest = sequence
            return true
        }
        if SequenceNumber.isNewer(sequence, than: last) {
            let gap = Int(sequence &- last) - 1
            if gap >= Self.capacity {
                // Too much lost to repair: start over from here.
                clearAll()
            } else {
                var missing = last &+ 1
                while missing != sequence {
                    let index = Int(missing) % Self.capacity
                    if slots[index] < 0 { missingCount += 1 }
                    slots[index] = Int32(missing)
                    firstMissingAt[index] = now
                    lastAskedAt[index] = 0
                    tries[index] = 0
                    missing &+= 1
                }
            }
            highest = sequence
            return true
        }
        if Int(last &- sequence) >= Self.capacity {
            // Far behind anything tracked: the stream started over (a new sequence space).
            clearAll()
            highest = sequence
            return true
        }
        return clear(sequence)
    }

    /// Whether `sequence` would be the newest seen (not a late packet filling a gap).
    public func isNewest(_ sequence: UInt16) -> Bool {
        highest.map { SequenceNumber.isNewer(sequence, than: $0) } ?? true
    }

    /// The sequence numbers to ask for now; ages out hopeless ones.
    public mutating func due(now: Nanoseconds) -> [UInt16] {
        guard missingCount > 0 else { return [] }
        var lost: [UInt16] = []
        for index in 0..<Self.capacity where slots[index] >= 0 {
            if now > firstMissingAt[index] + maximumAge || Int(tries[index]) >= maximumTries {
                slots[index] = -1
                missingCount -= 1
                continue
            }
            guard tries[index] == 0 || now >= lastAskedAt[index] + retryInterval else { continue }
            tries[index] += 1
            lastAskedAt[index] = now
            lost.append(UInt16(slots[index]))
        }
        // Ascending from the oldest, across wraparound, so the NACK packs into few bitmasks.
        if let newest = highest { lost.sort { ($0 &- newest &- 1) < ($1 &- newest &- 1) } }
        return lost
    }

    /// Forgets a missing packet that came; false if it was not missing.
    private mutating func clear(_ sequence: UInt16) -> Bool {
        let index = Int(sequence) % Self.capacity
        guard slots[index] == Int32(sequence) else { return false }
        slots[index] = -1
        missingCount -= 1
        return true
    }

    private mutating func clearAll() {
        for index in 0..<Self.capacity where slots[index] >= 0 { slots[index] = -1 }
        missingCount = 0
    }
}
