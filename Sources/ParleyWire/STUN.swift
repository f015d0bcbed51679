/// A STUN message (RFC 8489): header, attributes, and the integrity and fingerprint checks ICE needs.
public struct STUNMessage: Sendable, Equatable {
    public static let magicCookie: UInt32 = 0x2112_A442
    public static let fingerprintXor: UInt32 = 0x5354_554E
    public static let headerLength = 20

    public enum MessageClass: UInt16, Sendable {
        case request = 0x0000, indication = 0x0010, success = 0x0100, error = 0x0110
    }

    public enum Method: UInt16, Sendable { case binding = 0x001 }

    public enum AttributeType: UInt16, Sendable {
        case mappedAddress = 0x0001
        case username = 0x0006
        case messageIntegrity = 0x0008
        case errorCode = 0x0009
        case unknownAttributes = 0x000A
        case xorMappedAddress = 0x0020
        case priority = 0x0024
        case useCandidate = 0x0025
        case software = 0x8022
        case fingerprint = 0x8028
        case iceControlled = 0x8029
        case iceControlling = 0x802A
    }

    public struct Attribute: Sendable, Equatable {
        public var type: UInt16
        public var value: [UInt8]
        public init(type: UInt16, value: [UInt8]) { self.type = type; self.value = value }
        public init(_ type: AttributeType, _ value: [UInt8]) { self.init(type: type.rawValue, value: value) }
    }

    public var messageClass: MessageClass
    public var method: UInt16
    public var transactionID: [UInt8]
    /// Attributes in wire order, MESSAGE-INTEGRITY and FINGERPRINT included when parsed.
    public var attributes: [Attribute]

    public init(messageClass: MessageClass, method: Method = .binding, transactionID: [UInt8], attributes: [Attribute] = []) {
        self.messageClass = messageClass
        self.method = method.rawValue
        self.transactionID = transactionID
        self.attributes = attributes
    }

    /// Quick test that a datagram looks like STUN (first two bits zero, magic cookie present).
    public static func isSTUN(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= headerLength && bytes[0] & 0xC0 == 0 && bytes.readU32(at: 4) == magicCookie
    }

    public init(parsing bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.headerLength else { throw .truncated("STUN header needs 20 bytes, got \(bytes.count)") }
        var reader = ByteReader(bytes)
        let type = try reader.u16("type")
        guard type & 0xC000 == 0 else { throw .invalid("STUN type must start with two zero bits") }
        let length = Int(try reader.u16("length"))
        guard length % 4 == 0 else { throw .invalid("STUN length \(length) is not a multiple of 4") }
        guard try reader.u32("cookie") == Self.magicCookie else { throw .invalid("STUN magic cookie missing") }
        transactionID = try reader.bytes(12, "transaction id")
        guard bytes.count == Self.headerLength + length else {
            throw .invalid("STUN length \(length) does not match datagram of \(bytes.count) bytes")
        }
        let classBits = type & 0x0110
        messageClass = MessageClass(rawValue: classBits)!
        method = (type & 0x000F) | ((type & 0x00E0) >> 1) | ((type & 0x3E00) >> 2)
        attributes = []
        while reader.remaining > 0 {
            let attributeType = try reader.u16("attribute type")
            let attributeLength = Int(try reader.u16("attribute length"))
            let value = try reader.bytes(attributeLength, "attribute \(attributeType) value")
            try reader.skip((4 - attributeLength % 4) % 4, "attribute padding")
            attributes.append(Attribute(type: attributeType, value: value))
        }
    }

    public init(parsing bytes: [UInt8]) throws(WireError) {
        self = try bytes.parse { (raw) throws(WireError) in try STUNMessage(parsing: raw) }
    }

    public func attribute(_ type: AttributeType) -> [UInt8]? {
        attributes.first { $0.type == type.rawValue }?.value
    }

    public var username: String? { attribute(.username).map { String(decoding: $0, as: UTF8.self) } }

    public var typeField: UInt16 {
        let m = method
        return (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | messageClass.rawValue
    }

    /// Encodes the message; with `integrityKey` adds MESSAGE-INTEGRITY, then FINGERPRINT if asked.
    /// Any MESSAGE-INTEGRITY or FINGERPRINT already in `attributes` is left out and recomputed.
    public func encoded(integrityKey: [UInt8]? = nil, fingerprint: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        out.appendU16(typeField)
        out.appendU16(0)
        out.appendU32(Self.magicCookie)
        out.append(contentsOf: transactionID)
        for attribute in attributes
        where attribute.type != AttributeType.messageIntegrity.rawValue && attribute.type != AttributeType.fingerprint.rawValue {
            out.appendU16(attribute.type)
            out.appendU16(UInt16(attribute.value.count))
            out.append(contentsOf: attribute.value)
            out.append(contentsOf: repeatElement(0, count: (4 - attribute.value.count % 4) % 4))
        }
        if let key = integrityKey {
            out.setU16(UInt16(out.count - Self.headerLength + 24), at: 2)
            let mac = out.withUnsafeBytes { HMACSHA1.authenticate($0, key: key) }
            out.appendU16(AttributeType.messageIntegrity.rawValue)
            out.appendU16(20)
            out.append(contentsOf: mac)
        }
        if fingerprint {
            out.setU16(UInt16(out.count - Self.headerLength + 8), at: 2)
            let crc = CRC32.checksum(out) ^ Self.fingerprintXor
            out.appendU16(AttributeType.fingerprint.rawValue)
            out.appendU16(4)
            out.appendU32(crc)
        }
        out.setU16(UInt16(out.count - Self.headerLength), at: 2)
        return out
    }

    /// Offset of an attribute's header inside the raw message, walking the TLVs.
    private static func offsetOfAttribute(_ type: AttributeType, in bytes: UnsafeRawBufferPointer) -> Int? {
        var offset = headerLength
        while offset + 4 <= bytes.count {
            let attributeType = bytes.readU16(at: offset)
            let length = Int(bytes.readU16(at: offset + 2))
            if attributeType == type.rawValue { return offset }
            offset += 4 + length + (4 - length % 4) % 4
        }
        return nil
    }

    /// The header's length field must describe the datagram: the checks below recompute it, so a
    /// lying length would otherwise pass unnoticed.
    private static func hasConsistentLength(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= headerLength && Int(bytes.readU16(at: 2)) == bytes.count - headerLength
    }

    /// Checks MESSAGE-INTEGRITY (RFC 8489 §14.5) of a raw message against a short-term key.
    public static func verifyIntegrity(_ bytes: UnsafeRawBufferPointer, key: [UInt8]) -> Bool {
        guard hasConsistentLength(bytes), let offset = offsetOfAttribute(.messageIntegrity, in: bytes), offset + 24 <= bytes.count,
              bytes.readU16(at: offset + 2) == 20 else { return false }
        var covered = Array(bytes[0..<offset])
        covered.setU16(UInt16(offset + 24 - headerLength), at: 2)
        let expected = covered.withUnsafeBytes { HMACSHA1.authenticate($0, key: key) }
        return constantTimeEqual(expected, bytes[(offset + 4)..<(offset + 24)])
    }

    /// Checks FINGERPRINT (RFC 8489 §14.7); it must be the last attribute.
    public static func verifyFingerprint(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard hasConsistentLength(bytes), let offset = offsetOfAttribute(.fingerprint, in: bytes), offset + 8 == bytes.count,
              bytes.readU16(at: offset + 2) == 4 else { return false }
        var covered = Array(bytes[0..<offset])
        covered.setU16(UInt16(offset + 8 - headerLength), at: 2)
        return CRC32.checksum(covered) ^ fingerprintXor == bytes.readU32(at: offset + 4)
    }
}

/// An IP address and port as STUN's (XOR-)MAPPED-ADDRESS carries them.
public struct STUNAddress: Sendable, Equatable {
    /// 4 bytes for IPv4, 16 for IPv6, network order.
    public var ip: [UInt8]
    public var port: UInt16

    public init(ip: [UInt8], port: UInt16) { self.ip = ip; self.port = port }

    public func xorEncoded(transactionID: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0, ip.count == 4 ? 0x01 : 0x02]
        out.appendU16(port ^ UInt16(STUNMessage.magicCookie >> 16))
        let mask = Self.mask(transactionID: transactionID)
        for (index, byte) in ip.enumerated() { out.append(byte ^ mask[index]) }
        return out
    }

    public init(xorEncoded value: [UInt8], transactionID: [UInt8]) throws(WireError) {
        guard value.count >= 8 else { throw .truncated("XOR-MAPPED-ADDRESS") }
        let family = value[1]
        let length = family == 0x01 ? 4 : family == 0x02 ? 16 : 0
        guard length > 0 else { throw .invalid("address family \(family)") }
        guard value.count >= 4 + length else { throw .truncated("XOR-MAPPED-ADDRESS address") }
        port = (UInt16(value[2]) << 8 | UInt16(value[3])) ^ UInt16(STUNMessage.magicCookie >> 16)
        let mask = Self.mask(transactionID: transactionID)
        ip = (0..<length).map { value[4 + $0] ^ mask[$0] }
    }

    private static func mask(transactionID: [UInt8]) -> [UInt8] {
        var mask: [UInt8] = []
        mask.appendU32(STUNMessage.magicCookie)
        return mask + transactionID
    }
}
