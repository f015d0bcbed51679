/// Writes an RFC 8285 one-byte header extension block (profile 0xBEDE) in place, right after
/// the fixed RTP header: elements of 1–16 data bytes with ids 1–14, zero-padded to a whole
/// number of 32-bit words. The one writer of extension blocks, so their layout lives in one place.
public struct OneByteExtensionWriter {
    /// Ids a one-byte element can carry (0 is padding, 15 ends the block).
    public static let ids: ClosedRange<UInt8> = 1...14
    public static let maximumDataLength = 16

    /// The bytes a block takes whose elements hold `dataLengths` bytes each: 0 without elements.
    @inlinable
    public static func blockLength(elements: Int, dataBytes: Int) -> Int {
        elements == 0 ? 0 : 4 + (elements + dataBytes + 3) / 4 * 4
    }

    @usableFromInline let buffer: UnsafeMutableRawBufferPointer
    @usableFromInline let start: Int
    @usableFromInline var cursor: Int

    /// Starts a block at `offset` of `buffer`, which must hold the whole block.
    @inlinable
    public init(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
        self.buffer = buffer
        start = offset
        cursor = offset + 4
        buffer.writeU16(0xBEDE, at: offset)
    }

    /// Appends one element of `length` bytes, written by `body` into the bytes it is given.
    @inlinable
    public mutating func append(id: UInt8, length: Int, _ body: (UnsafeMutableRawBufferPointer) -> Void) {
        precondition(Self.ids.contains(id) && (1...Self.maximumDataLength).contains(length), "not a one-byte header extension element")
        buffer[cursor] = id << 4 | UInt8(length - 1)
        body(UnsafeMutableRawBufferPointer(rebasing: buffer[(cursor + 1)..<(cursor + 1 + length)]))
        cursor += 1 + length
    }

    /// Appends one element holding `bytes` (nothing when empty): the mid and rid, whose values are text.
    @inlinable
    public mutating func append(id: UInt8, bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        append(id: id, length: bytes.count) { data in bytes.withUnsafeBytes { data.copyMemory(from: $0) } }
    }

    /// The bytes of a text value that fit one element: at most 16.
    public static func elementBytes(of text: String) -> [UInt8] { Array(text.utf8.prefix(maximumDataLength)) }

    /// Pads the block to whole words and writes its length; returns the offset just past it.
    @inlinable
    public mutating func finish() -> Int {
        while (cursor - start) % 4 != 0 {
            buffer[cursor] = 0
            cursor += 1
        }
        buffer.writeU16(UInt16((cursor - start - 4) / 4), at: start + 2)
        return cursor
    }
}
