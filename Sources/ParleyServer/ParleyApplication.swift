import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import ParleyAccess
import ParleyControl
import ParleyMediaAPI
import ParleyMediaNode
import ServiceLifecycle
import UnixSignals

/// `parley serve`: the HTTP API, WebSocket signaling, WHIP/WHEP and the web client in front of the
/// SFU's workers, all in one process with in-memory state.
public struct ParleyServer: Sendable {
    public let configuration: ServerConfiguration
    /// The media plane: the SFU in this process, or SFU processes in a cluster.
    public let sfu: any MediaServer
    /// Set when the SFU runs in this process (started and stopped with the server).
    let localSFU: SFU?
    public let signaling: SignalingService
    let sessions: HTTPSessions
    let identities: OpenIDVerifier?
    let logger: Logger
    let startedAt = Date()

    public init(configuration: ServerConfiguration, logger: Logger, media: (any MediaServer)? = nil) throws {
        self.configuration = configuration
        self.logger = logger
        self.sessions = HTTPSessions(shared: configuration.sessionStore)
        if let media {
            self.sfu = media
            self.localSFU = nil
        } else {
            let local = try SFU(configuration: configuration.sfu, logger: logger)
            self.sfu = local
            self.localSFU = local
        }
        let sessions = self.sessions
        let hub = MeetingHub(maximumParticipants: configuration.maximumParticipants, adhocMeetings: configuration.adhocMeetings, store: configuration.meetingStore, live: configuration.liveStore,
                             reconnectGrace: configuration.reconnectGrace)
        let identities: (any IdentityVerifier)? = configuration.identityProviders.isEmpty
            ? nil : OpenIDVerifier(providers: configuration.identityProviders, logger: logger)
        self.identities = identities as? OpenIDVerifier
        let gatekeeper = Gatekeeper(hub: hub, secret: configuration.secret, identities: identities)
        self.signaling = SignalingService(gatekeeper: gatekeeper, sfu: sfu, logger: logger, turn: configuration.turn, media: configuration.media,
                                          transportClosed: { await sessions.forget(transportID: $0) })
    }

    public func run() async throws {
        localSFU?.start()
        defer { localSFU?.stop() }
        let app = Application(
            router: makeRouter(),
            server: .http1WebSocketUpgrade(configuration: .init(ws: .init(maxFrameSize: ClientMessage.maximumSize)),
                                           shouldUpgrade: { [self] request, channel, _ in upgradeSignalingSocket(request, channel: channel) }),
            configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: "parley"),
            onServerRunning: { [logger, configuration] channel in
                logger.info("Parley serving", metadata: [
                    "url": "http://\(configuration.httpHost):\(channel.localAddress?.port ?? configuration.httpPort)",
                    "web-root": "\(configuration.webRoot)",
                ])
            },
            logger: logger
        )
        let signaling = self.signaling
        let eventLoop = Task { await signaling.runEventLoop() }
        defer { eventLoop.cancel() }
        // Services stop in reverse order: participants hear that the meeting ended before the
        // HTTP server closes their sockets.
        let serviceGroup = ServiceGroup(
            configuration: .init(services: [.init(service: app, successTerminationBehavior: .gracefullyShutdownGroup),
                                            .init(service: MeetingEndNotifier(hub: signaling.hub))],
                                 gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await serviceGroup.run()
    }

    func makeRouter() -> Hummingbird.Router<ParleyRequestContext> {
        let router = Hummingbird.Router(context: ParleyRequestContext.self)
        router.get("/healthz") { _, _ -> Response in
            let status = await sfu.status()
            let body = HealthStatus(status: "ok", uptimeSeconds: Int(Date().timeIntervalSince(startedAt)),
                                    meetings: await signaling.hub.meetingCount, participants: await signaling.hub.participantCount,
                                    connections: await signaling.hub.connectionCount,
                                    whipWhepSessions: await sessions.count, sfu: status)
            return jsonResponse(body)
        }
        router.get("/") { _, _ in try fileResponse("index.html") }
        router.get("/m/{meeting}") { _, context in
            let meeting = try validatedMeeting(context)
            let known = await signaling.hub.exists(meeting)
            guard configuration.adhocMeetings || known else {
                throw HTTPError(.notFound, message: "There is no meeting \(meeting) on this server. Check the link, or ask the host for a new one.")
            }
            return try fileResponse("meeting.html")
        }
        router.add(middleware: FileMiddleware(configuration.webRoot, urlBasePath: "/static", searchForIndexHtml: false, logger: logger))
        WHIPWHEPRoutes(server: self).register(on: router)
        MeetingAPIRoutes(server: self).register(on: router)
        if let identities { IdentityRoutes(verifier: identities).register(on: router) }
        return router
    }

    func fileResponse(_ name: String) throws -> Response {
        let path = configuration.webRoot + "/" + name
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HTTPError(.internalServerError, message: "web client file \(name) missing under \(configuration.webRoot)")
        }
        return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Where links the API hands out point: `--public-url`, else the Host this request came to.
    func publicURL(_ request: Request) -> String {
        if let configured = configuration.publicURL { return configured.hasSuffix("/") ? String(configured.dropLast()) : configured }
        let host = request.head.authority ?? "\(configuration.httpHost):\(configuration.httpPort)"
        return "http://\(host)"
    }

    /// Upgrades `GET /ws` to the signaling WebSocket. Not through hummingbird-websocket's router:
    /// its request context keeps itself alive in a cycle, one leak per connection (2.8.1,
    /// WebSocketRouter.swift:95), which LeakSanitizer would then have to be told to overlook.
    func upgradeSignalingSocket(_ request: HTTPRequest, channel: any Channel)
        -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>> {
        guard request.method == .get, request.path?.split(separator: "?", maxSplits: 1).first == "/ws" else { return .dontUpgrade }
        let address = forwardedClientAddress(peer: channel.remoteAddress, request.headerFields, trustedProxies: configuration.trustedProxies)
        let signaling = self.signaling
        let logger = self.logger
        return .upgrade([:]) { inbound, outbound, _ in
            let (messages, queue) = AsyncStream<OutgoingMessage>.makeStream(bufferingPolicy: .bufferingNewest(1024))
            let sink: MessageSink = { queue.yield($0) }
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await message in messages {
                        do { try await outbound.write(.text(message.json)) } catch { break }
                        if message.endsMeeting { try? await outbound.close(.goingAway, reason: "meeting ended") }
                    }
                }
                var connection = SignalingConnection(address: address)
                do {
                    for try await message in inbound.messages(maxSize: ClientMessage.maximumSize) {
                        switch message {
                        case .text(let text):
                            await signaling.handle(text: text, connection: &connection, sink: sink)
                        case .binary:
                            sink(OutgoingMessage(.error(code: "bad-message", message: "signaling messages are JSON text")))
                        }
                    }
                } catch {
                    logger.debug("signaling socket ended", metadata: ["error": "\(error)"])
                }
                await signaling.disconnect(&connection)
                queue.finish()
                group.cancelAll()
            }
        }
    }
}

struct HealthStatus: Codable, ResponseEncodable {
    var status: String
    var uptimeSeconds: Int
    var meetings: Int
    var participants: Int
    /// Signaling connections (and WHIP publishers) this node holds; `participants` counts everyone
    /// in the meetings it follows, wherever they are connected.
    var connections: Int
    var whipWhepSessions: Int
    var sfu: SFUStatus
}

func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
    let data = (try? JSONEncoder().encode(value)) ?? Data("{}".utf8)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

func validatedMeeting(_ context: some RequestContext) throws -> String {
    let raw = context.parameters.get("meeting") ?? ""
    do {
        return try Validation.meetingID(raw)
    } catch {
        throw HTTPError(.badRequest, message: error.description)
    }
}

/// On shutdown, tells every participant that its meeting ended, then gives the messages a moment
/// to leave before the HTTP server closes the sockets.
struct MeetingEndNotifier: Service {
    let hub: MeetingHub

    func run() async throws {
        try? await gracefulShutdown()
        await hub.endAll(reason: "the server is shutting down")
        try? await Task.sleep(for: .milliseconds(300))
    }
}
