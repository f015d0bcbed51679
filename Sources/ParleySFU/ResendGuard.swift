import ParleyBase

/// Resends a packet to one subscriber at most once per `interval`: a receiver that asks again
/// before the first resend could have arrived (an overloaded one asks for the same packets over and
/// over) gets nothing new, and the SFU does not bury it under copies. libwebrtc's packet history
/// holds back a resend within the round trip for the same reason. A fixed table, made at the first
/// resend (most consumers, every audio one, never resend: a meeting of 1,000 has tens of thousands
/// of consumers), and no allocation after.
struct ResendGuard: Sendable {
    static let slots = 512
    static let interval: Nanoseconds = 100_000_000
    private var sequences: [UInt16] = []
    private var resentAt: [Nanoseconds] = []

    /// Whether `sequence` may be resent now; if so, it is noted as resent.
    mutating func allow(_ sequence: UInt16, now: Nanoseconds) -> Bool {
        if sequences.isEmpty {
            sequences = [UInt16](repeating: 0, count: Self.slots)
            resentAt = [Nanoseconds](repeating: 0, count: Self.slots)
        }
        let slot = Int(sequence) % Self.slots
        if resentAt[slot] != 0, sequences[slot] == sequence, now &- resentAt[slot] < Self.interval { return false }
        sequences[slot] = sequence
        resentAt[slot] = max(now, 1)
        return true
    }
}
