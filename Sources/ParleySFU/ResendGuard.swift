import ParleyBase

/// Resends a packet to one subscriber at most once per `interval`: a receiver that asks again
/// before the first resend could have arrived (an overloaded one asks for the same packets over and
/// over) gets nothing new, and the SFU does not bury it under copies. libwebrtc's packet history
/// holds back a resend within the round trip for the same reason. A fixed table, no allocation.
struct ResendGuard: Sendable {
    static let slots = 512
    static let interval: Nanoseconds = 100_000_000
    private var sequences = [UInt16](repeating: 0, count: ResendGuard.slots)
    private var resentAt = [Nanoseconds](repeating: 0, count: ResendGuard.slots)

    /// Whether `sequence` may be resent now; if so, it is noted as resent.
    mutating func allow(_ sequence: UInt16, now: Nanoseconds) -> Bool {
        let slot = Int(sequence) % Self.slots
        if resentAt[slot] != 0, sequences[slot] == sequence, now &- resentAt[slot] < Self.interval { return false }
        sequences[slot] = sequence
        resentAt[slot] = max(now, 1)
        return true
    }
}
