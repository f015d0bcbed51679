/// The fixed part of an RTP header (RFC 3550 §5.1) and where its extension and payload lie,
/// read from a buffer without copying.
public struct RTPHeader: Sendable, Equatable {
    public var marker: Bool
    public var payloadType: UInt8
    public var sequenceNumber: UInt16
    public var timestamp: UInt32
    public var ssrc: UInt32
    public var csrcCount: Int
    public var hasPadding: Bool
    /// Offset of the 4-byte extension header (profile + length), if the X bit is set.
    public var extensionOffset: Int?
    /// `0xBEDE` for one-byte elements, `0x100x` for two-byte elements (RFC 8285).
    public var extensionProfile: UInt16
    /// Length of the extension data in bytes, after its 4-byte header.
    public var extensionLength: Int
    public var payloadOffset: Int
    public var payloadLength: Int
    public var paddingLength: Int

    public static let minimumLength = 12

    @inlinable
    public init(parsing bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.minimumLength else { throw .truncated("RTP header needs 12 bytes, got \(bytes.count)") }
        let first = bytes[0]
        guard first >> 6 == 2 else { throw .invalid("RTP version \(first >> 6)") }
        hasPadding = first & 0x20 != 0
        let hasExtension = first & 0x10 != 0
        csrcCount = Int(first & 0x0F)
        marker = bytes[1] & 0x80 != 0
        payloadType = bytes[1] & 0x7F
        sequenceNumber = bytes.readU16(at: 2)
        timestamp = bytes.readU32(at: 4)
        ssrc = bytes.readU32(at: 8)
        var offset = Self.minimumLength + 4 * csrcCount
        guard bytes.count >= offset else { throw .truncated("RTP CSRC list") }
        extensionOffset = nil
        extensionProfile = 0
        extensionLength = 0
        if hasExtension {
            guard bytes.count >= offset + 4 else { throw .truncated("RTP extension header") }
            extensionOffset = offset
            extensionProfile = bytes.readU16(at: offset)
            extensionLength = Int(bytes.readU16(at: offset + 2)) * 4
            offset += 4 + extensionLength
            guard bytes.count >= offset else { throw .truncated("RTP extension of \(extensionLength) bytes") }
        }
        payloadOffset = offset
        paddingLength = 0
        if hasPadding {
            guard bytes.count > offset else { throw .truncated("RTP padding count") }
            paddingLength = Int(bytes[bytes.count - 1])
            guard paddingLength > 0, offset + paddingLength <= bytes.count else {
                throw .invalid("RTP padding length \(paddingLength)")
            }
        }
        payloadLength = bytes.count - offset - paddingLength
    }

    /// Calls `body(id, dataOffset, dataLength)` for each RFC 8285 element; stops on malformed data.
    @inlinable
    public func forEachExtension(in bytes: UnsafeRawBufferPointer, _ body: (UInt8, Int, Int) -> Void) {
        guard let start = extensionOffset else { return }
        var offset = start + 4
        let end = offset + extensionLength
        if extensionProfile == 0xBEDE {
            while offset < end {
                let byte = bytes[offset]
                if byte == 0 { offset += 1; continue }
                let id = byte >> 4
                let length = Int(byte & 0x0F) + 1
                // 15 ends the block (RFC 8285 §4.2); 0 is only padding, a whole zero byte, so a
                // non-zero byte with ID 0 is malformed (found by the `rtp` fuzz target).
                if id == 15 || id == 0 { return }
                guard offset + 1 + length <= end else { return }
                body(id, offset + 1, length)
                offset += 1 + length
            }
        } else if extensionProfile & 0xFFF0 == 0x1000 {
            while offset < end {
                let id = bytes[offset]
                if id == 0 { offset += 1; continue }
                guard offset + 2 <= end else { return }
                let length = Int(bytes[offset + 1])
                guard offset + 2 + length <= end else { return }
                body(id, offset + 2, length)
                offset += 2 + length
            }
        }
    }

    /// Writes the 12-byte fixed header, and one CSRC when given (16 bytes); returns the bytes written.
    @inlinable
    public static func writeFixed(
        into out: UnsafeMutableRawBufferPointer, hasExtension: Bool, marker: Bool, payloadType: UInt8,
        sequenceNumber: UInt16, timestamp: UInt32, ssrc: UInt32, contributingSource: UInt32? = nil
    ) -> Int {
        out[0] = 0x80 | (hasExtension ? 0x10 : 0) | (contributingSource == nil ? 0 : 1)
        out[1] = (marker ? 0x80 : 0) | (payloadType & 0x7F)
        out.writeU16(sequenceNumber, at: 2)
        out.writeU32(timestamp, at: 4)
        out.writeU32(ssrc, at: 8)
        guard let contributingSource else { return 12 }
        out.writeU32(contributingSource, at: 12)
        return 16
    }
}

/// Wrap-aware comparisons of 16-bit RTP sequence numbers (RFC 3550 Appendix A.1).
public enum SequenceNumber {
    /// True if `a` comes after `b`, allowing for wraparound ("0 is newer than 65000").
    @inlinable public static func isNewer(_ a: UInt16, than b: UInt16) -> Bool {
        a != b && (a &- b) < 0x8000
    }
}
