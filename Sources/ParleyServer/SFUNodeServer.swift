import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird
import Logging
import NIOCore
import ParleyCluster
import ParleyMediaAPI
import ParleyRedis
import ParleyMediaNode
import ParleyBase
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `parley sfu`: the media plane alone. Signaling nodes reach it through its control API (JSON over
/// HTTP, `Authorization: Bearer <control token>` when one is configured); it heartbeats its load to
/// Redis for the room service and publishes its events on the Redis channel `sfu-events`.
public struct SFUNodeServer: Sendable {
    public struct Configuration: Sendable {
        public var nodeID: String
        public var sfu: SFUConfiguration
        public var controlHost = "127.0.0.1"
        public var controlPort = 0
        /// What signaling nodes use to reach the control API; default http://controlHost:port.
        public var controlURL: String?
        public var controlToken: String?
        public var capacity = 500
        /// Load limits beside the participants (nil: none): past either, newcomers go elsewhere.
        public var maxPacketsPerSecond: Int?
        public var maxCPUPercent: Double?
        /// How long a drain (SIGTERM) waits for its transports to end before the process exits.
        public var drainTimeout: Duration = .seconds(10)
        public var redis: RedisConfiguration
        public init(nodeID: String, sfu: SFUConfiguration, redis: RedisConfiguration) {
            self.nodeID = nodeID; self.sfu = sfu; self.redis = redis
        }
    }

    public static let eventsChannel = "sfu-events"

    let configuration: Configuration
    let sfu: SFU
    let redis: RedisClient
    let rooms: RoomService
    let logger: Logger
    /// New transports being negotiated now (counted against the capacity with those that exist).
    let joining = JoinsInFlight()
    /// The last load sample and whether the node drains, for the heartbeat and for admission.
    let load = NodeLoad()

    public init(configuration: Configuration, logger: Logger) async throws {
        self.configuration = configuration
        self.logger = logger
        self.sfu = try SFU(configuration: configuration.sfu, logger: logger)
        self.redis = try await RedisClient.connect(configuration.redis)
        self.rooms = RoomService(redis: redis)
    }

    public func run() async throws {
        sfu.start()
        defer { sfu.stop() }
        let router = Hummingbird.Router()
        registerControl(on: router)
        let app = Application(router: router, configuration: .init(address: .hostname(configuration.controlHost, port: configuration.controlPort),
                                                                     serverName: "parley-sfu"),
                              onServerRunning: { [self] channel in
                                  let port = channel.localAddress?.port ?? configuration.controlPort
                                  await self.started(port: port)
                              }, logger: logger)
        let events = Task { await publishEvents() }
        defer { events.cancel() }
        let cascade = Task { await runCascade() }
        defer { cascade.cancel() }
        // SIGTERM drains (its participants move to the meeting's other SFUs first); SIGINT stops.
        let serviceGroup = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigint], logger: logger))
        let drain = Task { [self] in
            for await _ in await UnixSignalsSequence(trapping: .sigterm) {
                await self.drain()
                await serviceGroup.triggerGracefulShutdown()
                return
            }
        }
        defer { drain.cancel() }
        try await serviceGroup.run()
        try? await rooms.leave(configuration.nodeID)
    }

    /// SIGTERM: the node says it is draining (the room service places nobody new here), hands the
    /// meetings it is primary of to another member, and ends every transport with the reason
    /// "the media server is draining": their clients get `media-failed`, build new peer
    /// connections and land on the meeting's other SFUs. Once its transports are gone (or after
    /// `drainTimeout`), it leaves the meetings and the process stops.
    func drain() async {
        let started = ContinuousClock.now
        load.startDraining()
        let meetings = sfu.carriedMeetings
        logger.notice("draining: moving participants to other SFUs", metadata: ["transports": "\(sfu.transportCount)", "meetings": "\(meetings.count)"])
        await heartbeat()
        for meeting in meetings {
            if let heir = try? await rooms.handOver(meeting: meeting, from: configuration.nodeID) {
                logger.info("draining: meeting handed over", metadata: ["meeting": "\(meeting)", "primary": "\(heir)"])
            }
        }
        sfu.closeAllTransports(reason: Self.drainReason)
        while sfu.transportCount > 0, ContinuousClock.now - started < configuration.drainTimeout {
            try? await Task.sleep(for: .milliseconds(50))
        }
        // The transports' last events (what tells their clients to move) reach Redis first.
        try? await Task.sleep(for: .milliseconds(300))
        for meeting in meetings { try? await rooms.leave(meeting: meeting, node: configuration.nodeID) }
        logger.notice("drained", metadata: ["after": "\(ContinuousClock.now - started)", "transports left": "\(sfu.transportCount)"])
    }

    public static let drainReason = "the media server is draining"

    private func started(port: Int) async {
        let url = configuration.controlURL ?? "http://\(configuration.controlHost):\(port)"
        logger.info("SFU node serving", metadata: ["node": "\(configuration.nodeID)", "control": "\(url)", "udp-ports": "\(sfu.workers.map(\.port))"])
        // Heartbeats for as long as the process lives: the room service sees us within one, and
        // sees us gone within its TTL after a kill -9.
        load.controlURL = url
        Task { [self] in
            while !Task.isCancelled {
                await heartbeat()
                try? await Task.sleep(for: RoomService.heartbeatInterval)
            }
        }
    }

    /// One heartbeat with a fresh load sample (also sent at once when a drain begins).
    private func heartbeat() async {
        let status = await sfu.status()
        let sample = load.sample(packetsReceived: status.counters["rtpReceived"] ?? 0)
        let node = SFUNode(id: configuration.nodeID, announceAddress: configuration.sfu.announceAddress, ports: status.ports.map(Int.init),
                           controlURL: load.controlURL, capacity: configuration.capacity, participants: status.transports,
                           streams: status.producers, packetsPerSecond: sample.packetsPerSecond, cpuPercent: sample.cpuPercent,
                           maxPacketsPerSecond: configuration.maxPacketsPerSecond, maxCPUPercent: configuration.maxCPUPercent,
                           draining: sample.draining)
        do { try await rooms.heartbeat(node, meetings: status.meetingIDs ?? []) } catch { logger.warning("heartbeat failed", metadata: ["error": "\(error)"]) }
    }

    /// Cascading: for each meeting with participants here, a pipe to every other live SFU of the
    /// meeting's set (a mesh; the lower node id offers, through the other's control API), and none
    /// to SFUs gone or no longer in the set. Reconciled every heartbeat interval, so pipes form
    /// again by themselves after an SFU dies or Redis loses its data.
    private func runCascade() async {
        let me = configuration.nodeID
        var carried: Set<String> = []
        // When each meeting was last seen with a participant here: it is left a little after,
        // not at a moment when its last participant is between two peer connections.
        var lastCarried: [String: ContinuousClock.Instant] = [:]
        // When each pipe was first seen: a pipe offered by an SFU this node does not see in the
        // meeting yet (its heartbeat or the set lag by an interval) is given a grace before it ends.
        var firstSeen: [String: [PeerAddress: ContinuousClock.Instant]] = [:]
        let grace: Duration = .seconds(3)
        let session = URLSession(configuration: .ephemeral)
        while !Task.isCancelled {
            try? await Task.sleep(for: RoomService.heartbeatInterval)
            let clockNow = ContinuousClock.now
            let present = sfu.carriedMeetings
            for meeting in present { lastCarried[meeting] = clockNow }
            for meeting in carried.subtracting(present) where clockNow - (lastCarried[meeting] ?? clockNow) >= grace {
                firstSeen[meeting] = nil
                lastCarried[meeting] = nil
                sfu.closeSFUPipe(meetingID: meeting, remote: nil)
                try? await rooms.leave(meeting: meeting, node: me)
            }
            carried = Set(lastCarried.keys)
            let now = present
            guard !now.isEmpty, let live = try? await rooms.liveNodes() else { continue }
            for meeting in now {
                guard let (members, primary, topology) = try? await rooms.cascade(of: meeting) else { continue }
                if !members.contains(me) { try? await rooms.join(meeting: meeting, node: me) }
                // Mesh: a pipe to every other SFU of the meeting, offered by the lower id. Star: the
                // primary (the hub) has a pipe to each, and offers them; the others only to it.
                let isHub = topology == .star && primary == me
                let peers = live.filter { peer in
                    guard peer.id != me, members.contains(peer.id) else { return false }
                    return topology == .mesh || isHub || peer.id == primary
                }
                var wanted: [PeerAddress: SFUNode] = [:]
                for peer in peers {
                    guard let port = SFU.hubPort(of: meeting, ports: peer.ports), let address = PeerAddress(host: peer.announceAddress, port: UInt16(port))
                    else { continue }
                    wanted[address] = peer
                }
                let existing = Set(await sfu.sfuPipes(of: meeting))
                let clock = ContinuousClock.now
                firstSeen[meeting] = existing.reduce(into: [:]) { seen, remote in seen[remote] = firstSeen[meeting]?[remote] ?? clock }
                let liveHubs = Set(live.compactMap { node in
                    SFU.hubPort(of: meeting, ports: node.ports).flatMap { PeerAddress(host: node.announceAddress, port: UInt16($0)) }
                })
                for remote in existing where wanted[remote] == nil {
                    // To a live SFU that is no peer of ours now: it ends at once. To an address no live
                    // SFU has (one that died, or one this node does not see yet): once past the grace.
                    let young = clock - (firstSeen[meeting]?[remote] ?? clock) < grace
                    if young && !liveHubs.contains(remote) { continue }
                    logger.info("pipe ends: the far SFU left the meeting, died, or the topology changed",
                                metadata: ["meeting": "\(meeting)", "remote": "\(remote)", "topology": "\(topology.rawValue)"])
                    sfu.closeSFUPipe(meetingID: meeting, remote: remote)
                }
                for (remote, peer) in wanted where !existing.contains(remote) && (topology == .mesh ? me < peer.id : isHub) {
                    await offerPipe(meeting: meeting, to: peer, remote: remote, relay: isHub ? .all : .otherReach, session: session)
                }
            }
        }
    }

    private func offerPipe(meeting: String, to peer: SFUNode, remote: PeerAddress, relay: PipeRelay, session: URLSession) async {
        let offer = await sfu.pipeOffer(meetingID: meeting, media: .defaults, to: remote, address: configuration.sfu.announceAddress,
                                        node: configuration.nodeID)
        do {
            guard let url = URL(string: "\(peer.controlURL)/control/pipes") else { return }
            var request = URLRequest(url: url)
            request.httpMethod = "POST"
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            if let token = configuration.controlToken { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
            request.httpBody = try JSONEncoder().encode(offer)
            let (data, response) = try await session.data(for: request)
            guard (response as? HTTPURLResponse)?.statusCode == 200 else {
                logger.warning("pipe offer refused", metadata: ["peer": "\(peer.id)", "answer": "\(String(decoding: data.prefix(200), as: UTF8.self))"])
                return
            }
            try await sfu.connectPipe(offer, answer: try JSONDecoder().decode(PipeAnswer.self, from: data), relay: relay)
            logger.info("pipe to SFU", metadata: ["meeting": "\(meeting)", "peer": "\(peer.id)", "remote": "\(remote)", "relay": "\(relay.rawValue)"])
        } catch {
            logger.warning("pipe offer failed", metadata: ["peer": "\(peer.id)", "error": "\(error)"])
        }
    }

    private func publishEvents() async {
        let encoder = JSONEncoder()
        for await event in sfu.events {
            guard let data = try? encoder.encode(PublishedSFUEvent(node: configuration.nodeID, event: event)) else { continue }
            do { _ = try await redis.publish(Self.eventsChannel, String(decoding: data, as: UTF8.self)) } catch {
                logger.warning("could not publish an SFU event", metadata: ["error": "\(error)"])
            }
        }
    }

    // The control API's request bodies (beside `NegotiationMessage`); public for the fuzz target of API bodies.
    /// `POST /control/close-transport`.
    public struct CloseTransport: Codable, Sendable { public var meetingID: String; public var transportID: String; public var reason: String }
    /// `POST /control/close-participant`.
    public struct CloseParticipant: Codable, Sendable { public var meetingID: String; public var participantID: String }
    /// `POST /control/blocked-media`.
    public struct Blocked: Codable, Sendable { public var meetingID: String; public var participantID: String; public var blocked: [BlockedMedia] }
    /// `POST /control/viewport`.
    public struct Viewport: Codable, Sendable { public var meetingID: String; public var participantID: String; public var sizes: [String: VideoSize] }
    /// `POST /control/select-videos`.
    public struct SelectVideos: Codable, Sendable { public var meetingID: String; public var participantID: String; public var sources: [VideoSource] }

    private func registerControl(on router: Hummingbird.Router<BasicRequestContext>) {
        let control = router.group("control").add(middleware: ControlTokenMiddleware(token: configuration.controlToken))
        control.post("negotiate") { request, context -> Response in
            let message = try await request.decode(as: NegotiationMessage.self, context: context)
            do {
                let negotiation = try message.request()
                // Capacity is enforced here, not only in heartbeats (up to one interval old): a
                // newcomer beyond it is placed on another SFU of the meeting by the signaling node.
                // Joins in flight hold their place, so simultaneous ones cannot pass the limit together.
                // A participant replacing its transport here (a new peer connection) keeps its place.
                let isNew = negotiation.transportID == nil && !sfu.carries(meetingID: negotiation.meetingID, participantID: negotiation.participantID)
                if isNew {
                    if let refusal = load.refusal(maxPacketsPerSecond: configuration.maxPacketsPerSecond, maxCPUPercent: configuration.maxCPUPercent)
                        ?? (joining.reserve(below: configuration.capacity, existing: sfu.transportCount)
                            ? nil : "this SFU carries \(configuration.capacity) participants, its capacity") {
                        logger.info("join refused: SFU full", metadata: ["meeting": "\(negotiation.meetingID)", "participant": "\(negotiation.participantID)",
                                                                        "reason": "\(refusal)"])
                        return jsonResponse(["error": "sfu-full", "message": refusal], status: .serviceUnavailable)
                    }
                }
                defer { if isNew { joining.release() } }
                let result = try await sfu.negotiate(negotiation)
                return jsonResponse(result)
            } catch NegotiationError.unknownTransport(let id) {
                // Gone: the signaling node tells its client to start a new peer connection.
                return jsonResponse(["error": "unknown-transport", "message": "no transport \(id) on this SFU"], status: .gone)
            } catch let error as NegotiationError {
                return jsonResponse(["error": "negotiation-failed", "message": error.description], status: .unprocessableContent)
            }
        }
        control.post("close-transport") { request, context -> Response in
            let body = try await request.decode(as: CloseTransport.self, context: context)
            sfu.closeTransport(meetingID: body.meetingID, transportID: body.transportID, reason: body.reason)
            return Response(status: .noContent)
        }
        control.post("close-participant") { request, context -> Response in
            let body = try await request.decode(as: CloseParticipant.self, context: context)
            sfu.closeParticipant(meetingID: body.meetingID, participantID: body.participantID)
            return Response(status: .noContent)
        }
        control.post("blocked-media") { request, context -> Response in
            let body = try await request.decode(as: Blocked.self, context: context)
            sfu.setBlockedMedia(meetingID: body.meetingID, participantID: body.participantID, blocked: Set(body.blocked))
            return Response(status: .noContent)
        }
        control.post("viewport") { request, context -> Response in
            let body = try await request.decode(as: Viewport.self, context: context)
            sfu.setViewport(meetingID: body.meetingID, participantID: body.participantID, sizes: body.sizes)
            return Response(status: .noContent)
        }
        control.post("select-videos") { request, context -> Response in
            let body = try await request.decode(as: SelectVideos.self, context: context)
            sfu.selectVideos(meetingID: body.meetingID, participantID: body.participantID, sources: Array(body.sources.prefix(MeetingMediaSettings.videoSlotsRange.upperBound)))
            return Response(status: .noContent)
        }
        control.post("pipes") { request, context -> Response in
            let offer = try await request.decode(as: PipeOffer.self, context: context)
            do {
                return jsonResponse(try await sfu.acceptPipe(offer, address: configuration.sfu.announceAddress))
            } catch let error as PipeSetupError {
                return jsonResponse(["error": "bad-pipe", "message": error.description], status: .badRequest)
            }
        }
        control.get("status") { _, _ -> Response in jsonResponse(await sfu.status()) }
        control.get("meetings/{meeting}") { _, context -> Response in
            let meeting = context.parameters.get("meeting") ?? ""
            guard let status = await sfu.meetingStatus(meetingID: meeting, node: configuration.nodeID) else {
                return jsonResponse(["error": "not-found", "message": "this SFU carries no meeting \(meeting.prefix(64))"], status: .notFound)
            }
            return jsonResponse(status)
        }
    }
}

/// Places held by joins being negotiated, so that simultaneous joins cannot pass the SFU's
/// capacity together.
final class JoinsInFlight: Sendable {
    private let count = Mutex(0)

    func reserve(below capacity: Int, existing: Int) -> Bool {
        count.withLock { count in
            guard existing + count < capacity else { return false }
            count += 1
            return true
        }
    }

    func release() { count.withLock { $0 -= 1 } }
}

/// The node's load as its last heartbeat measured it, and whether it drains: the SFU refuses
/// newcomers past its limits itself, since a heartbeat is up to one interval old where it is read.
final class NodeLoad: Sendable {
    struct Sample: Sendable {
        var packetsPerSecond = 0
        var cpuPercent = 0.0
        var draining = false
    }
    private struct State {
        var sample = Sample()
        var cpu = CPUSampler()
        var received = PacketRate()
        var controlURL = ""
    }
    private let state = Mutex(State())

    var controlURL: String {
        get { state.withLock { $0.controlURL } }
        set { state.withLock { $0.controlURL = newValue } }
    }

    func sample(packetsReceived: Int) -> Sample {
        state.withLock { state in
            state.sample.packetsPerSecond = state.received.sample(packetsReceived)
            state.sample.cpuPercent = state.cpu.sample()
            return state.sample
        }
    }

    func startDraining() { state.withLock { $0.sample.draining = true } }

    /// Why a newcomer cannot come in now, or nil.
    func refusal(maxPacketsPerSecond: Int?, maxCPUPercent: Double?) -> String? {
        let sample = state.withLock { $0.sample }
        if sample.draining { return SFUNodeServer.drainReason }
        if let maxPacketsPerSecond, sample.packetsPerSecond >= maxPacketsPerSecond {
            return "this SFU receives \(sample.packetsPerSecond) packets a second, its limit is \(maxPacketsPerSecond)"
        }
        if let maxCPUPercent, sample.cpuPercent >= maxCPUPercent {
            return "this SFU uses \(Int(sample.cpuPercent)) % CPU, its limit is \(Int(maxCPUPercent)) %"
        }
        return nil
    }
}

/// Refuses control requests without the configured bearer token.
struct ControlTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let token {
            guard let presented = bearer(request), constantTimeEqual(presented, token) else {
                throw HTTPError(.unauthorized, message: "the SFU control API needs Authorization: Bearer <control token>")
            }
        }
        return try await next(request, context)
    }
}

/// The process's CPU use between samples, as a percentage of one core.
struct CPUSampler {
    private var last: (cpu: Double, wall: Double)?

    mutating func sample() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        let wall = Date().timeIntervalSince1970
        defer { last = (cpu, wall) }
        guard let last, wall > last.wall else { return 0 }
        return (cpu - last.cpu) / (wall - last.wall) * 100
    }
}

/// A counter's rate between samples.
struct PacketRate {
    private var last: (count: Int, at: Double)?

    mutating func sample(_ count: Int) -> Int {
        let now = Date().timeIntervalSince1970
        defer { last = (count, now) }
        guard let last, now > last.at else { return 0 }
        return Int(Double(count - last.count) / (now - last.at))
    }
}
