import ParleyWire

/// Keeps VP8 picture IDs and TL0PICIDX continuous on one outgoing stream while its source changes
/// (another simulcast layer, another publisher): receivers drop frames whose picture ID looks
/// older than the last one, so a switch to a source numbered behind would freeze the picture.
/// Pictures of a temporal layer the subscriber does not get leave no gap either: a receiver waits
/// on a missing picture that might be one its next frame depends on.
struct VP8Rewriter {
    private var pictures = GaplessNumbering(mask: 0x7FFF)
    private var tl0Delta: UInt8 = 0
    private var lastPictureID: UInt16?
    private var lastTL0: UInt8?
    private var needsSync = true

    /// The next packet comes from a new source: number its frames on from the last ones sent.
    mutating func switchSource() { needsSync = true }

    /// Rewrites the descriptor of one outgoing payload in place. `descriptor`: the payload's, when
    /// the producer parsed it already (the payload is copied unchanged, offsets hold). `retransmission`:
    /// an earlier packet sent again, numbered as it was then.
    mutating func rewrite(_ payload: UnsafeMutableRawBufferPointer, descriptor parsed: VP8PayloadDescriptor? = nil, retransmission: Bool = false) {
        guard let descriptor = parsed ?? (try? VP8PayloadDescriptor(parsing: UnsafeRawBufferPointer(payload))) else { return }
        let sync = needsSync && !retransmission
        if let incoming = descriptor.pictureID {
            let mask: UInt16 = descriptor.hasLongPictureID ? 0x7FFF : 0x7F
            if sync { pictures.reset(offset: lastPictureID.map { $0 &+ 1 &- incoming } ?? 0, mask: mask) }
            let outgoing = pictures.outgoing(incoming)
            if outgoing != incoming { descriptor.setPictureID(outgoing, in: payload) }
            if !retransmission { lastPictureID = outgoing }
        }
        if let incoming = descriptor.tl0PictureIndex {
            if sync { tl0Delta = lastTL0.map { $0 &+ 1 &- incoming } ?? 0 }
            let outgoing = incoming &+ tl0Delta
            if outgoing != incoming { descriptor.setTL0PictureIndex(outgoing, in: payload) }
            if !retransmission { lastTL0 = outgoing }
        }
        if sync { needsSync = false }
    }

    /// A picture of the current source is not forwarded (a temporal layer left out).
    mutating func drop(_ descriptor: VP8PayloadDescriptor) {
        guard !needsSync, let pictureID = descriptor.pictureID else { return }
        pictures.drop(pictureID)
    }
}
