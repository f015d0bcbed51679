import Hummingbird
import NIOCore
import NIOWebSocket
import ParleyBase
import ParleyControl
import ParleyMediaAPI

/// WHIP (RFC 9725) and WHEP: `POST` an SDP offer, get `201 Created` with the answer and a
/// `Location` to `DELETE`. CORS lets browser clients of other origins use them.
struct WHIPWHEPRoutes {
    let server: ParleyServer
    static let maximumOfferSize = 128 * 1024

    func register(on router: Hummingbird.Router<ParleyRequestContext>) {
        let cors = CORSMiddleware<ParleyRequestContext>(
            allowOrigin: .all,
            allowHeaders: [.contentType, .authorization, .ifMatch],
            allowMethods: [.post, .delete, .options, .patch],
            exposedHeaders: ["Location", "Link", "ETag"])
        for kind in ["whip", "whep"] {
            let group = router.group(RouterPath(kind)).add(middleware: cors)
            let isPublisher = kind == "whip"
            group.post("{meeting}") { request, context in try await post(request, context: context, isPublisher: isPublisher) }
            group.delete("{meeting}/{session}") { _, context in try await delete(context, isPublisher: isPublisher) }
            group.patch("{meeting}/{session}") { _, _ -> Response in
                // ICE-lite with every candidate in the answer: trickle is not needed (RFC 9725 §4.3.1).
                Response(status: .methodNotAllowed, headers: [.allow: "DELETE"])
            }
            group.on("{meeting}", method: HTTPRequest.Method.options) { _, _ in Response(status: .noContent) }
            group.on("{meeting}/{session}", method: HTTPRequest.Method.options) { _, _ in Response(status: .noContent) }
        }
    }

    private func post(_ request: Request, context: ParleyRequestContext, isPublisher: Bool) async throws -> Response {
        let meeting = try validatedMeeting(context)
        guard request.headers[.contentType]?.lowercased().hasPrefix("application/sdp") == true else {
            throw HTTPError(.unsupportedMediaType, message: "the body must be an SDP offer with Content-Type: application/sdp")
        }
        let body = try await request.body.collect(upTo: Self.maximumOfferSize)
        let sdp = String(buffer: body)
        let hub = server.signaling.hub
        // RFC 9725 §4.4: credentials come as a Bearer token; open ad hoc meetings need none.
        let name = request.uri.queryParameters["name"].map(String.init) ?? ""
        let join = JoinRequest(meeting: meeting, name: name.isEmpty ? (isPublisher ? "WHIP publisher" : "WHEP player") : name, token: bearer(request))
        let identity = try await http { () async throws(SignalingError) in
            try await server.signaling.gatekeeper.check(join, address: context.clientAddress(request.headers, trustedProxies: server.configuration.trustedProxies), client: isPublisher ? "whip" : "whep")
        }
        let participantID: String
        if isPublisher {
            let outcome = try await http { try await hub.admit(meeting: meeting, identity: identity, sink: nil) }
            switch outcome {
            case .joined(let id, _), .resumed(let id, _, _):
                participantID = id
            case .waiting(let id):
                await hub.leave(meeting: meeting, participantID: id)
                throw SignalingError.forbidden("this meeting has a waiting room: a host must issue an admitted token (POST /api/meetings/\(meeting)/tokens)").http
            }
            await server.signaling.applyBlocks(meeting, await hub.effectiveBlocks(meeting))
        } else {
            try await http { try await hub.checkViewer(meeting: meeting, identity: identity) }
            participantID = "whep-" + RandomToken.make(length: 10)
        }
        let result: NegotiationResult
        do {
            result = try await server.signaling.negotiate(meetingID: meeting, participantID: participantID, transportID: nil,
                                                          role: isPublisher ? .whip : .whep, sdp: sdp, sources: [:])
        } catch let error as SignalingError {
            if isPublisher { await hub.leave(meeting: meeting, participantID: participantID) }
            throw HTTPError(.badRequest, message: error.description)
        }
        let id = await server.sessions.add(.init(meetingID: meeting, participantID: participantID, transportID: result.transportID, isPublisher: isPublisher))
        let location = "/\(isPublisher ? "whip" : "whep")/\(meeting)/\(id)"
        return Response(status: .created, headers: [.contentType: "application/sdp", .location: location, .eTag: "\"\(result.transportID)\""],
                        body: .init(byteBuffer: ByteBuffer(string: result.answer)))
    }

    private func delete(_ context: ParleyRequestContext, isPublisher: Bool) async throws -> Response {
        let meeting = try validatedMeeting(context)
        let id = context.parameters.get("session") ?? ""
        guard let session = await server.sessions.remove(id: id, meetingID: meeting, isPublisher: isPublisher) else {
            throw HTTPError(.notFound, message: "no such session")
        }
        if isPublisher { await server.signaling.hub.end(meeting: meeting, participantID: session.participantID) }
        server.sfu.closeTransport(meetingID: meeting, transportID: session.transportID, reason: "participant left")
        return Response(status: .ok)
    }
}
