import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import JWTKit
import Logging
import Synchronization

/// Someone an identity provider vouched for (an OpenID Connect ID token that verified).
public struct VerifiedIdentity: Sendable, Equatable {
    /// `issuer|sub`: unique across providers.
    public var subject: String
    public var name: String?
    /// Only when the provider says it verified it.
    public var email: String?
    public init(subject: String, name: String?, email: String?) { self.subject = subject; self.name = name; self.email = email }
}

/// Verifies OpenID Connect ID tokens (signature, issuer, audience, expiry, nonce).
public protocol IdentityVerifier: Sendable {
    func verify(idToken: String) async throws(AccessError) -> VerifiedIdentity
}

/// An OpenID Connect issuer the operator trusts (`parley serve --oidc-issuer ...`).
public struct IdentityProviderConfiguration: Sendable, Equatable {
    public var name: String
    public var issuer: String
    public var clientID: String
    /// Where its signing keys are; default: `jwks_uri` from the issuer's discovery document.
    public var jwksURL: String?

    public init(name: String, issuer: String, clientID: String, jwksURL: String? = nil) {
        self.name = name; self.issuer = issuer; self.clientID = clientID; self.jwksURL = jwksURL
    }

    /// `name=Google,issuer=https://accounts.google.com,client-id=ID[,jwks=URL]`
    public init(argument: String) throws(AccessError) {
        var fields: [String: String] = [:]
        for part in argument.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { throw .configuration("--oidc-issuer: \"\(part)\" is not key=value") }
            fields[pair[0].trimmingCharacters(in: .whitespaces).lowercased()] = pair[1].trimmingCharacters(in: .whitespaces)
        }
        guard let issuer = fields["issuer"], let clientID = fields["client-id"] else {
            throw .configuration("--oidc-issuer needs issuer=URL and client-id=ID (and optionally name=, jwks=URL)")
        }
        guard URL(string: issuer)?.scheme?.hasPrefix("http") == true else { throw .configuration("--oidc-issuer: issuer must be an http(s) URL") }
        self.init(name: fields["name"] ?? issuer, issuer: issuer, clientID: clientID, jwksURL: fields["jwks"])
    }
}

/// The standard claims of an ID token this server reads.
struct IDTokenClaims: JWTPayload {
    var iss: IssuerClaim
    var sub: SubjectClaim
    var aud: AudienceClaim
    var exp: ExpirationClaim
    var iat: IssuedAtClaim?
    var nonce: String?
    var email: String?
    var email_verified: BoolClaim?
    var name: String?

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }
}

/// Checks ID tokens against the configured issuers: the signature with the issuer's published
/// keys (JWKS, fetched and cached), `iss`, `aud` (our client id), `exp`, and a `nonce` this
/// server handed out and that no earlier token used (a replayed token fails there).
public final class OpenIDVerifier: IdentityVerifier {
    public let providers: [IdentityProviderConfiguration]
    private let logger: Logger
    private struct Keys {
        var collection: JWTKeyCollection
        var fetchedAt: Date
    }
    private let keys = Mutex<[String: Keys]>([:])
    private let nonces = Mutex<[String: Date]>([:])
    private let authorizationEndpoints = Mutex<[String: String]>([:])
    public static let nonceLifetime: TimeInterval = 600
    static let keysLifetime: TimeInterval = 600

    public init(providers: [IdentityProviderConfiguration], logger: Logger) {
        self.providers = providers
        self.logger = logger
    }

    /// A fresh nonce for a sign-in request; each verifies one ID token, once, within 10 minutes.
    public func makeNonce(now: Date = Date()) -> String {
        var bytes = [UInt8](repeating: 0, count: 24)
        for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255) }
        let nonce = InviteCodes.base64URL(Data(bytes))
        nonces.withLock { table in
            table = table.filter { now.timeIntervalSince($0.value) < Self.nonceLifetime }
            if table.count < 100_000 { table[nonce] = now }
        }
        return nonce
    }

    private func consume(nonce: String, now: Date = Date()) -> Bool {
        nonces.withLock { table in
            guard let issued = table.removeValue(forKey: nonce) else { return false }
            return now.timeIntervalSince(issued) < Self.nonceLifetime
        }
    }

    public func verify(idToken: String) async throws(AccessError) -> VerifiedIdentity {
        guard idToken.utf8.count < 16 * 1024 else { throw .identity("ID token too large") }
        // The issuer picks the keys; nothing in the token is trusted until its signature is.
        let unverified: IDTokenClaims
        do { unverified = try await JWTKeyCollection().unverified(idToken, as: IDTokenClaims.self) } catch {
            throw .identity("not a JWT: \(error)")
        }
        guard let provider = providers.first(where: { $0.issuer == unverified.iss.value }) else {
            throw .identity("issuer \(unverified.iss.value.prefix(100)) is not one this server trusts")
        }
        let claims: IDTokenClaims
        do {
            claims = try await verifySignature(idToken, provider: provider)
        } catch let error as AccessError {
            throw error
        } catch let error as JWTError {
            if error.failedClaim is ExpirationClaim { throw .identity("the ID token has expired") }
            throw .identity("signature or claims did not verify: \(error.reason ?? "\(error.errorType)")")
        } catch {
            throw .identity("\(error)")
        }
        guard claims.iss.value == provider.issuer else { throw .identity("wrong issuer") }
        guard claims.aud.value.contains(provider.clientID) else { throw .identity("the ID token is for another application (aud)") }
        guard let nonce = claims.nonce, consume(nonce: nonce) else {
            throw .identity("the ID token's nonce was not issued here, has expired, or was already used")
        }
        let email = claims.email_verified?.value == true ? claims.email?.lowercased() : nil
        return VerifiedIdentity(subject: "\(provider.issuer)|\(claims.sub.value)", name: claims.name, email: email)
    }

    private func verifySignature(_ token: String, provider: IdentityProviderConfiguration) async throws -> IDTokenClaims {
        let collection = try await keyCollection(for: provider, refresh: false)
        do {
            return try await collection.verify(token, as: IDTokenClaims.self)
        } catch let error as JWTError where error.errorType == .unknownKID {
            // The issuer rotated its keys: fetch them again once.
            return try await keyCollection(for: provider, refresh: true).verify(token, as: IDTokenClaims.self)
        }
    }

    private func keyCollection(for provider: IdentityProviderConfiguration, refresh: Bool) async throws -> JWTKeyCollection {
        if !refresh, let cached = keys.withLock({ $0[provider.issuer] }), Date().timeIntervalSince(cached.fetchedAt) < Self.keysLifetime {
            return cached.collection
        }
        let jwksURL: String
        if let configured = provider.jwksURL {
            jwksURL = configured
        } else {
            jwksURL = try await discovery(provider).jwksURI
        }
        guard let url = URL(string: jwksURL) else { throw AccessError.configuration("bad JWKS URL \(jwksURL)") }
        let (data, response) = try await URLSession.shared.data(from: url)
        guard (response as? HTTPURLResponse)?.statusCode == 200 else {
            throw AccessError.identity("could not fetch the signing keys of \(provider.issuer)")
        }
        let collection = JWTKeyCollection()
        try await collection.add(jwksJSON: String(decoding: data, as: UTF8.self))
        keys.withLock { $0[provider.issuer] = Keys(collection: collection, fetchedAt: Date()) }
        return collection
    }

    struct Discovery: Decodable {
        var issuer: String
        var jwksURI: String
        var authorizationEndpoint: String?
        enum CodingKeys: String, CodingKey {
            case issuer, jwksURI = "jwks_uri", authorizationEndpoint = "authorization_endpoint"
        }
    }

    private func discovery(_ provider: IdentityProviderConfiguration) async throws -> Discovery {
        let base = provider.issuer.hasSuffix("/") ? String(provider.issuer.dropLast()) : provider.issuer
        guard let url = URL(string: base + "/.well-known/openid-configuration") else { throw AccessError.configuration("bad issuer URL") }
        let (data, _) = try await URLSession.shared.data(from: url)
        let document = try JSONDecoder().decode(Discovery.self, from: data)
        guard document.issuer == provider.issuer else { throw AccessError.identity("the discovery document names another issuer") }
        if let endpoint = document.authorizationEndpoint { authorizationEndpoints.withLock { $0[provider.issuer] = endpoint } }
        return document
    }

    /// Where the web client sends people to sign in.
    public func authorizationEndpoint(for provider: IdentityProviderConfiguration) async -> String? {
        if let known = authorizationEndpoints.withLock({ $0[provider.issuer] }) { return known }
        return try? await discovery(provider).authorizationEndpoint
    }
}
