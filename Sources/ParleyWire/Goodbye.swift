/// RTCP BYE (RFC 3550 §6.6).
public struct Goodbye: Sendable, Equatable {
    public var sources: [UInt32]

    public init(sources: [UInt32]) { self.sources = sources }

    public init(parsing bytes: UnsafeRawBufferPointer) throws(WireError) {
        // The count is in the header: a buffer without one must not be read (fuzz/regressions/rtcp-bye).
        guard bytes.count >= 4 else { throw .truncated("BYE header") }
        let count = Int(bytes[0] & 0x1F)
        guard bytes.count >= 4 + 4 * count else { throw .truncated("BYE with \(count) sources") }
        sources = (0..<count).map { bytes.readU32(at: 4 + 4 * $0) }
    }

    public func write(into out: inout [UInt8]) {
        let start = out.beginRTCP(count: UInt8(sources.count), type: .goodbye)
        for source in sources { out.appendU32(source) }
        out.finishRTCP(startingAt: start)
    }
}
