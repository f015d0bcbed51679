import ParleyBase
import ParleyTransport
import ParleyWire

/// What the SFU sent on one transport, by transport-wide sequence number: when and how big, so a
/// subscriber's transport-wide feedback becomes packet results for its bandwidth estimator.
/// Fixed memory, no allocation per packet.
struct SendHistory {
    static let capacity = 4096
    private var sentAt = [Nanoseconds](repeating: 0, count: capacity)
    private var sizes = [Int](repeating: 0, count: capacity)
    private var sequences = [Int64](repeating: -1, count: capacity)
    private var next: Int64 = 1
    /// Packets numbered before this went out on a path that is gone: feedback on them is ignored.
    private var firstOnPath: Int64 = 1

    /// Numbers the next outgoing packet.
    mutating func nextSequence() -> UInt16 {
        defer { next += 1 }
        return UInt16(truncatingIfNeeded: next)
    }

    mutating func sent(_ wrapped: UInt16, size: Int, at now: Nanoseconds) {
        let sequence = unwrap(wrapped)
        let slot = Int(sequence & Int64(Self.capacity - 1))
        sentAt[slot] = now
        sizes[slot] = size
        sequences[slot] = sequence
    }

    /// The path changed: what went out before says nothing about the new one (lost on the old
    /// path, it is not loss on the new).
    mutating func startNewPath() { firstOnPath = next }

    /// The latest sequence number handed out that has this wrapped value.
    private func unwrap(_ wrapped: UInt16) -> Int64 {
        let last = next - 1
        return last - Int64(UInt16(truncatingIfNeeded: last) &- wrapped)
    }

    /// The packets a feedback reports on that we still remember, in sequence order. Arrival
    /// times keep the receiver's clock (only their differences count).
    func results(for feedback: TransportWideFeedback) -> [PacketResult] {
        let reference = Int64(feedback.referenceTime) * TransportWideFeedback.referenceTimeMicroseconds
        var results: [PacketResult] = []
        results.reserveCapacity(feedback.arrivals.count)
        for (index, arrival) in feedback.arrivals.enumerated() {
            let sequence = unwrap(feedback.baseSequence &+ UInt16(truncatingIfNeeded: index))
            let slot = Int(sequence & Int64(Self.capacity - 1))
            guard sequences[slot] == sequence, sequence >= firstOnPath else { continue }
            let arrivedAt = arrival.map { Nanoseconds(max(0, reference + $0)) * 1000 }
            results.append(PacketResult(sentAt: sentAt[slot], size: sizes[slot], arrivedAt: arrivedAt))
        }
        return results
    }
}
