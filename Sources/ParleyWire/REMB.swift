/// Receiver Estimated Maximum Bitrate (draft-alvestrand-rmcat-remb), a payload-specific AFB message.
public struct ReceiverEstimatedMaximumBitrate: Sendable, Equatable {
    static let identifier: UInt32 = 0x5245_4D42  // "REMB"
    public var senderSSRC: UInt32
    public var bitrate: UInt64
    public var ssrcs: [UInt32]

    public init(senderSSRC: UInt32, bitrate: UInt64, ssrcs: [UInt32]) {
        self.senderSSRC = senderSSRC; self.bitrate = bitrate; self.ssrcs = ssrcs
    }

    public init(parsing bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= 20 else { throw .truncated("REMB needs 20 bytes") }
        senderSSRC = bytes.readU32(at: 4)
        let count = Int(bytes[16])
        let exponent = bytes[17] >> 2
        let mantissa = UInt64(bytes[17] & 0x03) << 16 | UInt64(bytes[18]) << 8 | UInt64(bytes[19])
        bitrate = mantissa << exponent
        guard bytes.count >= 20 + 4 * count else { throw .truncated("REMB with \(count) SSRCs") }
        ssrcs = (0..<count).map { bytes.readU32(at: 20 + 4 * $0) }
    }

    public func write(into out: inout [UInt8]) {
        let start = out.beginRTCP(count: 15, type: .payloadFeedback)
        out.appendU32(senderSSRC)
        out.appendU32(0)
        out.appendU32(Self.identifier)
        var exponent: UInt8 = 0
        var mantissa = bitrate
        while mantissa > 0x3FFFF { mantissa >>= 1; exponent += 1 }
        out.append(UInt8(ssrcs.count))
        out.append(exponent << 2 | UInt8(mantissa >> 16))
        out.appendU16(UInt16(truncatingIfNeeded: mantissa))
        for ssrc in ssrcs { out.appendU32(ssrc) }
        out.finishRTCP(startingAt: start)
    }
}
