import ParleyBase
import ParleyTransport
import ParleyWire

/// The receiving half of transport-wide congestion control: notes when each transport-wide
/// sequence number arrived and turns that into feedback for the sender (every 100 ms), whose own
/// estimator (a browser's GCC) then learns how much the path to the SFU carries. Fixed memory: no
/// allocation per packet.
struct TransportFeedbackRecorder {
    static let capacity = 1024
    static let interval: Nanoseconds = 100_000_000
    /// The most sequence numbers one feedback packet covers.
    static let maximumPerFeedback = 512
    private var arrivals = [Nanoseconds](repeating: 0, count: capacity)
    private var sequences = [Int64](repeating: -1, count: capacity)
    private var highest: Int64?
    private var nextToReport: Int64?
    private var feedbackCount: UInt8 = 0
    private var lastSentAt: Nanoseconds = 0
    /// The media SSRC the feedback names (any the sender uses; browsers read only the numbers).
    private(set) var mediaSSRC: UInt32 = 0

    mutating func record(_ wrapped: UInt16, ssrc: UInt32, at now: Nanoseconds) {
        let sequence = unwrap(wrapped)
        let slot = Int(sequence & Int64(Self.capacity - 1))
        arrivals[slot] = now
        sequences[slot] = sequence
        mediaSSRC = ssrc
        if highest.map({ sequence > $0 }) ?? true { highest = sequence }
        if nextToReport == nil { nextToReport = sequence }
    }

    private func unwrap(_ wrapped: UInt16) -> Int64 {
        guard let highest else { return Int64(wrapped) }
        let delta = Int64(Int16(bitPattern: wrapped &- UInt16(truncatingIfNeeded: highest)))
        return highest + delta
    }

    /// Feedback for everything that arrived since the last one, when it is time.
    mutating func feedback(senderSSRC: UInt32, now: Nanoseconds) -> TransportWideFeedback? {
        guard now &- lastSentAt >= Self.interval, let highest, var first = nextToReport, first <= highest else { return nil }
        // Older than what the buffer still holds: skip to what it does.
        first = max(first, highest - Int64(Self.capacity) + 1)
        let last = min(highest, first + Int64(Self.maximumPerFeedback) - 1)
        var reference: Nanoseconds?
        for sequence in first...last {
            let slot = Int(sequence & Int64(Self.capacity - 1))
            if sequences[slot] == sequence { reference = arrivals[slot]; break }
        }
        guard let reference else { return nil }
        let referenceTicks = Int64(reference / 1000) / TransportWideFeedback.referenceTimeMicroseconds
        let base = referenceTicks * TransportWideFeedback.referenceTimeMicroseconds
        var times: [Int64?] = []
        times.reserveCapacity(Int(last - first + 1))
        for sequence in first...last {
            let slot = Int(sequence & Int64(Self.capacity - 1))
            times.append(sequences[slot] == sequence ? Int64(arrivals[slot] / 1000) - base : nil)
        }
        nextToReport = last + 1
        lastSentAt = now
        defer { feedbackCount &+= 1 }
        return TransportWideFeedback(senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, baseSequence: UInt16(truncatingIfNeeded: first),
                                     referenceTime: UInt32(truncatingIfNeeded: referenceTicks), feedbackCount: feedbackCount, arrivals: times)
    }
}
