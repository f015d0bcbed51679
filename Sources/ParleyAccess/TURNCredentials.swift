import Crypto
import Foundation

/// Short-lived TURN credentials in the TURN REST API scheme that coturn's `use-auth-secret`
/// checks (draft-uberti-behave-turn-rest-00): the username is the expiry time (Unix seconds) and
/// a name, the password is base64(HMAC-SHA1(shared secret, username)). Nothing is stored: the
/// TURN server recomputes the password and refuses expired usernames.
public struct TURNCredentials: Sendable, Equatable, Codable {
    public var urls: [String]
    public var username: String
    public var credential: String

    /// Credentials for `name` (a participant id), valid for `lifetime` from `now`.
    public init(urls: [String], secret: String, name: String, lifetime: Duration, now: Date = Date()) {
        let expiry = Int(now.timeIntervalSince1970) + Int(lifetime.components.seconds)
        username = "\(expiry):\(name)"
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Data(username.utf8), using: SymmetricKey(data: Data(secret.utf8)))
        credential = Data(mac).base64EncodedString()
        self.urls = urls
    }
}
