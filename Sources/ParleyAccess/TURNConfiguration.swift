import Foundation

/// The TURN servers clients may relay their media through when no direct path to the SFU works
/// (UDP blocked, strict NAT): their URLs, the secret Parley shares with them (coturn's
/// `static-auth-secret`), and how long the credentials handed out in `joined` last.
public struct TURNConfiguration: Sendable {
    public var urls: [String]
    public var secret: String
    public var lifetime: Duration

    public init(urls: [String], secret: String, lifetime: Duration = .seconds(86_400)) {
        self.urls = urls
        self.secret = secret
        self.lifetime = lifetime
    }

    /// Credentials for one participant (its id names it in the TURN server's logs).
    public func credentials(for participantID: String, now: Date = Date()) -> TURNCredentials {
        TURNCredentials(urls: urls, secret: secret, name: participantID, lifetime: lifetime, now: now)
    }
}
