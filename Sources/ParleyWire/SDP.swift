/// An SDP session description (RFC 8866) as JSEP (RFC 8829) uses it: session lines, session
/// attributes and media sections, each kept in order so a description can be written back.
public struct SessionDescription: Sendable, Equatable {
    /// Lines other than `a=` and `m=` at session level, as (type, value): `("o", "- 1 2 IN IP4 0.0.0.0")`.
    public var lines: [SDPLine]
    public var attributes: [SDPAttribute]
    public var media: [MediaDescription]

    public static let maximumLength = 128 * 1024
    public static let maximumMediaSections = 256

    public init(lines: [SDPLine], attributes: [SDPAttribute], media: [MediaDescription]) {
        self.lines = lines; self.attributes = attributes; self.media = media
    }

    public init(parsing text: String) throws(WireError) {
        guard text.utf8.count <= Self.maximumLength else { throw .invalid("SDP longer than \(Self.maximumLength) bytes") }
        lines = []
        attributes = []
        media = []
        var sawVersion = false
        var lineNumber = 0
        // Lines are cut on the UTF-8 bytes: a 200-section offer is ~40 KB, and splitting it by
        // Characters (grapheme clusters) cost milliseconds per offer in large meetings.
        let bytes = Array(text.utf8)
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != 0x0A, bytes[end] != 0x0D { end += 1 }
            defer { start = end + 1 }
            guard end > start else { continue }  // blank lines and the \n of \r\n
            lineNumber += 1
            let line = bytes[start..<end]
            guard line.count >= 2, line[start + 1] == UInt8(ascii: "=") else {
                throw .invalid("SDP line \(lineNumber) is not type=value: \(String(decoding: line.prefix(40), as: UTF8.self))")
            }
            let typeByte = line[start]
            guard typeByte < 0x80 else { throw .invalid("SDP line \(lineNumber) has a non-ASCII type") }
            let type = Character(Unicode.Scalar(typeByte))
            let value = String(decoding: bytes[(start + 2)..<end], as: UTF8.self)
            if !sawVersion {
                guard type == "v", value == "0" else { throw .invalid("SDP must start with v=0") }
                sawVersion = true
            }
            switch type {
            case "m":
                guard media.count < Self.maximumMediaSections else { throw .invalid("more than \(Self.maximumMediaSections) media sections") }
                media.append(try MediaDescription(mediaLine: value, lineNumber: lineNumber))
            case "a":
                let attribute = SDPAttribute(line: value)
                if media.isEmpty { attributes.append(attribute) } else { media[media.count - 1].attributes.append(attribute) }
            default:
                guard type.isLetter else { throw .invalid("SDP line \(lineNumber) has type \(type)") }
                if media.isEmpty { lines.append(SDPLine(type: type, value: value)) } else { media[media.count - 1].lines.append(SDPLine(type: type, value: value)) }
            }
        }
        guard sawVersion else { throw .invalid("SDP is empty") }
    }

    public func attribute(_ name: String) -> String? { attributes.first { $0.name == name }?.value }

    /// The session in wire form, CRLF line ends.
    public var serialized: String {
        var out = ""
        for line in lines { out += "\(line.type)=\(line.value)\r\n" }
        for attribute in attributes { out += "a=\(attribute.serialized)\r\n" }
        for section in media { out += section.serialized }
        return out
    }

    /// The BUNDLE group's mids, if any.
    public var bundleMids: [String] {
        for attribute in attributes where attribute.name == "group" {
            let parts = (attribute.value ?? "").split(separator: " ").map(String.init)
            if parts.first == "BUNDLE" { return Array(parts.dropFirst()) }
        }
        return []
    }
}

public struct SDPLine: Sendable, Equatable {
    public var type: Character
    public var value: String
    public init(type: Character, value: String) { self.type = type; self.value = value }
}

/// `a=name` or `a=name:value`.
public struct SDPAttribute: Sendable, Equatable {
    public var name: String
    public var value: String?

    public init(_ name: String, _ value: String? = nil) { self.name = name; self.value = value }

    init(line: String) {
        // Cut on the UTF-8 bytes: `index(after:)` on the String would step over a whole Character,
        // and a combining mark after the colon would go with it (fuzz/regressions/sdp/).
        let utf8 = line.utf8
        if let colon = utf8.firstIndex(of: UInt8(ascii: ":")) {
            name = String(Substring(utf8[..<colon])); value = String(Substring(utf8[utf8.index(after: colon)...]))
        } else {
            name = line; value = nil
        }
    }

    var serialized: String { value.map { "\(name):\($0)" } ?? name }
}

/// Direction of a media section (RFC 8866 §6.7), seen from the side that wrote it.
public enum MediaDirection: String, Sendable {
    case sendrecv, sendonly, recvonly, inactive

    /// The answerer's direction for an offer's direction, given what the answerer wants.
    public var reversed: MediaDirection {
        switch self {
        case .sendonly: return .recvonly
        case .recvonly: return .sendonly
        default: return self
        }
    }
    public var sends: Bool { self == .sendrecv || self == .sendonly }
    public var receives: Bool { self == .sendrecv || self == .recvonly }
}

/// One codec of a media section: rtpmap + fmtp + rtcp-fb for a payload type.
public struct RTPCodec: Sendable, Equatable {
    public var payloadType: UInt8
    public var name: String
    public var clockRate: UInt32
    public var channels: Int?
    public var fmtp: String?
    public var feedback: [String]

    public init(payloadType: UInt8, name: String, clockRate: UInt32, channels: Int? = nil, fmtp: String? = nil, feedback: [String] = []) {
        self.payloadType = payloadType; self.name = name; self.clockRate = clockRate
        self.channels = channels; self.fmtp = fmtp; self.feedback = feedback
    }

    /// `apt=` of an RTX codec: the payload type it repairs.
    public var associatedPayloadType: UInt8? { parameter("apt").flatMap { UInt8($0) } }

    public func parameter(_ key: String) -> String? {
        guard let fmtp else { return nil }
        for pair in fmtp.split(separator: ";") {
            let parts = pair.trimmingSpaces.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == key.lowercased() { return String(parts[1]) }
        }
        return nil
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return s
    }
}

/// One `m=` section with its lines and attributes.
public struct MediaDescription: Sendable, Equatable {
    public var kind: String
    public var port: Int
    public var proto: String
    public var formats: [String]
    public var lines: [SDPLine]
    public var attributes: [SDPAttribute]

    public init(kind: String, port: Int, proto: String, formats: [String], lines: [SDPLine] = [], attributes: [SDPAttribute] = []) {
        self.kind = kind; self.port = port; self.proto = proto; self.formats = formats
        self.lines = lines; self.attributes = attributes
    }

    init(mediaLine value: String, lineNumber: Int) throws(WireError) {
        let parts = value.split(separator: " ").map(String.init)
        guard parts.count >= 3, let port = Int(parts[1].split(separator: "/").first ?? "") else {
            throw .invalid("SDP line \(lineNumber): m= needs kind, port and proto")
        }
        self.init(kind: parts[0], port: port, proto: parts[2], formats: Array(parts.dropFirst(3)))
    }

    public func attribute(_ name: String) -> String? { attributes.first { $0.name == name }?.value }
    public func values(_ name: String) -> [String] { attributes.filter { $0.name == name }.compactMap(\.value) }
    public func has(_ name: String) -> Bool { attributes.contains { $0.name == name } }

    public var mid: String? { attribute("mid") }
    public var isRejected: Bool { port == 0 }

    public var direction: MediaDirection {
        for attribute in attributes { if let d = MediaDirection(rawValue: attribute.name) { return d } }
        return .sendrecv
    }

    /// Codecs in the m-line's order of preference.
    public var codecs: [RTPCodec] {
        var byType: [UInt8: RTPCodec] = [:]
        for map in values("rtpmap") {
            let parts = map.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, let pt = UInt8(parts[0]), pt < 128 else { continue }
            let encoding = parts[1].split(separator: "/")
            guard encoding.count >= 2, let clock = UInt32(encoding[1]) else { continue }
            byType[pt] = RTPCodec(payloadType: pt, name: String(encoding[0]), clockRate: clock,
                                  channels: encoding.count > 2 ? Int(encoding[2]) : nil)
        }
        for fmtp in values("fmtp") {
            let parts = fmtp.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, let pt = UInt8(parts[0]) else { continue }
            byType[pt]?.fmtp = String(parts[1])
        }
        var wildcard: [String] = []
        for fb in values("rtcp-fb") {
            let parts = fb.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { continue }
            if parts[0] == "*" { wildcard.append(String(parts[1])); continue }
            guard let pt = UInt8(parts[0]) else { continue }
            byType[pt]?.feedback.append(String(parts[1]))
        }
        return formats.compactMap { UInt8($0) }.compactMap { pt in
            guard var codec = byType[pt] else { return nil }
            codec.feedback += wildcard
            return codec
        }
    }

    /// `a=extmap` entries as id → URI.
    public var extensions: [(id: UInt8, uri: String)] {
        values("extmap").compactMap { value in
            let parts = value.split(separator: " ")
            guard parts.count >= 2, let idText = parts[0].split(separator: "/").first, let id = UInt8(idText), id > 0 else { return nil }
            return (id, String(parts[1]))
        }
    }

    /// SSRCs in `a=ssrc` lines, in order of first appearance.
    public var ssrcs: [UInt32] {
        var seen: [UInt32] = []
        for value in values("ssrc") {
            guard let first = value.split(separator: " ").first, let ssrc = UInt32(first), !seen.contains(ssrc) else { continue }
            seen.append(ssrc)
        }
        return seen
    }

    /// `a=ssrc-group:FID primary rtx` pairs.
    public var rtxPairs: [(primary: UInt32, rtx: UInt32)] {
        values("ssrc-group").compactMap { value in
            let parts = value.split(separator: " ")
            guard parts.count == 3, parts[0] == "FID", let a = UInt32(parts[1]), let b = UInt32(parts[2]) else { return nil }
            return (a, b)
        }
    }

    /// `a=ssrc:N cname:X` value for an SSRC.
    public func cname(of ssrc: UInt32) -> String? {
        for value in values("ssrc") {
            let parts = value.split(separator: " ", maxSplits: 1)
            if parts.count == 2, UInt32(parts[0]) == ssrc, parts[1].hasPrefix("cname:") { return String(parts[1].dropFirst(6)) }
        }
        return nil
    }

    /// `a=rid:X send` identifiers, in order.
    public var sendRids: [String] {
        values("rid").compactMap { value in
            let parts = value.split(separator: " ")
            return parts.count >= 2 && parts[1] == "send" ? String(parts[0]) : nil
        }
    }

    public var serialized: String {
        var out = "m=\(kind) \(port) \(proto) \(formats.joined(separator: " "))\r\n"
        for line in lines { out += "\(line.type)=\(line.value)\r\n" }
        for attribute in attributes { out += "a=\(attribute.serialized)\r\n" }
        return out
    }
}
