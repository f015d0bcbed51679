/// Numbers that the SFU forwards with some of them dropped on purpose (packets and pictures of a
/// temporal layer a subscriber does not get), renumbered so the subscriber sees no gap: a gap is
/// a loss to it, which it asks for again and waits on. After mediasoup's SeqManager.
///
/// Numbers wrap at `mask + 1` (16-bit sequence numbers, 15- or 7-bit VP8 picture IDs). Each drop
/// of the newest number lowers the offset by one from there on; the last drops are remembered so
/// late packets and retransmissions are numbered as they were when they first went out. Fixed
/// memory: nothing is allocated per packet.
struct GaplessNumbering {
    private(set) var mask: UInt16
    /// Added to incoming numbers newer than every remembered drop.
    private(set) var offset: UInt16 = 0
    private var newest: UInt16?
    /// Ring of the last drops: the dropped incoming number and the offset from there on.
    private var drops: [(dropped: UInt16, offsetAfter: UInt16)]
    private var dropsStart = 0
    private var dropsCount = 0
    private static let capacity = 64

    init(mask: UInt16) {
        self.mask = mask
        drops = Array(repeating: (0, 0), count: Self.capacity)
    }

    /// Starts over with `offset` (the stream's source changed): earlier drops no longer apply.
    mutating func reset(offset: UInt16, mask: UInt16? = nil) {
        if let mask { self.mask = mask }
        self.offset = offset & self.mask
        newest = nil
        dropsStart = 0
        dropsCount = 0
    }

    /// `incoming` is dropped: numbers after it move down by one. A late number (older than one
    /// already seen) changes nothing: its place was kept and stays a gap.
    mutating func drop(_ incoming: UInt16) {
        if let newest, !isNewer(incoming, than: newest) { return }
        newest = incoming
        forgetDropsFarBehind(incoming)
        offset = (offset &- 1) & mask
        if dropsCount == Self.capacity {
            dropsStart = (dropsStart + 1) % Self.capacity
            dropsCount -= 1
        }
        drops[(dropsStart + dropsCount) % Self.capacity] = (incoming, offset)
        dropsCount += 1
    }

    /// The outgoing number for a forwarded incoming one.
    mutating func outgoing(_ incoming: UInt16) -> UInt16 {
        if newest.map({ isNewer(incoming, than: $0) }) ?? true {
            newest = incoming
            forgetDropsFarBehind(incoming)
        }
        return (incoming &+ offset(for: incoming)) & mask
    }

    /// Drops more than a quarter of the number space behind the newest are forgotten: half the
    /// space on, a remembered drop would look newer than the incoming numbers again and lend them
    /// an old offset. Numbers that late are not forwarded anyway.
    private mutating func forgetDropsFarBehind(_ newest: UInt16) {
        while dropsCount > 0, (newest &- drops[dropsStart].dropped) & mask > mask / 4 {
            dropsStart = (dropsStart + 1) % Self.capacity
            dropsCount -= 1
        }
    }

    /// The incoming number an outgoing one was made from (for a retransmission request).
    func incoming(of outgoing: UInt16) -> UInt16 {
        var candidate = (outgoing &- offset) & mask
        // Walk back through the drops while the candidate falls at or before one.
        var index = dropsCount - 1
        while index >= 0 {
            let drop = drops[(dropsStart + index) % Self.capacity]
            guard !isNewer(candidate, than: drop.dropped) else { break }
            let before = index > 0 ? drops[(dropsStart + index - 1) % Self.capacity].offsetAfter : (drop.offsetAfter &+ 1) & mask
            candidate = (outgoing &- before) & mask
            index -= 1
        }
        return candidate
    }

    /// The offset in force for `incoming`: the one set by the last drop before it.
    private func offset(for incoming: UInt16) -> UInt16 {
        var index = dropsCount - 1
        while index >= 0 {
            let drop = drops[(dropsStart + index) % Self.capacity]
            if isNewer(incoming, than: drop.dropped) { return drop.offsetAfter }
            index -= 1
        }
        return dropsCount == 0 ? offset : (drops[dropsStart].offsetAfter &+ 1) & mask
    }

    private func isNewer(_ a: UInt16, than b: UInt16) -> Bool {
        let distance = (a &- b) & mask
        return distance != 0 && distance <= mask / 2
    }
}
