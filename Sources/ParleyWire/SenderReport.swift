/// RTCP Sender Report (RFC 3550 §6.4.1).
public struct SenderReport: Sendable, Equatable {
    public var ssrc: UInt32
    /// 64-bit NTP timestamp (seconds since 1900 in the high word).
    public var ntpTimestamp: UInt64
    public var rtpTimestamp: UInt32
    public var packetCount: UInt32
    public var octetCount: UInt32
    public var reports: [ReportBlock]

    public init(ssrc: UInt32, ntpTimestamp: UInt64, rtpTimestamp: UInt32, packetCount: UInt32, octetCount: UInt32,
                reports: [ReportBlock] = []) {
        self.ssrc = ssrc; self.ntpTimestamp = ntpTimestamp; self.rtpTimestamp = rtpTimestamp
        self.packetCount = packetCount; self.octetCount = octetCount; self.reports = reports
    }

    public init(parsing bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= 28 else { throw .truncated("SR needs 28 bytes, got \(bytes.count)") }
        ssrc = bytes.readU32(at: 4)
        ntpTimestamp = UInt64(bytes.readU32(at: 8)) << 32 | UInt64(bytes.readU32(at: 12))
        rtpTimestamp = bytes.readU32(at: 16)
        packetCount = bytes.readU32(at: 20)
        octetCount = bytes.readU32(at: 24)
        reports = try ReportBlock.parseBlocks(bytes, from: 28, count: Int(bytes[0] & 0x1F))
    }

    /// The middle 32 bits of the NTP timestamp, as receivers echo it in LSR.
    public var compactNTP: UInt32 { UInt32(truncatingIfNeeded: ntpTimestamp >> 16) }

    public func write(into out: inout [UInt8]) {
        let start = out.beginRTCP(count: UInt8(reports.count), type: .senderReport)
        out.appendU32(ssrc)
        out.appendU32(UInt32(ntpTimestamp >> 32))
        out.appendU32(UInt32(truncatingIfNeeded: ntpTimestamp))
        out.appendU32(rtpTimestamp)
        out.appendU32(packetCount)
        out.appendU32(octetCount)
        for report in reports { report.write(into: &out) }
        out.finishRTCP(startingAt: start)
    }
}
