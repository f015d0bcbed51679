import COpenSSL
import ParleyWire

/// Random tokens for ICE credentials and ids (RFC 8445 §5.3: ufrag ≥ 4, pwd ≥ 22 ice-chars).
public enum RandomToken {
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)

    /// OpenSSL's CSPRNG for the whole token: SystemRandomNumberGenerator makes a getrandom() call
    /// per 8 bytes, which was a fifth of the SFU's negotiation time in a 200-person meeting. Bytes at or above
    /// 248 (4 × 62) are skipped so every character is equally likely.
    public static func make(length: Int) -> String {
        var token: [UInt8] = []
        token.reserveCapacity(length)
        var bytes = [UInt8](repeating: 0, count: length + length / 4 + 8)
        while token.count < length {
            fillRandom(&bytes)
            for byte in bytes where byte < 248 && token.count < length { token.append(alphabet[Int(byte % 62)]) }
        }
        return String(decoding: token, as: UTF8.self)
    }

    private static func fillRandom(_ bytes: inout [UInt8]) {
        let count = Int32(bytes.count)
        let status = bytes.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, count) }
        precondition(status == 1, "OpenSSL's random generator failed")
    }
}

/// Why an ICE connectivity check was refused.
public enum ICECheckError: Error, Equatable, Sendable {
    case notSTUN(WireError)
    case notABindingRequest
    case missingUsername
    case wrongUsername(String)
    case badIntegrity
    case badFingerprint
}

/// The ICE-lite side of RFC 8445 §2.5: answers the controlling peer's binding requests, checking
/// USERNAME, MESSAGE-INTEGRITY and FINGERPRINT, and follows the address it nominates.
public struct ICELiteAgent: Sendable {
    public private(set) var localUfrag: String
    public private(set) var localPassword: String
    public var remoteUfrag: String?
    public var remotePassword: String?
    /// After an ICE restart, the credentials before it: still answered (the old path keeps its
    /// consent and carries media) until a check with the new ones nominates a path.
    public private(set) var previous: (localUfrag: String, localPassword: String, remoteUfrag: String?)?
    /// The address media goes to: the latest one that passed a check with USE-CANDIDATE (or any
    /// valid check until one nominates, or when the selected address went quiet: a NAT rebinding).
    public private(set) var selectedAddress: PeerAddress?
    public private(set) var nominated = false
    /// Last time a valid check arrived (consent freshness, RFC 7675).
    public private(set) var lastCheck: Nanoseconds?
    /// Last time anything authentic came from the selected address.
    public private(set) var lastHeardOnSelected: Nanoseconds?
    /// How long the selected address must have been quiet before a valid check from another
    /// address (same credentials, no nomination) takes over: the peer's NAT gave it a new port.
    public static let rebindingSilence: Nanoseconds = 1_000_000_000

    public init(localUfrag: String = RandomToken.make(length: 8), localPassword: String = RandomToken.make(length: 24)) {
        self.localUfrag = localUfrag
        self.localPassword = localPassword
    }

    /// The USERNAME prefix a peer's checks carry: `localUfrag:`.
    public static func localUfrag(ofUsername username: String) -> Substring? {
        guard let colon = username.firstIndex(of: ":") else { return nil }
        return username[..<colon]
    }

    /// Validates a binding request and returns the success response to send back.
    public mutating func handleBindingRequest(_ bytes: UnsafeRawBufferPointer, from address: PeerAddress, now: Nanoseconds) throws(ICECheckError) -> [UInt8] {
        let message: STUNMessage
        do { message = try STUNMessage(parsing: bytes) } catch { throw .notSTUN(error) }
        guard message.messageClass == .request, message.method == STUNMessage.Method.binding.rawValue else { throw .notABindingRequest }
        guard let username = message.username else { throw .missingUsername }
        let password: String
        let current: Bool
        if username.hasPrefix(localUfrag + ":") {
            if let remoteUfrag, username != localUfrag + ":" + remoteUfrag { throw .wrongUsername(username) }
            (password, current) = (localPassword, true)
        } else if let previous, username.hasPrefix(previous.localUfrag + ":") {
            if let remoteUfrag = previous.remoteUfrag, username != previous.localUfrag + ":" + remoteUfrag { throw .wrongUsername(username) }
            (password, current) = (previous.localPassword, false)
        } else {
            throw .wrongUsername(username)
        }
        let key = Array(password.utf8)
        guard STUNMessage.verifyIntegrity(bytes, key: key) else { throw .badIntegrity }
        if message.attribute(.fingerprint) != nil, !STUNMessage.verifyFingerprint(bytes) { throw .badFingerprint }

        let useCandidate = message.attribute(.useCandidate) != nil
        if current {
            let selectedWentQuiet = lastHeardOnSelected.map { now &- $0 >= Self.rebindingSilence } ?? true
            if useCandidate || !nominated || selectedAddress == nil || selectedWentQuiet {
                selectedAddress = address
            }
            if useCandidate {
                nominated = true
                previous = nil
            }
        }
        if address == selectedAddress { lastHeardOnSelected = now }
        lastCheck = now

        let response = STUNMessage(
            messageClass: .success, transactionID: message.transactionID,
            attributes: [.init(.xorMappedAddress, STUNAddress(ip: address.ipBytes, port: address.port).xorEncoded(transactionID: message.transactionID))]
        )
        return response.encoded(integrityKey: key, fingerprint: true)
    }

    /// Something authentic (SRTP, SRTCP, DTLS) came from the selected address.
    public mutating func heardOnSelected(now: Nanoseconds) { lastHeardOnSelected = now }

    /// The controlling side (load generator, tests) picks the address itself.
    public mutating func select(_ address: PeerAddress) {
        selectedAddress = address
        nominated = true
    }

    /// An ICE restart (RFC 8445 §9): both sides take new credentials. Media keeps flowing to the
    /// current address, and checks with the old credentials are answered, until a check with the
    /// new credentials nominates a path (make-before-break).
    public mutating func restart(remoteUfrag: String, remotePassword: String) {
        previous = (localUfrag, localPassword, self.remoteUfrag)
        self.remoteUfrag = remoteUfrag
        self.remotePassword = remotePassword
        localUfrag = RandomToken.make(length: 8)
        localPassword = RandomToken.make(length: 24)
    }
}
