import NIOCore
import ParleyMediaFuzzTargets
import ParleyRedis

/// Redis replies (RESP2): the decoder against an independent reference reader, on the whole
/// input and on the same bytes arriving in pieces as a socket delivers them; parse → write →
/// parse for every value read.
enum RESPTarget {
    static func run(_ data: UnsafeRawBufferPointer) {
        let bytes = Array(data)
        let whole = decodeAll(chunks: [bytes[...]])
        require(whole == reference(bytes), "RESP decoder and reference disagree: \(whole) vs \(reference(bytes))")
        // Pieces of 1, 2, 3, … bytes, then sizes taken from the input's own bytes.
        var chunks: [ArraySlice<UInt8>] = []
        var offset = 0, size = 1
        while offset < bytes.count {
            let end = min(bytes.count, offset + size)
            chunks.append(bytes[offset..<end])
            offset = end
            size = chunks.count < 4 ? size + 1 : 1 + Int(bytes[offset - 1] & 0x1F)
        }
        require(decodeAll(chunks: chunks) == whole, "RESP decoder reads pieces differently from the whole")

        for value in whole.values {
            var buffer = ByteBuffer()
            write(value, into: &buffer)
            require((try? RESPValue.parse(&buffer)) == value && buffer.readableBytes == 0, "RESP round trip changed \(value)")
        }
        // Commands as the client writes them read back as arrays of bulk strings.
        let arguments = whole.values.compactMap(\.string).prefix(16).map { $0 }
        var command = ByteBuffer()
        RESPValue.writeCommand(arguments, into: &command)
        require((try? RESPValue.parse(&command)) == .array(arguments.map { .bulkString(Array($0.utf8)) }), "a written command reads back wrong")
    }

    struct Outcome: Equatable {
        var values: [RESPValue]
        var failed: Bool
        /// Bytes not yet part of a value (nothing is consumed after a failure).
        var pending: Int
    }

    /// What `RedisConnection` does with each read: append, then take every whole value.
    static func decodeAll(chunks: [ArraySlice<UInt8>]) -> Outcome {
        var buffer = ByteBuffer()
        var values: [RESPValue] = []
        for chunk in chunks {
            buffer.writeBytes(chunk)
            do {
                while let value = try RESPValue.parse(&buffer) { values.append(value) }
            } catch {
                return Outcome(values: values, failed: true, pending: 0)
            }
        }
        return Outcome(values: values, failed: false, pending: buffer.readableBytes)
    }

    static func write(_ value: RESPValue, into buffer: inout ByteBuffer) {
        switch value {
        case .simpleString(let text): buffer.writeString("+\(text)\r\n")
        case .error(let text): buffer.writeString("-\(text)\r\n")
        case .integer(let number): buffer.writeString(":\(number)\r\n")
        case .bulkString(nil): buffer.writeString("$-1\r\n")
        case .bulkString(let bytes?):
            buffer.writeString("$\(bytes.count)\r\n")
            buffer.writeBytes(bytes)
            buffer.writeString("\r\n")
        case .array(nil): buffer.writeString("*-1\r\n")
        case .array(let values?):
            buffer.writeString("*\(values.count)\r\n")
            for value in values { write(value, into: &buffer) }
        }
    }

    // MARK: The reference reader: the RESP2 specification with Parley's limits, written plainly.

    enum Step { case value(RESPValue, Int), more, invalid }

    static func reference(_ bytes: [UInt8]) -> Outcome {
        var values: [RESPValue] = []
        var offset = 0
        while true {
            switch referenceValue(bytes, at: offset, depth: 0) {
            case .value(let value, let next):
                values.append(value)
                offset = next
            case .more: return Outcome(values: values, failed: false, pending: bytes.count - offset)
            case .invalid: return Outcome(values: values, failed: true, pending: 0)
            }
        }
    }

    static func referenceValue(_ bytes: [UInt8], at start: Int, depth: Int) -> Step {
        guard depth < 16 else { return .invalid }
        guard start < bytes.count else { return .more }
        // A header line ends at the first CR, which must be followed by LF (RESP lines hold no CR).
        guard let cr = bytes[(start + 1)...].firstIndex(of: 0x0D) else { return .more }
        guard cr + 1 < bytes.count else { return .more }
        guard bytes[cr + 1] == 0x0A else { return .invalid }
        let line = String(decoding: bytes[(start + 1)..<cr], as: UTF8.self)
        let next = cr + 2
        switch bytes[start] {
        case UInt8(ascii: "+"): return .value(.simpleString(line), next)
        case UInt8(ascii: "-"): return .value(.error(line), next)
        case UInt8(ascii: ":"): return Int(line).map { .value(.integer($0), next) } ?? .invalid
        case UInt8(ascii: "$"):
            guard let length = Int(line), length >= -1, length <= 64 * 1024 * 1024 else { return .invalid }
            if length == -1 { return .value(.bulkString(nil), next) }
            guard bytes.count - next >= length + 2 else { return .more }
            guard bytes[next + length] == 0x0D, bytes[next + length + 1] == 0x0A else { return .invalid }
            return .value(.bulkString(Array(bytes[next..<next + length])), next + length + 2)
        case UInt8(ascii: "*"):
            guard let count = Int(line), count >= -1, count <= 1 << 20 else { return .invalid }
            if count == -1 { return .value(.array(nil), next) }
            var values: [RESPValue] = []
            var offset = next
            for _ in 0..<count {
                switch referenceValue(bytes, at: offset, depth: depth + 1) {
                case .value(let value, let after): values.append(value); offset = after
                case .more: return .more
                case .invalid: return .invalid
                }
            }
            return .value(.array(values), offset)
        default: return .invalid
        }
    }
}
