/// RTCP transport-layer generic NACK (RFC 4585 §6.2.1): lost sequence numbers as PID + bitmask pairs.
public struct GenericNACK: Sendable, Equatable {
    static let format: UInt8 = 1
    public var senderSSRC: UInt32
    public var mediaSSRC: UInt32
    /// A packet ID and a bitmask of the 16 sequence numbers after it that are lost too.
    public struct Pair: Sendable, Equatable {
        public var id: UInt16
        public var mask: UInt16
        public init(_ id: UInt16, _ mask: UInt16) { self.id = id; self.mask = mask }
    }
    public var pairs: [Pair]

    public init(senderSSRC: UInt32, mediaSSRC: UInt32, lost: [UInt16]) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        pairs = []
        for sequence in lost {
            if var last = pairs.last {
                let distance = sequence &- last.id
                if distance >= 1 && distance <= 16 {
                    last.mask |= 1 << (distance - 1)
                    pairs[pairs.count - 1] = last
                    continue
                }
            }
            pairs.append(Pair(sequence, 0))
        }
    }

    public init(parsing bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= 12 else { throw .truncated("NACK needs 12 bytes") }
        senderSSRC = bytes.readU32(at: 4)
        mediaSSRC = bytes.readU32(at: 8)
        guard (bytes.count - 12) % 4 == 0 else { throw .invalid("NACK FCI length \(bytes.count - 12)") }
        pairs = stride(from: 12, to: bytes.count, by: 4).map { Pair(bytes.readU16(at: $0), bytes.readU16(at: $0 + 2)) }
    }

    /// Every sequence number the NACK asks for.
    public var lostSequenceNumbers: [UInt16] {
        var lost: [UInt16] = []
        for pair in pairs {
            lost.append(pair.id)
            for bit in 0..<16 where pair.mask & (1 << bit) != 0 { lost.append(pair.id &+ UInt16(bit + 1)) }
        }
        return lost
    }

    public func write(into out: inout [UInt8]) {
        let start = out.beginRTCP(count: Self.format, type: .transportFeedback)
        out.appendU32(senderSSRC)
        out.appendU32(mediaSSRC)
        for pair in pairs { out.appendU16(pair.id); out.appendU16(pair.mask) }
        out.finishRTCP(startingAt: start)
    }
}
