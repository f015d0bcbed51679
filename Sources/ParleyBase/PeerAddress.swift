/// A remote UDP address as a plain value (no allocation), used as a dictionary key to find the
/// transport a datagram belongs to.
public struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    public enum Family: UInt8, Sendable { case ipv4 = 4, ipv6 = 6 }
    public var family: Family
    /// IPv4 in the low 4 bytes of `high`... kept as two words so hashing is cheap.
    public var high: UInt64
    public var low: UInt64
    public var port: UInt16
    /// 0 over UDP; over ICE-TCP (RFC 6544), the SFU's number for the TCP connection the peer is
    /// on, so two connections from one address stay apart and media goes back on the right one.
    public var tcpConnection: UInt32 = 0

    public init(ipv4 bytes: (UInt8, UInt8, UInt8, UInt8), port: UInt16) {
        family = .ipv4
        high = 0
        low = UInt64(bytes.0) << 24 | UInt64(bytes.1) << 16 | UInt64(bytes.2) << 8 | UInt64(bytes.3)
        self.port = port
    }

    public init(ipv6 bytes: some Collection<UInt8>, port: UInt16) {
        precondition(bytes.count == 16)
        family = .ipv6
        high = bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
        low = bytes.dropFirst(8).reduce(0) { $0 << 8 | UInt64($1) }
        self.port = port
    }

    /// Network-order address bytes (4 or 16).
    public var ipBytes: [UInt8] {
        switch family {
        case .ipv4: return (0..<4).map { UInt8(truncatingIfNeeded: low >> (24 - 8 * $0)) }
        case .ipv6: return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) } + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
        }
    }

    public var isTCP: Bool { tcpConnection != 0 }

    public var description: String {
        let suffix = isTCP ? "/tcp" : ""
        switch family {
        case .ipv4: return ipBytes.map(String.init).joined(separator: ".") + ":\(port)\(suffix)"
        case .ipv6:
            let groups = stride(from: 0, to: 16, by: 2).map { String(UInt16(ipBytes[$0]) << 8 | UInt16(ipBytes[$0 + 1]), radix: 16) }
            return "[\(groups.joined(separator: ":"))]:\(port)\(suffix)"
        }
    }
}

extension PeerAddress {
    /// A numeric IPv4 ("10.0.0.7") or IPv6 ("fd00::7") address and a port; nil for anything else
    /// (host names are not resolved here).
    public init?(host: String, port: UInt16) {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        let bytes = parts.compactMap { UInt8($0) }
        if parts.count == 4, bytes.count == 4 {
            self.init(ipv4: (bytes[0], bytes[1], bytes[2], bytes[3]), port: port)
            return
        }
        guard let bytes = Self.ipv6Bytes(host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host) else { return nil }
        self.init(ipv6: bytes, port: port)
    }

    private static func ipv6Bytes(_ text: String) -> [UInt8]? {
        // Split once at "::" (the run of zero groups), if there is one.
        let characters = Array(text)
        var halves = [text]
        if let index = characters.indices.dropLast().first(where: { characters[$0] == ":" && characters[$0 + 1] == ":" }) {
            halves = [String(characters[..<index]), String(characters[(index + 2)...])]
            guard !halves[1].contains("::") else { return nil }
        }
        guard text.contains(":") else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            guard !part.isEmpty else { return [] }
            var result: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard group.count <= 4, let value = UInt16(group, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        guard let head = groups(halves[0]), let tail = halves.count == 2 ? groups(halves[1]) : [] else { return nil }
        let missing = 8 - head.count - tail.count
        guard head.count + tail.count <= 8, halves.count == 2 ? missing >= 1 : missing == 0 else { return nil }
        let all = head + [UInt16](repeating: 0, count: halves.count == 2 ? missing : 0) + tail
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }
}
