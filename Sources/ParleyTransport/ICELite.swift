import COpenSSL
import ParleyBase
import ParleyWire

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
