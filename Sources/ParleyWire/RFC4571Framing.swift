/// RFC 4571 framing: STUN, DTLS, RTP and RTCP over a TCP connection (ICE-TCP, RFC 6544), each
/// packet preceded by its length in two bytes, big-endian. The reassembler collects what the
/// socket gives, in whatever pieces, and hands out whole packets. Fixed memory.
public struct RFC4571Reassembler: Sendable {
    /// Room for one largest packet and most of the next.
    public static let capacity = 2 * (2 + 65535)
    private var storage: [UInt8]
    private var start = 0
    private var end = 0

    public enum Frame: Hashable, Sendable {
        /// A packet of this length was copied out.
        case packet(Int)
        /// A packet longer than the space given was skipped.
        case tooLarge(Int)
    }

    public init() {
        storage = [UInt8](repeating: 0, count: Self.capacity)
    }

    /// Bytes waiting that do not make a whole packet yet.
    public var buffered: Int { end - start }

    /// Lets `read` fill free space (at least one largest frame's worth) and records how much it
    /// read (its return value; 0 or less records nothing).
    public mutating func fill(_ read: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        if Self.capacity - end < 2 + 65535 {
            // Move what waits to the front, so a whole frame always fits after it.
            storage.withUnsafeMutableBytes { raw in
                if end > start { raw.baseAddress!.copyMemory(from: raw.baseAddress! + start, byteCount: end - start) }
            }
            end -= start
            start = 0
        }
        let count = storage.withUnsafeMutableBytes { raw in read(UnsafeMutableRawBufferPointer(rebasing: raw[end...])) }
        if count > 0 { end += count }
        return count
    }

    /// The next whole packet, copied into `destination`; nil until one is whole.
    public mutating func next(into destination: UnsafeMutableRawBufferPointer) -> Frame? {
        guard end - start >= 2 else { return nil }
        let length = Int(storage[start]) << 8 | Int(storage[start + 1])
        guard end - start >= 2 + length else { return nil }
        defer { start += 2 + length }
        guard length <= destination.count else { return .tooLarge(length) }
        storage.withUnsafeBytes { raw in
            destination.baseAddress!.copyMemory(from: raw.baseAddress! + start + 2, byteCount: length)
        }
        return .packet(length)
    }

    /// The two bytes that go before a packet of `length` bytes.
    public static func header(length: Int) -> (UInt8, UInt8) {
        (UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length))
    }
}
