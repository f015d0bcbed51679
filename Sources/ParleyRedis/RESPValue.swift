import NIOCore

/// A RESP2 value (https://redis.io/docs/latest/develop/reference/protocol-spec/): what Redis answers.
public enum RESPValue: Sendable, Equatable {
    case simpleString(String)
    case error(String)
    case integer(Int)
    /// nil: the null bulk string.
    case bulkString([UInt8]?)
    /// nil: the null array.
    case array([RESPValue]?)

    /// The value as text (simple and bulk strings, integers), or nil.
    public var string: String? {
        switch self {
        case .simpleString(let text): return text
        case .bulkString(let bytes?): return String(decoding: bytes, as: UTF8.self)
        case .integer(let value): return String(value)
        default: return nil
        }
    }

    public var int: Int? {
        switch self {
        case .integer(let value): return value
        case .bulkString(let bytes?): return Int(String(decoding: bytes, as: UTF8.self))
        case .simpleString(let text): return Int(text)
        default: return nil
        }
    }

    public var array: [RESPValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    public var isNull: Bool {
        switch self {
        case .bulkString(nil), .array(nil): return true
        default: return false
        }
    }
}

/// Why bytes from the server are not RESP; the connection is closed, never guessed at.
public struct RESPParseError: Error, Equatable, CustomStringConvertible {
    public var reason: String
    public var description: String { "malformed RESP from the server: \(reason)" }
}

extension RESPValue {
    static let maximumBulkLength = 64 * 1024 * 1024
    static let maximumArrayCount = 1 << 20
    static let maximumDepth = 16

    /// Reads one value from the buffer's readable bytes; nil (and the reader index unmoved) when
    /// more bytes are needed. Public for the fuzz target (`Sources/ParleyFuzzTargets`).
    public static func parse(_ buffer: inout ByteBuffer) throws(RESPParseError) -> RESPValue? {
        var copy = buffer
        guard let value = try parse(&copy, depth: 0) else { return nil }
        buffer = copy
        return value
    }

    private static func parse(_ buffer: inout ByteBuffer, depth: Int) throws(RESPParseError) -> RESPValue? {
        guard depth < maximumDepth else { throw RESPParseError(reason: "nested deeper than \(maximumDepth)") }
        guard let marker = buffer.readInteger(as: UInt8.self) else { return nil }
        guard let line = try readLine(&buffer) else { return nil }
        switch marker {
        case UInt8(ascii: "+"): return .simpleString(line)
        case UInt8(ascii: "-"): return .error(line)
        case UInt8(ascii: ":"):
            guard let value = Int(line) else { throw RESPParseError(reason: "integer \(line.prefix(32))") }
            return .integer(value)
        case UInt8(ascii: "$"):
            guard let length = Int(line), length >= -1, length <= maximumBulkLength else { throw RESPParseError(reason: "bulk length \(line.prefix(32))") }
            if length == -1 { return .bulkString(nil) }
            guard buffer.readableBytes >= length + 2, let bytes = buffer.readBytes(length: length) else { return nil }
            guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw RESPParseError(reason: "bulk string without CRLF") }
            return .bulkString(bytes)
        case UInt8(ascii: "*"):
            guard let count = Int(line), count >= -1, count <= maximumArrayCount else { throw RESPParseError(reason: "array count \(line.prefix(32))") }
            if count == -1 { return .array(nil) }
            var values: [RESPValue] = []
            values.reserveCapacity(min(count, 1024))
            for _ in 0..<count {
                guard let value = try parse(&buffer, depth: depth + 1) else { return nil }
                values.append(value)
            }
            return .array(values)
        default:
            throw RESPParseError(reason: "type byte \(marker)")
        }
    }

    /// A line up to CRLF (not included); nil if the CRLF has not arrived. RESP lines hold no CR,
    /// so one followed by anything but LF is an error: waiting for more bytes would wait for ever
    /// (found by the `resp` fuzz target, fuzz/regressions/resp/).
    private static func readLine(_ buffer: inout ByteBuffer) throws(RESPParseError) -> String? {
        let view = buffer.readableBytesView
        guard let cr = view.firstIndex(of: 0x0D), view.index(after: cr) < view.endIndex else { return nil }
        guard view[view.index(after: cr)] == 0x0A else { throw RESPParseError(reason: "CR without LF in a line") }
        let length = cr - view.startIndex
        let line = buffer.readString(length: length)
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }

    /// A command as Redis reads it: an array of bulk strings.
    public static func writeCommand(_ arguments: [String], into buffer: inout ByteBuffer) {
        buffer.writeString("*\(arguments.count)\r\n")
        for argument in arguments {
            buffer.writeString("$\(argument.utf8.count)\r\n")
            buffer.writeString(argument)
            buffer.writeString("\r\n")
        }
    }
}
