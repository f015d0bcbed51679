import Foundation
import Hummingbird
import NIOCore
import ParleyAccess
import ParleyBase
import ParleyControl
import ParleyMediaAPI

/// The meetings API (docs/api.md, docs/openapi.yaml): create meetings, change their settings as
/// a host, get access tokens by passing a meeting's checks, read reports.
struct MeetingAPIRoutes {
    let server: ParleyServer

    var gatekeeper: Gatekeeper { server.signaling.gatekeeper }
    var hub: MeetingHub { server.signaling.hub }

    func register(on router: Hummingbird.Router<ParleyRequestContext>) {
        let api = router.group("api")
        api.post("meetings") { request, context in try await create(request, context: context) }
        api.get("meetings/{meeting}") { request, context in try await show(request, context: context) }
        api.patch("meetings/{meeting}") { request, context in try await update(request, context: context) }
        api.post("meetings/{meeting}/tokens") { request, context in try await issueToken(request, context: context) }
        api.get("meetings/{meeting}/reports") { request, context in try await reports(request, context: context) }
        api.get("admin/reports") { request, _ in try await allReports(request) }
        api.get("admin/meetings/{meeting}") { request, context in try await meetingMedia(request, context: context) }
    }

    struct Created: Encodable {
        var id: String
        var hostToken: String
        var inviteURL: String
        /// Opens the meeting as its host (the token rides in the fragment, which browsers do not send).
        var hostURL: String
        var settings: MeetingSettings
        var hasPassword: Bool
        var locked: Bool
    }

    private func create(_ request: Request, context: ParleyRequestContext) async throws -> Response {
        let body: CreateMeetingRequest = try await decode(request, context: context)
        let id = try http { try body.validatedID() } ?? RandomToken.make(length: 10)
        var settings = MeetingSettings()
        body.settings.apply(to: &settings)
        let password = body.settings.password.flatMap { $0.isEmpty ? nil : $0 }
        let hash = password.map(PasswordHash.make)
        let hostSubject = "h-" + RandomToken.make(length: 20)
        do {
            try await hub.create(id: id, settings: settings, passwordHash: hash, hostSubject: hostSubject)
        } catch {
            throw APIError(status: .conflict, code: "meeting-exists", message: "a meeting with id \(id) exists")
        }
        if body.settings.locked == true { await hub.setLocked(id, true) }
        let identity = JoinIdentity(subject: hostSubject, name: "Host", isHost: true, admitted: true)
        let hostToken = try await gatekeeper.token(for: identity, meeting: id, role: .host)
        let base = server.publicURL(request)
        var invite = "\(base)/m/\(id)"
        if let password { invite += "?invite=" + (try gatekeeper.invites.seal(password: password, meeting: id)) }
        let view = await hub.view(id)
        return jsonResponse(Created(id: id, hostToken: hostToken, inviteURL: invite, hostURL: "\(base)/m/\(id)#host=\(hostToken)",
                                    settings: settings, hasPassword: hash != nil, locked: view?.locked ?? false), status: .created)
    }

    /// What anyone may know before joining (to show a password prompt or a sign-in button); hosts see more.
    struct PublicView: Encodable {
        var id: String
        var title: String?
        var hasPassword: Bool
        var requireSignIn: Bool
        var allowedDomains: [String]
        var waitingRoom: Bool
        var locked: Bool
    }

    struct HostView: Encodable {
        var meeting: MeetingView
        var participants: [ParticipantInfo]
        var waiting: [WaitingParticipant]
    }

    private func show(_ request: Request, context: ParleyRequestContext) async throws -> Response {
        let id = try validatedMeeting(context)
        guard let view = await hub.view(id) else {
            if await hub.adhocMeetings {
                return jsonResponse(PublicView(id: id, title: nil, hasPassword: false, requireSignIn: false, allowedDomains: [], waitingRoom: false, locked: false))
            }
            throw SignalingError.meetingNotFound.http
        }
        if (try? await requireHost(request, meeting: id)) != nil {
            return jsonResponse(HostView(meeting: view, participants: await hub.participants(in: id), waiting: await hub.waitingList(id)))
        }
        return jsonResponse(PublicView(id: id, title: view.settings.title, hasPassword: view.hasPassword, requireSignIn: view.settings.requireSignIn,
                                       allowedDomains: view.settings.allowedDomains, waitingRoom: view.settings.waitingRoom, locked: view.locked))
    }

    private func update(_ request: Request, context: ParleyRequestContext) async throws -> Response {
        let id = try validatedMeeting(context)
        try await requireHost(request, meeting: id)
        let patch: MeetingSettingsPatch = try await decode(request, context: context)
        try http { try patch.validate() }
        let hash: String?? = patch.password.map { $0.isEmpty ? nil : PasswordHash.make($0) }
        let blocks = try await http { try await hub.update(id, patch: patch, passwordHash: hash) }
        await server.signaling.applyBlocks(id, blocks)
        guard let view = await hub.view(id) else { throw SignalingError.meetingNotFound.http }
        var body: [String: String] = [:]
        if let password = patch.password, !password.isEmpty {
            body["inviteURL"] = "\(server.publicURL(request))/m/\(id)?invite=" + (try gatekeeper.invites.seal(password: password, meeting: id))
        }
        return jsonResponse(Updated(meeting: view, inviteURL: body["inviteURL"]))
    }

    struct Updated: Encodable {
        var meeting: MeetingView
        /// A new invite link when the password changed (old links stop working).
        var inviteURL: String?
    }

    struct IssuedToken: Encodable {
        var token: String
        var role: MeetingRole
        var expiresInSeconds: Int
    }

    /// A participant token for whoever passes the meeting's checks (for WHIP/WHEP clients and
    /// for joining later); a host can issue tokens that skip the waiting room.
    private func issueToken(_ request: Request, context: ParleyRequestContext) async throws -> Response {
        let id = try validatedMeeting(context)
        let body: MeetingTokenRequest = try await decode(request, context: context)
        if (try? await requireHost(request, meeting: id)) != nil {
            let identity = JoinIdentity(subject: "p-" + RandomToken.make(length: 20), name: try http { try body.validatedHostIssuedName() },
                                        admitted: body.admitted ?? true)
            let token = try await gatekeeper.token(for: identity, meeting: id, role: .participant)
            return jsonResponse(IssuedToken(token: token, role: .participant, expiresInSeconds: Int(Gatekeeper.participantTokenLifetime)), status: .created)
        }
        guard body.admitted != true else {
            throw APIError(status: .forbidden, code: "forbidden", message: "only hosts can issue tokens that skip the waiting room")
        }
        let join = JoinRequest(meeting: id, name: body.name ?? "", password: body.password, invite: body.invite, idToken: body.idToken)
        let identity = try await http { try await gatekeeper.check(join, address: context.clientAddress(request.headers, trustedProxies: server.configuration.trustedProxies)) }
        try await http { try await hub.checkViewer(meeting: id, identity: identity, waitingRoomApplies: false) }
        let token = try await gatekeeper.token(for: identity, meeting: id, role: .participant)
        return jsonResponse(IssuedToken(token: token, role: .participant, expiresInSeconds: Int(Gatekeeper.participantTokenLifetime)), status: .created)
    }

    private func reports(_ request: Request, context: ParleyRequestContext) async throws -> Response {
        let id = try validatedMeeting(context)
        try await requireHost(request, meeting: id)
        return jsonResponse(await hub.reports(meeting: id))
    }

    private func allReports(_ request: Request) async throws -> Response {
        try requireOperator(request)
        return jsonResponse(await hub.allReports())
    }

    /// The operator's view of a meeting: who is in it (signaling) and where its media runs, with
    /// every stream in and out (the SFUs).
    private func meetingMedia(_ request: Request, context: ParleyRequestContext) async throws -> Response {
        try requireOperator(request)
        let id = try validatedMeeting(context)
        let participants = await hub.participants(in: id)
        guard let media = await server.signaling.sfu.meetingStatus(meetingID: id) ?? (participants.isEmpty ? nil : MeetingMediaStatus(routers: [])) else {
            throw APIError(status: .notFound, code: "meeting-not-found", message: "nobody is in meeting \(id) and no SFU carries it")
        }
        struct View: Encodable { var id: String; var participants: [ParticipantInfo]; var media: MeetingMediaStatus }
        return jsonResponse(View(id: id, participants: participants, media: media))
    }

    private func requireOperator(_ request: Request) throws {
        guard let adminToken = server.configuration.adminToken else {
            throw APIError(status: .notFound, code: "disabled", message: "the operator API is off: start parley with --admin-token-file")
        }
        guard let presented = bearer(request), constantTimeEqual(presented, adminToken) else {
            throw APIError(status: .unauthorized, code: "invalid-token", message: "the operator API needs Authorization: Bearer <admin token>")
        }
    }

    /// The host (or a co-host's) claims, from `Authorization: Bearer`.
    @discardableResult
    func requireHost(_ request: Request, meeting: String) async throws -> AccessClaims {
        guard let token = bearer(request) else {
            throw APIError(status: .unauthorized, code: "password-required", message: "this needs the meeting's host token as Authorization: Bearer")
        }
        let claims: AccessClaims
        do { claims = try await gatekeeper.tokens.verify(token, meeting: meeting) } catch { throw SignalingError.access(error).http }
        let isHost = await hub.isHost(meeting: meeting, subject: claims.subject)
        guard claims.role == .host || isHost else {
            throw SignalingError.forbidden("only the meeting's hosts can do this").http
        }
        return claims
    }

    private func decode<T: Decodable>(_ request: Request, context: ParleyRequestContext) async throws -> T {
        let body = try await request.body.collect(upTo: 64 * 1024)
        do {
            return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
        } catch {
            throw APIError(status: .badRequest, code: "bad-request", message: "the body must be a JSON object: \(error)")
        }
    }
}

/// The body of `POST /api/meetings`: an optional meeting id beside the settings, in one object.
/// Public for the fuzz target of API bodies (`Sources/ParleyFuzzTargets`).
public struct CreateMeetingRequest: Decodable, Sendable {
    public var id: String?
    public var settings: MeetingSettingsPatch

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        id = try container.decodeIfPresent(String.self, forKey: .id)
        settings = try MeetingSettingsPatch(from: decoder)
    }
    enum Key: String, CodingKey { case id }

    /// The checks the route makes before creating anything: settings in range and, when one is
    /// given, a valid meeting id, which it returns.
    public func validatedID() throws(SignalingError) -> String? {
        try settings.validate()
        guard let id else { return nil }
        return try Validation.meetingID(id)
    }
}

/// The body of `POST /api/meetings/{meeting}/tokens`: the credentials a joiner would bring.
/// Public for the fuzz target of API bodies.
public struct MeetingTokenRequest: Decodable, Sendable {
    public var name: String?
    public var password: String?
    public var invite: String?
    public var idToken: String?
    /// Hosts only: the token skips the waiting room.
    public var admitted: Bool?

    /// The display name of a token a host issues ("Guest" when none is given).
    public func validatedHostIssuedName() throws(SignalingError) -> String {
        try Validation.displayName(name ?? "Guest")
    }
}

func bearer(_ request: Request) -> String? {
    guard let value = request.headers[.authorization], value.lowercased().hasPrefix("bearer ") else { return nil }
    let token = value.dropFirst(7).trimmingCharacters(in: .whitespaces)
    return token.isEmpty ? nil : token
}

func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    guard x.count == y.count else { return false }
    return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
}

/// An error with an HTTP status and a JSON body `{error, message}` clients can act on.
struct APIError: HTTPResponseError {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var retryAfter: Int?

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var fields: HTTPFields = [.contentType: "application/json"]
        if let retryAfter { fields[.retryAfter] = String(retryAfter) }
        if status == .unauthorized { fields[.wwwAuthenticate] = "Bearer" }
        let data = (try? JSONEncoder().encode(["error": code, "message": message])) ?? Data()
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension SignalingError {
    /// The HTTP form of a refusal.
    var http: APIError {
        let status: HTTPResponse.Status
        var retryAfter: Int?
        switch self {
        case .badMessage, .badRequest, .negotiationFailed: status = .badRequest
        case .meetingNotFound: status = .notFound
        case .passwordRequired, .wrongPassword, .signInRequired, .access: status = .unauthorized
        case .locked, .removed, .domainNotAllowed, .forbidden, .denied, .notJoined, .alreadyJoined: status = .forbidden
        case .tooManyAttempts(let seconds):
            status = .tooManyRequests
            retryAfter = seconds
        case .meetingFull, .mediaFailed: status = .serviceUnavailable
        }
        return APIError(status: status, code: code, message: description, retryAfter: retryAfter)
    }
}

/// Runs a step whose refusals are SignalingErrors and sends them as HTTP errors.
func http<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as SignalingError { throw error.http }
}

func http<T>(_ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch let error as SignalingError { throw error.http }
}
