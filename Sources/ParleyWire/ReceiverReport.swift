/// One reception report block (RFC 3550 §6.4.1), shared by SR and RR.
public struct ReportBlock: Sendable, Equatable {
    public var ssrc: UInt32
    public var fractionLost: UInt8
    /// 24-bit signed cumulative loss.
    public var cumulativeLost: Int32
    public var highestSequence: UInt32
    public var jitter: UInt32
    public var lastSenderReport: UInt32
    public var delaySinceLastSenderReport: UInt32

    public init(ssrc: UInt32, fractionLost: UInt8, cumulativeLost: Int32, highestSequence: UInt32, jitter: UInt32,
                lastSenderReport: UInt32, delaySinceLastSenderReport: UInt32) {
        self.ssrc = ssrc; self.fractionLost = fractionLost; self.cumulativeLost = cumulativeLost
        self.highestSequence = highestSequence; self.jitter = jitter
        self.lastSenderReport = lastSenderReport; self.delaySinceLastSenderReport = delaySinceLastSenderReport
    }

    static let length = 24

    init(parsing bytes: UnsafeRawBufferPointer, at offset: Int) {
        ssrc = bytes.readU32(at: offset)
        fractionLost = bytes[offset + 4]
        let raw = bytes.readU24(at: offset + 5)
        cumulativeLost = raw & 0x80_0000 != 0 ? Int32(bitPattern: raw | 0xFF00_0000) : Int32(raw)
        highestSequence = bytes.readU32(at: offset + 8)
        jitter = bytes.readU32(at: offset + 12)
        lastSenderReport = bytes.readU32(at: offset + 16)
        delaySinceLastSenderReport = bytes.readU32(at: offset + 20)
    }

    func write(into out: inout [UInt8]) {
        out.appendU32(ssrc)
        out.append(fractionLost)
        let lost = UInt32(bitPattern: max(-0x80_0000, min(0x7F_FFFF, cumulativeLost))) & 0xFF_FFFF
        out.append(UInt8(lost >> 16)); out.append(UInt8(truncatingIfNeeded: lost >> 8)); out.append(UInt8(truncatingIfNeeded: lost))
        out.appendU32(highestSequence)
        out.appendU32(jitter)
        out.appendU32(lastSenderReport)
        out.appendU32(delaySinceLastSenderReport)
    }

    static func parseBlocks(_ bytes: UnsafeRawBufferPointer, from offset: Int, count: Int) throws(WireError) -> [ReportBlock] {
        guard bytes.count >= offset + count * length else { throw .truncated("\(count) report blocks") }
        return (0..<count).map { ReportBlock(parsing: bytes, at: offset + $0 * length) }
    }
}

/// RTCP Receiver Report (RFC 3550 §6.4.2).
public struct ReceiverReport: Sendable, Equatable {
    public var ssrc: UInt32
    public var reports: [ReportBlock]

    public init(ssrc: UInt32, reports: [ReportBlock]) { self.ssrc = ssrc; self.reports = reports }

    public init(parsing bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= 8 else { throw .truncated("RR needs 8 bytes") }
        ssrc = bytes.readU32(at: 4)
        reports = try ReportBlock.parseBlocks(bytes, from: 8, count: Int(bytes[0] & 0x1F))
    }

    public func write(into out: inout [UInt8]) {
        let start = out.beginRTCP(count: UInt8(reports.count), type: .receiverReport)
        out.appendU32(ssrc)
        for report in reports { report.write(into: &out) }
        out.finishRTCP(startingAt: start)
    }
}
