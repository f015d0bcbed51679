import Crypto
import Foundation
import JWTKit
import Synchronization

/// What a participant may do in one meeting.
public enum MeetingRole: String, Codable, Sendable {
    case host
    case participant
}

/// The claims of an access token (a JWT, HS256 under the server's key). Hosts get one when they
/// create a meeting; participants when they pass the meeting's checks (password, invite,
/// sign-in, domain); WHIP and WHEP clients present them as `Authorization: Bearer`.
public struct AccessClaims: JWTPayload, Equatable {
    /// The identity a removal or a waiting-room decision attaches to.
    public var sub: SubjectClaim
    public var aud: AudienceClaim
    public var exp: ExpirationClaim
    public var iat: IssuedAtClaim
    public var jti: IDClaim
    public var meeting: String
    public var role: MeetingRole
    public var name: String?
    /// Only an email the identity provider verified.
    public var email: String?
    /// Issued by a host: skips the waiting room.
    public var admitted: Bool

    public static let audience = "parley"

    public var subject: String { sub.value }

    public init(subject: String, meeting: String, role: MeetingRole, name: String?, email: String?, admitted: Bool,
                lifetime: TimeInterval, now: Date = Date(), audience: [String] = [Self.audience]) {
        sub = SubjectClaim(value: subject)
        aud = AudienceClaim(value: audience)
        exp = ExpirationClaim(value: now.addingTimeInterval(lifetime))
        iat = IssuedAtClaim(value: now)
        jti = IDClaim(value: UUID().uuidString)
        self.meeting = meeting
        self.role = role
        self.name = name
        self.email = email
        self.admitted = admitted
    }

    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
        try aud.verifyIntendedAudience(includes: Self.audience)
    }
}

/// Signs and checks access tokens.
public final class AccessTokens: Sendable {
    private let keys = JWTKeyCollection()
    private let key: HMACKey
    private let keyAdded = Mutex(false)

    public init(secret: ServerSecret) {
        key = HMACKey(key: secret.key(for: "access tokens"))
    }

    /// The collection with our one key (added on first use: adding is async).
    private func ready() async -> JWTKeyCollection {
        if keyAdded.withLock({ $0 }) { return keys }
        await keys.add(hmac: key, digestAlgorithm: .sha256)
        keyAdded.withLock { $0 = true }
        return keys
    }

    public func issue(_ claims: AccessClaims) async throws -> String {
        try await ready().sign(claims)
    }

    /// The claims of a token this server signed, for this meeting, not expired, meant for Parley.
    public func verify(_ token: String, meeting: String) async throws(AccessError) -> AccessClaims {
        let claims: AccessClaims
        do {
            claims = try await ready().verify(token, as: AccessClaims.self)
        } catch let error as JWTError {
            if error.errorType == .claimVerificationFailure, error.failedClaim is ExpirationClaim { throw .expiredToken }
            throw .invalidToken(error.reason ?? "\(error.errorType)")
        } catch {
            throw .invalidToken("\(error)")
        }
        guard claims.meeting == meeting else { throw .wrongMeeting }
        return claims
    }
}
