/// Why a buffer could not be read as the wire format it claimed to be.
public enum WireError: Error, Equatable, CustomStringConvertible, Sendable {
    /// Fewer bytes than the format needs at this point.
    case truncated(String)
    /// Bytes present but not valid for the format.
    case invalid(String)

    public var description: String {
        switch self {
        case .truncated(let what): return "truncated: \(what)"
        case .invalid(let what): return "invalid: \(what)"
        }
    }
}

/// Big-endian reads from a raw buffer with bounds checks; no allocation.
@usableFromInline
struct ByteReader {
    @usableFromInline let bytes: UnsafeRawBufferPointer
    @usableFromInline var offset: Int

    @inlinable init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    @inlinable var remaining: Int { bytes.count - offset }

    @inlinable mutating func u8(_ what: @autoclosure () -> String) throws(WireError) -> UInt8 {
        guard remaining >= 1 else { throw .truncated(what()) }
        defer { offset += 1 }
        return bytes[offset]
    }

    @inlinable mutating func u16(_ what: @autoclosure () -> String) throws(WireError) -> UInt16 {
        guard remaining >= 2 else { throw .truncated(what()) }
        defer { offset += 2 }
        return bytes.readU16(at: offset)
    }

    @inlinable mutating func u32(_ what: @autoclosure () -> String) throws(WireError) -> UInt32 {
        guard remaining >= 4 else { throw .truncated(what()) }
        defer { offset += 4 }
        return bytes.readU32(at: offset)
    }

    @inlinable mutating func bytes(_ count: Int, _ what: @autoclosure () -> String) throws(WireError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw .truncated(what()) }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    @inlinable mutating func skip(_ count: Int, _ what: @autoclosure () -> String) throws(WireError) {
        guard count >= 0, remaining >= count else { throw .truncated(what()) }
        offset += count
    }
}

extension UnsafeRawBufferPointer {
    @inlinable public func readU16(at offset: Int) -> UInt16 {
        UInt16(self[offset]) << 8 | UInt16(self[offset + 1])
    }
    @inlinable public func readU24(at offset: Int) -> UInt32 {
        UInt32(self[offset]) << 16 | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2])
    }
    @inlinable public func readU32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16 | UInt32(self[offset + 2]) << 8 | UInt32(self[offset + 3])
    }
}

extension UnsafeMutableRawBufferPointer {
    @inlinable public func writeU16(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 1] = UInt8(truncatingIfNeeded: value)
    }
    @inlinable public func writeU24(_ value: UInt32, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value >> 16)
        self[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 2] = UInt8(truncatingIfNeeded: value)
    }
    @inlinable public func writeU32(_ value: UInt32, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value >> 24)
        self[offset + 1] = UInt8(truncatingIfNeeded: value >> 16)
        self[offset + 2] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 3] = UInt8(truncatingIfNeeded: value)
    }
}

extension Array where Element == UInt8 {
    @inlinable mutating func appendU16(_ value: UInt16) {
        append(UInt8(truncatingIfNeeded: value >> 8)); append(UInt8(truncatingIfNeeded: value))
    }
    @inlinable mutating func appendU32(_ value: UInt32) {
        append(UInt8(truncatingIfNeeded: value >> 24)); append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 8)); append(UInt8(truncatingIfNeeded: value))
    }
    @inlinable mutating func setU16(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value >> 8); self[offset + 1] = UInt8(truncatingIfNeeded: value)
    }
    @inlinable mutating func setU32(_ value: UInt32, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value >> 24); self[offset + 1] = UInt8(truncatingIfNeeded: value >> 16)
        self[offset + 2] = UInt8(truncatingIfNeeded: value >> 8); self[offset + 3] = UInt8(truncatingIfNeeded: value)
    }
}

/// RFC 7983 demultiplexing of one UDP port shared by STUN, DTLS and SRTP/SRTCP.
public enum PacketClass: Sendable, Equatable {
    case stun, dtls, rtp, rtcp, unknown

    @inlinable public init(_ bytes: UnsafeRawBufferPointer) {
        guard let first = bytes.first else { self = .unknown; return }
        switch first {
        case 0...3: self = .stun
        case 20...63: self = .dtls
        case 128...191:
            // RTCP packet types 192...223 share the range; RFC 5761 §4 tells them apart by the
            // second byte (payload type with the marker bit).
            guard bytes.count >= 2 else { self = .unknown; return }
            let type = bytes[1]
            self = (type >= 192 && type <= 223) ? .rtcp : .rtp
        default: self = .unknown
        }
    }
}

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` that keeps the typed `WireError` (the standard one rethrows `any Error`).
    @inlinable func parse<T>(_ body: (UnsafeRawBufferPointer) throws(WireError) -> T) throws(WireError) -> T {
        let result: Result<T, WireError> = withUnsafeBytes { raw in
            do throws(WireError) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }
}
