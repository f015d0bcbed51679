import Foundation
import ParleyAccess
import ParleyBase

/// The server's checks on every way into a meeting (signaling, the token API, WHIP, WHEP):
/// access tokens, passwords, invite links, sign-in and email domains, with failed attempts
/// limited per meeting and per client address. What only the meeting's live state can decide
/// (lock, removals, waiting room, capacity) the hub decides when it admits.
public final class Gatekeeper: Sendable {
    public let hub: MeetingHub
    public let tokens: AccessTokens
    public let invites: InviteCodes
    let identities: (any IdentityVerifier)?
    let perAddress: AttemptLimiter
    let perMeeting: AttemptLimiter
    /// How long the access tokens given to participants last.
    public static let participantTokenLifetime: TimeInterval = 12 * 3600
    public static let hostTokenLifetime: TimeInterval = 30 * 24 * 3600

    public init(hub: MeetingHub, secret: ServerSecret, identities: (any IdentityVerifier)?,
                perAddress: AttemptLimiter.Rule = .init(failures: 5, window: 60),
                perMeeting: AttemptLimiter.Rule = .init(failures: 20, window: 60)) {
        self.hub = hub
        self.tokens = AccessTokens(secret: secret)
        self.invites = InviteCodes(secret: secret)
        self.identities = identities
        self.perAddress = AttemptLimiter(rule: perAddress)
        self.perMeeting = AttemptLimiter(rule: perMeeting)
    }

    /// Who this request is, if its credentials pass the meeting's rules; the error says why not.
    public func check(_ request: JoinRequest, address: String, client: String = "web") async throws(SignalingError) -> JoinIdentity {
        let meetingID = try Validation.meetingID(request.meeting)
        if let token = request.token {
            let claims: AccessClaims
            do { claims = try await tokens.verify(token, meeting: meetingID) } catch { throw .access(error) }
            let name = try displayName(request.name, fallback: claims.name)
            if claims.role == .host {
                return JoinIdentity(subject: claims.subject, name: name, email: claims.email, client: client, isHost: true, admitted: true)
            }
            guard let access = await hub.access(meetingID) else {
                if hub.adhocMeetings { return JoinIdentity(subject: claims.subject, name: name, client: client, admitted: claims.admitted) }
                throw .meetingNotFound
            }
            // Rules may have tightened since the token was issued.
            try checkSignIn(access.settings, email: claims.email, signedIn: claims.email != nil)
            return JoinIdentity(subject: claims.subject, name: name, email: claims.email, client: client, admitted: claims.admitted,
                                credentialKeys: claims.email.map { ["email:" + $0] } ?? [])
        }
        guard let access = await hub.access(meetingID) else {
            if hub.adhocMeetings {
                return JoinIdentity(subject: RandomToken.subject(), name: try displayName(request.name, fallback: nil), client: client)
            }
            throw .meetingNotFound
        }
        var verified: VerifiedIdentity?
        if let idToken = request.idToken {
            guard let identities else { throw .access(.identity("this server has no identity provider configured")) }
            do { verified = try await identities.verify(idToken: idToken) } catch { throw .access(error) }
        }
        // Someone coming back from signing in may leave the name to the identity provider.
        let name = try displayName(request.name, fallback: verified?.name.flatMap { try? Validation.displayName($0) })
        try checkSignIn(access.settings, email: verified?.email, signedIn: verified != nil)
        var keys: Set<String> = []
        if let email = verified?.email { keys.insert("email:" + email) }
        if let hash = access.passwordHash {
            try await checkPassword(request, hash: hash, meeting: meetingID, address: address)
            if let invite = request.invite { keys.insert("invite:" + InviteCodes.fingerprint(invite)) }
        }
        let subject = verified?.subject ?? RandomToken.subject()
        return JoinIdentity(subject: subject, name: name, email: verified?.email, client: client, credentialKeys: keys)
    }

    /// The hub's clock, as attempt windows and tokens take it.
    private var now: Date { Date(timeIntervalSince1970: hub.clock.wallNow()) }

    private func displayName(_ raw: String, fallback: String?) throws(SignalingError) -> String {
        if raw.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, let fallback { return fallback }
        return try Validation.displayName(raw)
    }

    private func checkSignIn(_ settings: MeetingSettings, email: String?, signedIn: Bool) throws(SignalingError) {
        if settings.requireSignIn && !signedIn { throw .signInRequired }
        guard !settings.allowedDomains.isEmpty else { return }
        guard signedIn else { throw .signInRequired }
        guard let email, let at = email.lastIndex(of: "@") else { throw .domainNotAllowed }
        let domain = email[email.index(after: at)...].lowercased()
        guard settings.allowedDomains.contains(where: { $0.lowercased() == domain }) else { throw .domainNotAllowed }
    }

    /// The password, typed or carried by an invite link, against the meeting's bcrypt hash.
    private func checkPassword(_ request: JoinRequest, hash: String, meeting: String, address: String) async throws(SignalingError) {
        let keys = ["address:" + address, "meeting:" + meeting]
        let now = self.now
        if let wait = [perAddress.retryAfter(keys[0], now: now), perMeeting.retryAfter(keys[1], now: now)].compactMap({ $0 }).max() {
            throw .tooManyAttempts(retryAfter: wait)
        }
        let candidate: String
        if let password = request.password {
            candidate = password
        } else if let invite = request.invite {
            do {
                candidate = try invites.open(invite, meeting: meeting)
            } catch {
                recordFailure(keys)
                throw .access(error)
            }
        } else {
            throw .passwordRequired
        }
        guard PasswordHash.matches(candidate, hash: hash) else {
            recordFailure(keys)
            // A link that opened but no longer matches was made before the password changed.
            throw request.password == nil ? .access(.invalidInvite) : .wrongPassword
        }
    }

    private func recordFailure(_ keys: [String]) {
        let now = self.now
        perAddress.recordFailure(keys[0], now: now)
        perMeeting.recordFailure(keys[1], now: now)
    }

    /// The access token a participant gets once in: for reconnecting and for WHIP/WHEP.
    public func token(for identity: JoinIdentity, meeting: String, role: MeetingRole) async throws -> String {
        try await tokens.issue(AccessClaims(subject: identity.subject, meeting: meeting, role: role, name: identity.name, email: identity.email,
                                            admitted: identity.admitted || role == .host,
                                            lifetime: role == .host ? Self.hostTokenLifetime : Self.participantTokenLifetime,
                                            now: now))
    }
}

extension RandomToken {
    /// A fresh identity for someone who joined without a token.
    static func subject() -> String { "p-" + make(length: 20) }
}
