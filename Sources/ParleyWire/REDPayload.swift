/// RFC 2198 redundant audio (`red/48000/2`): block headers — 4 bytes for each redundant block
/// (F bit, payload type, timestamp offset, length), 1 byte for the primary (F clear, payload
/// type) — then the redundant blocks' data, oldest first, then the primary's.
public struct REDPayload: Sendable, Equatable {
    public struct Block: Sendable, Equatable {
        public var payloadType: UInt8
        /// How far before the packet's timestamp this block was (redundant blocks; 0 for the primary).
        public var timestampOffset: UInt16
        /// Where its data sits in the payload.
        public var offset: Int
        public var length: Int
        /// Where its header's payload-type byte sits, for rewriting in place.
        public var headerOffset: Int
    }

    public var redundant: [Block]
    public var primary: Block

    /// At most this many redundant blocks are read (browsers send one or two).
    public static let maximumRedundancy = 8

    public init(parsing payload: UnsafeRawBufferPointer) throws(WireError) {
        var headers: [(payloadType: UInt8, timestampOffset: UInt16, length: Int, headerOffset: Int)] = []
        var offset = 0
        while true {
            guard offset < payload.count else { throw .truncated("RED block header") }
            let first = payload[offset]
            if first & 0x80 == 0 {
                let dataStart = offset + 1
                var cursor = dataStart
                redundant = []
                for header in headers {
                    guard cursor + header.length <= payload.count else { throw .truncated("RED redundant block data") }
                    redundant.append(Block(payloadType: header.payloadType, timestampOffset: header.timestampOffset, offset: cursor,
                                           length: header.length, headerOffset: header.headerOffset))
                    cursor += header.length
                }
                primary = Block(payloadType: first & 0x7F, timestampOffset: 0, offset: cursor, length: payload.count - cursor, headerOffset: offset)
                return
            }
            guard headers.count < Self.maximumRedundancy else { throw .invalid("more than \(Self.maximumRedundancy) RED blocks") }
            guard offset + 4 <= payload.count else { throw .truncated("RED redundant block header") }
            let timestampAndLength = UInt32(payload[offset + 1]) << 16 | UInt32(payload[offset + 2]) << 8 | UInt32(payload[offset + 3])
            headers.append((first & 0x7F, UInt16(timestampAndLength >> 10), Int(timestampAndLength & 0x3FF), offset))
            offset += 4
        }
    }

    /// Sets every block's payload type (the receiver's number for the codec inside).
    public func setPayloadTypes(_ payloadType: UInt8, in payload: UnsafeMutableRawBufferPointer) {
        for block in redundant { payload[block.headerOffset] = 0x80 | (payloadType & 0x7F) }
        payload[primary.headerOffset] = payloadType & 0x7F
    }

    /// Where the primary block's data is, without allocating (the forwarding path).
    public static func primary(in payload: UnsafeRawBufferPointer) -> (offset: Int, length: Int)? {
        var offset = 0, redundantBytes = 0
        for _ in 0...maximumRedundancy {
            guard offset < payload.count else { return nil }
            if payload[offset] & 0x80 == 0 {
                let start = offset + 1 + redundantBytes
                return start <= payload.count ? (start, payload.count - start) : nil
            }
            guard offset + 4 <= payload.count else { return nil }
            redundantBytes += Int(payload[offset + 3]) | Int(payload[offset + 2] & 0x03) << 8
            offset += 4
        }
        return nil
    }

    /// Sets every block header's payload type in place, without allocating; false if malformed.
    @discardableResult
    public static func setPayloadTypes(_ payloadType: UInt8, in payload: UnsafeMutableRawBufferPointer) -> Bool {
        var offset = 0
        for _ in 0...maximumRedundancy {
            guard offset < payload.count else { return false }
            if payload[offset] & 0x80 == 0 {
                payload[offset] = payloadType & 0x7F
                return true
            }
            guard offset + 4 <= payload.count else { return false }
            payload[offset] = 0x80 | (payloadType & 0x7F)
            offset += 4
        }
        return false
    }
}
