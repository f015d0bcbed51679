/// RTCP Source Description (RFC 3550 §6.5); Parley reads and writes the CNAME item.
public struct SourceDescription: Sendable, Equatable {
    public struct Chunk: Sendable, Equatable {
        public var ssrc: UInt32
        public var cname: String?
        public init(ssrc: UInt32, cname: String?) { self.ssrc = ssrc; self.cname = cname }
    }

    public var chunks: [Chunk]

    public init(chunks: [Chunk]) { self.chunks = chunks }

    public init(parsing bytes: UnsafeRawBufferPointer) throws(WireError) {
        // The count is in the header: a buffer without one must not be read (fuzz/regressions/rtcp-sdes).
        guard bytes.count >= 4 else { throw .truncated("SDES header") }
        let count = Int(bytes[0] & 0x1F)
        var offset = 4
        chunks = []
        for _ in 0..<count {
            guard offset + 4 <= bytes.count else { throw .truncated("SDES chunk") }
            var chunk = Chunk(ssrc: bytes.readU32(at: offset), cname: nil)
            offset += 4
            while true {
                guard offset < bytes.count else { throw .truncated("SDES item list") }
                let itemType = bytes[offset]
                if itemType == 0 {
                    offset += 1
                    offset = (offset + 3) & ~3
                    break
                }
                guard offset + 2 <= bytes.count else { throw .truncated("SDES item header") }
                let length = Int(bytes[offset + 1])
                guard offset + 2 + length <= bytes.count else { throw .truncated("SDES item of \(length) bytes") }
                if itemType == 1 {
                    chunk.cname = String(decoding: bytes[(offset + 2)..<(offset + 2 + length)], as: UTF8.self)
                }
                offset += 2 + length
            }
            chunks.append(chunk)
        }
    }

    public func write(into out: inout [UInt8]) {
        let start = out.beginRTCP(count: UInt8(chunks.count), type: .sourceDescription)
        for chunk in chunks {
            let chunkStart = out.count
            out.appendU32(chunk.ssrc)
            if let cname = chunk.cname {
                let utf8 = Array(cname.utf8.prefix(255))
                out.append(1); out.append(UInt8(utf8.count)); out.append(contentsOf: utf8)
            }
            out.append(0)
            while (out.count - chunkStart) % 4 != 0 { out.append(0) }
        }
        out.finishRTCP(startingAt: start)
    }
}
