/// RTCP Full Intra Request (RFC 5104 §4.3.1).
public struct FullIntraRequest: Sendable, Equatable {
    static let format: UInt8 = 4
    public struct Entry: Sendable, Equatable {
        public var ssrc: UInt32
        public var sequenceNumber: UInt8
        public init(ssrc: UInt32, sequenceNumber: UInt8) { self.ssrc = ssrc; self.sequenceNumber = sequenceNumber }
    }
    public var senderSSRC: UInt32
    public var entries: [Entry]

    public init(senderSSRC: UInt32, entries: [Entry]) { self.senderSSRC = senderSSRC; self.entries = entries }

    public init(parsing bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= 12 else { throw .truncated("FIR needs 12 bytes") }
        guard (bytes.count - 12) % 8 == 0 else { throw .invalid("FIR FCI length \(bytes.count - 12)") }
        senderSSRC = bytes.readU32(at: 4)
        entries = stride(from: 12, to: bytes.count, by: 8).map { Entry(ssrc: bytes.readU32(at: $0), sequenceNumber: bytes[$0 + 4]) }
    }

    public func write(into out: inout [UInt8]) {
        let start = out.beginRTCP(count: Self.format, type: .payloadFeedback)
        out.appendU32(senderSSRC)
        out.appendU32(0)
        for entry in entries { out.appendU32(entry.ssrc); out.append(entry.sequenceNumber); out.append(0); out.appendU16(0) }
        out.finishRTCP(startingAt: start)
    }
}
