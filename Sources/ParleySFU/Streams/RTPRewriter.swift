import ParleyBase
import ParleyWire
import ParleyTransport

/// Rewrites sequence numbers and timestamps so that one outgoing stream stays continuous while its
/// source changes, and while packets of it are dropped on purpose (after mediasoup's SeqManager
/// and livekit's rtpmunger).
struct RTPRewriter {
    private var sequences = GaplessNumbering(mask: 0xFFFF)
    private var timestampOffset: UInt32 = 0
    /// First incoming sequence number of the current source; older packets are dropped. It
    /// trails the newest by at most `syncWindow`: a fixed one would look newer than every packet
    /// once the stream is half the sequence space past it, and those 32,768 packets would be
    /// dropped (found by the 30-minute soak: audio silent from minute 11 to 22).
    private var syncSequence: UInt16 = 0
    static let syncWindow: UInt16 = 0x4000
    private var needsSync = true
    private var started = false
    private(set) var lastSequence: UInt16 = 0
    private(set) var lastTimestamp: UInt32 = 0
    private(set) var lastSentAt: Nanoseconds = 0

    init() {}

    /// The next packet comes from a new source (or the same after a gap): resynchronize on it.
    mutating func switchSource() { needsSync = true }

    /// Outgoing (sequence, timestamp) for an incoming packet, or nil if it predates the current source.
    mutating func rewrite(sequence: UInt16, timestamp: UInt32, now: Nanoseconds, clockRate: UInt32) -> (sequence: UInt16, timestamp: UInt32)? {
        if needsSync {
            if started {
                sequences.reset(offset: lastSequence &+ 1 &- sequence)
                let elapsedMilliseconds = (now &- lastSentAt) / 1_000_000
                let ticks = max(1, elapsedMilliseconds * UInt64(clockRate) / 1000)
                timestampOffset = lastTimestamp &+ UInt32(truncatingIfNeeded: ticks) &- timestamp
            } else {
                sequences.reset(offset: 0)
            }
            syncSequence = sequence
            needsSync = false
        } else if SequenceNumber.isNewer(syncSequence, than: sequence) {
            return nil
        }
        // Packets older than the sync point returned above: this one is at most half the space past it.
        if sequence &- syncSequence > Self.syncWindow {
            syncSequence = sequence &- Self.syncWindow
        }
        let outSequence = sequences.outgoing(sequence)
        let outTimestamp = timestamp &+ timestampOffset
        if !started || SequenceNumber.isNewer(outSequence, than: lastSequence) {
            lastSequence = outSequence
            lastTimestamp = outTimestamp
            lastSentAt = now
        }
        started = true
        return (outSequence, outTimestamp)
    }

    /// A packet of the current source is not forwarded on purpose: no gap is left for it.
    mutating func drop(sequence: UInt16) {
        guard started, !needsSync, !SequenceNumber.isNewer(syncSequence, than: sequence) else { return }
        sequences.drop(sequence)
    }

    /// The incoming sequence number an outgoing one came from, if it belongs to the current source.
    func incomingSequence(of outgoing: UInt16) -> UInt16? {
        guard started, !needsSync else { return nil }
        let incoming = sequences.incoming(of: outgoing)
        return SequenceNumber.isNewer(syncSequence, than: incoming) ? nil : incoming
    }

    /// Incoming timestamp → outgoing, for retransmissions.
    func outgoingTimestamp(of incoming: UInt32) -> UInt32 { incoming &+ timestampOffset }
}
