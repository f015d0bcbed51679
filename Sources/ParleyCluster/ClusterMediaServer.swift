import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import ParleyMediaAPI
import ParleyRedis
import Synchronization

/// The media plane as a signaling node sees it in a cluster: each meeting's SFU from the room
/// service, reached over its control API; the SFUs' events from Redis; and, when an SFU stops
/// heartbeating, a `transportClosed` for every transport it carried, so signaling tells those
/// clients at once (their next offer lands on the meeting's new SFU).
public final class ClusterMediaServer: MediaServer {
    public let events: AsyncStream<SFUEvent>
    private let continuation: AsyncStream<SFUEvent>.Continuation
    let rooms: RoomService
    private let subscriber: RedisSubscriber
    private let controlToken: String?
    private let logger: Logger
    private let session: URLSession
    private struct Transport: Sendable {
        var meetingID: String
        var participantID: String
        var node: String
    }
    private struct State {
        var transports: [String: Transport] = [:]
        var nodes: [String: SFUNode] = [:]
        /// No SFU is declared dead before this (Redis lost its data: heartbeats are coming back).
        var trustHeartbeatsAfter = ContinuousClock.now
        var epoch: String?
        /// The SFUs alive at the last check (every 250 ms).
        var live: Set<String> = []
    }
    private let state = Mutex(State())
    private let tasks = Mutex<[Task<Void, Never>]>([])

    public init(redis: RedisClient, redisConfiguration: RedisConfiguration, controlToken: String?, topology: CascadeTopology? = nil,
                logger: Logger) async throws(RedisError) {
        rooms = RoomService(redis: redis, topology: topology)
        subscriber = try await RedisSubscriber.connect(redisConfiguration)
        try await subscriber.subscribe(["sfu-events"])
        self.controlToken = controlToken
        self.logger = logger
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 10
        configuration.httpMaximumConnectionsPerHost = 64
        session = URLSession(configuration: configuration)
        (events, continuation) = AsyncStream.makeStream()
        start()
    }

    private func start() {
        let relay = Task { [subscriber, continuation, weak self] in
            let decoder = JSONDecoder()
            for await event in subscriber.events {
                guard case .message(_, let payload) = event,
                      let published = try? decoder.decode(PublishedSFUEvent.self, from: Data(payload.utf8)) else { continue }
                self?.observe(published.event)
                continuation.yield(published.event)
            }
        }
        let watch = Task { [weak self] in
            while !Task.isCancelled {
                await self?.checkNodes()
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        tasks.withLock { $0 = [relay, watch] }
    }

    public func stop() {
        for task in tasks.withLock({ $0 }) { task.cancel() }
        subscriber.close()
        continuation.finish()
    }

    private func observe(_ event: SFUEvent) {
        if case .transportClosed(_, _, let transportID, _) = event {
            state.withLock { _ = $0.transports.removeValue(forKey: transportID) }
        }
    }

    /// SFUs that stopped heartbeating: their transports are gone.
    private func checkNodes() async {
        guard let epoch = try? await rooms.epoch(), let live = try? await rooms.liveNodes() else { return }
        let liveIDs = Set(live.map(\.id))
        let lost = state.withLock { state -> [(String, Transport)] in
            for node in live { state.nodes[node.id] = node }
            state.live = liveIDs
            let now = ContinuousClock.now
            if epoch != state.epoch {
                if state.epoch != nil { logger.warning("Redis lost its data: waiting for the nodes' heartbeats before judging any SFU") }
                state.trustHeartbeatsAfter = now + RoomService.heartbeatTTL
                state.epoch = epoch
            }
            guard now >= state.trustHeartbeatsAfter else { return [] }
            let lost = state.transports.filter { !liveIDs.contains($0.value.node) }
            for (id, _) in lost { state.transports[id] = nil }
            return lost.map { ($0.key, $0.value) }
        }
        for (transportID, transport) in lost {
            logger.warning("SFU gone: transport closed", metadata: ["sfu": "\(transport.node)", "transport": "\(transportID)"])
            continuation.yield(.transportClosed(meetingID: transport.meetingID, participantID: transport.participantID, transportID: transportID,
                                                reason: "the media server \(transport.node) stopped"))
        }
    }

    // MARK: MediaServer

    public func negotiate(_ request: NegotiationRequest) async throws -> NegotiationResult {
        var excluded: Set<String> = [], unreachable: Set<String> = []
        // Joins racing for the last places: those that answered full get another chance until then.
        let deadline = ContinuousClock.now + RoomService.heartbeatTTL * 2
        while true {
            let node: SFUNode
            if let transportID = request.transportID, let known = state.withLock({ state in state.transports[transportID].flatMap { state.nodes[$0.node] } }) {
                node = known
            } else {
                // A new transport, or one another signaling node made (its client reconnected here):
                // the meeting's SFUs have it if anyone does; else the least loaded of them.
                node = try await place(request.meetingID, excluding: &excluded, unreachable: unreachable, until: deadline)
                state.withLock { $0.nodes[node.id] = node }
            }
            let data: Data, status: Int
            do {
                (data, status) = try await call(node, "negotiate", body: NegotiationMessage(request))
            } catch let error as URLError where Self.unreachable.contains(error.code) {
                // Dead, though its heartbeat has not expired yet (a client can notice a dead path
                // before Redis does): a newcomer goes elsewhere, a transport there is gone.
                logger.info("SFU unreachable: placing elsewhere", metadata: ["sfu": "\(node.id)", "meeting": "\(request.meetingID)"])
                if let transportID = request.transportID {
                    state.withLock { _ = $0.transports.removeValue(forKey: transportID) }
                    throw NegotiationError.unknownTransport(transportID)
                }
                guard unreachable.count < 8 else { throw NegotiationError.failed("no media server reachable") }
                unreachable.insert(node.id)
                continue
            }
            if status == 410, let transportID = request.transportID { throw NegotiationError.unknownTransport(transportID) }
            if status == 503, request.transportID == nil, ContinuousClock.now < deadline {
                // Full (its heartbeat was older than its last joins): the meeting goes on elsewhere.
                logger.info("SFU full: placing again", metadata: ["sfu": "\(node.id)", "meeting": "\(request.meetingID)"])
                excluded.insert(node.id)
                continue
            }
            guard status == 200 else {
                let reason = (try? JSONDecoder().decode([String: String].self, from: data))?["message"] ?? "status \(status)"
                throw NegotiationError.failed(reason)
            }
            let result = try JSONDecoder().decode(NegotiationResult.self, from: data)
            state.withLock {
                $0.transports[result.transportID] = Transport(meetingID: request.meetingID, participantID: request.participantID, node: node.id)
            }
            return result
        }
    }

    /// The SFU for a meeting's newcomer; when none can take it, tries again until `deadline` (SFUs
    /// starting, Redis refilling after it lost its data, or places freed by joins that were in
    /// flight: the SFUs that answered full are asked again) before giving up.
    private func place(_ meeting: String, excluding: inout Set<String>, unreachable: Set<String>, until deadline: ContinuousClock.Instant) async throws -> SFUNode {
        while true {
            do { return try await rooms.place(meeting: meeting, excluding: excluding, unreachable: unreachable) } catch {
                guard ContinuousClock.now < deadline, case .unavailable = error else { throw NegotiationError.failed("no media server: \(error)") }
                try await Task.sleep(for: .milliseconds(100))
                excluding = []
            }
        }
    }

    public func adoptTransport(meetingID: String, participantID: String, transportID: String) async {
        guard state.withLock({ $0.transports[transportID] == nil }),
              let id = try? await rooms.current(meeting: meetingID),
              let node = (try? await rooms.liveNodes())?.first(where: { $0.id == id }) else { return }
        state.withLock {
            $0.nodes[node.id] = node
            $0.transports[transportID] = Transport(meetingID: meetingID, participantID: participantID, node: node.id)
        }
    }

    public func closeTransport(meetingID: String, transportID: String, reason: String) {
        let node = state.withLock { $0.transports[transportID]?.node }
        fireAndForget(meetingID: meetingID, "close-transport", body: ["meetingID": meetingID, "transportID": transportID, "reason": reason], only: node)
    }

    public func closeParticipant(meetingID: String, participantID: String) {
        fireAndForget(meetingID: meetingID, "close-participant", body: ["meetingID": meetingID, "participantID": participantID])
    }

    public func setBlockedMedia(meetingID: String, participantID: String, blocked: Set<BlockedMedia>) {
        struct Body: Encodable { var meetingID: String; var participantID: String; var blocked: [BlockedMedia] }
        fireAndForget(meetingID: meetingID, "blocked-media", body: Body(meetingID: meetingID, participantID: participantID, blocked: Array(blocked)))
    }

    public func setViewport(meetingID: String, participantID: String, sizes: [String: VideoSize]) {
        struct Body: Encodable { var meetingID: String; var participantID: String; var sizes: [String: VideoSize] }
        fireAndForget(meetingID: meetingID, "viewport", body: Body(meetingID: meetingID, participantID: participantID, sizes: sizes))
    }

    public func selectVideos(meetingID: String, participantID: String, sources: [VideoSource]) {
        struct Body: Encodable { var meetingID: String; var participantID: String; var sources: [VideoSource] }
        fireAndForget(meetingID: meetingID, "select-videos", body: Body(meetingID: meetingID, participantID: participantID, sources: sources))
    }

    /// Asks every live SFU (a cascaded meeting is on several) and puts their answers together.
    public func meetingStatus(meetingID: String) async -> MeetingMediaStatus? {
        var routers: [RouterStatus] = []
        // Unreserved characters stay as they are (the SFU's router does not decode "%2D" into "-").
        let unreserved = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let path = "meetings/" + (meetingID.addingPercentEncoding(withAllowedCharacters: unreserved) ?? meetingID)
        for node in (try? await rooms.liveNodes()) ?? [] {
            guard let (data, code) = try? await call(node, path, body: nil as String?, method: "GET"), code == 200,
                  let status = try? JSONDecoder().decode(MeetingMediaStatus.self, from: data) else { continue }
            routers += status.routers
        }
        return routers.isEmpty ? nil : MeetingMediaStatus(routers: routers)
    }

    /// Every live SFU's status, summed.
    public func status() async -> SFUStatus {
        var total = SFUStatus(workers: 0, ports: [], meetings: 0, transports: 0, counters: [:])
        for node in (try? await rooms.liveNodes()) ?? [] {
            guard let (data, code) = try? await call(node, "status", body: nil as String?, method: "GET"), code == 200,
                  let status = try? JSONDecoder().decode(SFUStatus.self, from: data) else { continue }
            total.workers += status.workers
            total.ports += status.ports
            total.meetings += status.meetings
            total.transports += status.transports
            total.producers += status.producers
            total.pipes = (total.pipes ?? 0) + (status.pipes ?? 0)
            total.counters.merge(status.counters, uniquingKeysWith: +)
        }
        return total
    }

    /// A control call to the SFUs of a meeting (the participant it names may be on any of them),
    /// or to `only` that one.
    private func fireAndForget(meetingID: String, _ path: String, body: some Encodable & Sendable, only: String? = nil) {
        Task {
            var ids: Set<String>
            if let only {
                ids = [only]
            } else if let cascade = try? await rooms.cascade(of: meetingID) {
                ids = Set(cascade.members + (cascade.primary.map { [$0] } ?? []))
            } else {
                return
            }
            // Live ones only (a dead member stays in the set until the meeting ends), from the
            // last liveness check rather than a Redis round trip per call.
            var nodes = state.withLock { state in ids.filter { state.live.contains($0) }.compactMap { state.nodes[$0] } }
            if nodes.isEmpty { nodes = ((try? await rooms.liveNodes()) ?? []).filter { ids.contains($0.id) } }
            for node in nodes {
                do { _ = try await call(node, path, body: body) } catch {
                    logger.warning("SFU control call failed", metadata: ["sfu": "\(node.id)", "call": "\(path)", "error": "\(error)"])
                }
            }
        }
    }

    /// Errors that mean nothing listens at the SFU's control address.
    static let unreachable: Set<URLError.Code> = [.cannotConnectToHost, .networkConnectionLost, .cannotFindHost]

    private func call(_ node: SFUNode, _ path: String, body: (some Encodable)?, method: String = "POST") async throws -> (Data, Int) {
        guard let url = URL(string: "\(node.controlURL)/control/\(path)") else { throw NegotiationError.failed("bad control URL \(node.controlURL)") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        if let controlToken { request.setValue("Bearer \(controlToken)", forHTTPHeaderField: "Authorization") }
        if let body {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = try JSONEncoder().encode(body)
        }
        let (data, response) = try await session.data(for: request)
        return (data, (response as? HTTPURLResponse)?.statusCode ?? 0)
    }
}

/// An SFU event as SFU nodes publish it on the `sfu-events` channel.
public struct PublishedSFUEvent: Codable, Sendable {
    public var node: String
    public var event: SFUEvent
    public init(node: String, event: SFUEvent) { self.node = node; self.event = event }
}
