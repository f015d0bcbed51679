import Crypto
import Foundation

/// The key material every credential the server issues derives from: access tokens (HMAC) and
/// invite links (AES-GCM). Random per process unless the operator gives a file, so tokens and
/// links survive restarts (and, with several processes, are accepted by all of them).
public struct ServerSecret: Sendable {
    let material: SymmetricKey

    public static func random() -> ServerSecret { ServerSecret(material: SymmetricKey(size: .bits256)) }

    /// Reads at least 32 bytes from a file (raw or hex; whitespace at the ends ignored).
    public init(contentsOf path: String) throws(AccessError) {
        guard let data = FileManager.default.contents(atPath: path) else { throw .configuration("cannot read the secret file \(path)") }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let bytes = Self.hexBytes(text) ?? Array(data)
        guard bytes.count >= 32 else { throw .configuration("the secret file \(path) must hold at least 32 bytes (64 hex digits)") }
        material = SymmetricKey(data: bytes)
    }

    init(material: SymmetricKey) { self.material = material }

    /// A separate key per use, so no key serves two algorithms.
    func key(for purpose: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: material, info: Array("parley \(purpose)".utf8), outputByteCount: 32)
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count.isMultiple(of: 2), !digits.isEmpty else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// Why a credential was refused; `code` reaches clients (signaling error codes, HTTP bodies).
public enum AccessError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidToken(String)
    case expiredToken
    case wrongMeeting
    case invalidInvite
    case configuration(String)
    case identity(String)

    public var code: String {
        switch self {
        case .invalidToken: return "invalid-token"
        case .expiredToken: return "expired-token"
        case .wrongMeeting: return "wrong-meeting"
        case .invalidInvite: return "invalid-invite"
        case .configuration: return "configuration"
        case .identity: return "sign-in-failed"
        }
    }

    public var description: String {
        switch self {
        case .invalidToken(let reason): return "the access token is not valid: \(reason)"
        case .expiredToken: return "the access token has expired"
        case .wrongMeeting: return "the access token is for another meeting"
        case .invalidInvite: return "the invite link is not valid (changed or damaged); ask the host for a new one"
        case .configuration(let reason): return reason
        case .identity(let reason): return "sign-in failed: \(reason)"
        }
    }
}
