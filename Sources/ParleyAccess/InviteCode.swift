import Crypto
import Foundation

/// The part of an invite link that lets its holder in without typing the password: the password
/// sealed with AES-GCM under a key derived from the server secret, bound to the meeting id (as
/// associated data), base64url. Never the clear text or the hash; any change fails to open.
public struct InviteCodes: Sendable {
    private let key: SymmetricKey

    public init(secret: ServerSecret) { key = secret.key(for: "invite links") }

    public func seal(password: String, meeting: String) throws -> String {
        let box = try AES.GCM.seal(Data(password.utf8), using: key, authenticating: Data(meeting.utf8))
        guard let combined = box.combined else { throw AccessError.invalidInvite }
        return Self.base64URL(combined)
    }

    public func open(_ code: String, meeting: String) throws(AccessError) -> String {
        guard code.utf8.count <= 512, let data = Self.data(base64URL: code) else { throw .invalidInvite }
        do {
            let box = try AES.GCM.SealedBox(combined: data)
            let plain = try AES.GCM.open(box, using: key, authenticating: Data(meeting.utf8))
            return String(decoding: plain, as: UTF8.self)
        } catch {
            throw .invalidInvite
        }
    }

    /// What a removal blocks for an invite link, without keeping the link itself.
    public static func fingerprint(_ code: String) -> String {
        SHA256.hash(data: Data(code.utf8)).prefix(12).map { String(format: "%02x", $0) }.joined()
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func data(base64URL text: String) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}
