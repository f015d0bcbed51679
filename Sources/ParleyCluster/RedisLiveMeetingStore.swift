import Foundation
import Logging
import ParleyControl
import ParleyRedis
import Synchronization

/// Meetings' live state in Redis, shared by every signaling node:
/// - `meeting:{id}:participants` and `meeting:{id}:waiting`: hashes of participant id → entry (JSON);
/// - admission is one Lua script that checks the record's lock and removals and the capacity and
///   writes the entry, so two nodes cannot both admit past a rule;
/// - every change and message goes out on the channel `meeting:{id}` (after the change is stored),
///   and each node subscribes to the meetings it holds connections for;
/// - signaling nodes heartbeat `signal:{id}` (set `signals`), so the others see a dead one within 1 s.
public final class RedisLiveMeetingStore: LiveMeetingStore {
    public let nodeID: String
    public var isShared: Bool { true }
    let redis: RedisClient
    let subscriber: RedisSubscriber
    let registry: NodeRegistry
    let logger: Logger
    private let stream: AsyncStream<LiveStoreEvent>
    private let writes: AsyncStream<[[String]]>.Continuation
    private let heartbeats = Mutex<Task<Void, Never>?>(nil)
    /// How long a meeting's live keys outlive their last write (a meeting whose every node died).
    static let expirySeconds = 86_400

    public init(redis: RedisClient, configuration: RedisConfiguration, nodeID: String, logger: Logger) async throws(RedisError) {
        self.nodeID = nodeID
        self.redis = redis
        self.logger = logger
        registry = NodeRegistry(redis: redis, kind: "signal")
        subscriber = try await RedisSubscriber.connect(configuration)
        try await registry.heartbeat(nodeID, value: nodeID)

        let (events, continuation) = AsyncStream<LiveStoreEvent>.makeStream()
        stream = events
        let (queue, writer) = AsyncStream<[[String]]>.makeStream()
        writes = writer
        Task { [subscriber, nodeID] in
            let decoder = JSONDecoder()
            for await event in subscriber.events {
                switch event {
                case .reconnected:
                    continuation.yield(.resynchronize)
                case .message(_, let payload):
                    guard let decoded = try? decoder.decode(MeetingEvent.self, from: Data(payload.utf8)), decoded.origin != nodeID else { continue }
                    continuation.yield(.meeting(decoded))
                }
            }
            continuation.finish()
        }
        // One writer: a node's events reach Redis, and the other nodes, in the order it made them.
        Task { [redis, logger] in
            for await commands in queue {
                for attempt in 0..<20 {
                    do {
                        _ = try await redis.pipeline(commands)
                        break
                    } catch {
                        if attempt == 19 { logger.error("could not publish a meeting event to Redis", metadata: ["error": "\(error)"]) }
                        try? await Task.sleep(for: .milliseconds(250))
                    }
                }
            }
        }
        let beating = Task { [registry, logger] in
            while !Task.isCancelled {
                try? await Task.sleep(for: NodeRegistry.heartbeatInterval)
                guard !Task.isCancelled else { break }
                do { try await registry.heartbeat(nodeID, value: nodeID) } catch {
                    logger.warning("signaling heartbeat failed", metadata: ["error": "\(error)"])
                }
            }
        }
        heartbeats.withLock { $0 = beating }
    }

    static func participantsKey(_ meeting: String) -> String { "meeting:\(meeting):participants" }
    static func waitingKey(_ meeting: String) -> String { "meeting:\(meeting):waiting" }
    static func channel(_ meeting: String) -> String { "meeting:\(meeting)" }

    public func events() async -> AsyncStream<LiveStoreEvent> { stream }

    public func follow(_ meeting: String) async {
        do { try await subscriber.subscribe([Self.channel(meeting)]) } catch {
            logger.warning("cannot follow a meeting's events", metadata: ["meeting": "\(meeting)", "error": "\(error)"])
        }
    }

    public func unfollow(_ meeting: String) async {
        try? await subscriber.unsubscribe([Self.channel(meeting)])
    }

    public func liveNodes() async -> Set<String>? {
        guard let live = try? await registry.live() else { return nil }
        return Set(live.map(\.id))
    }

    /// A clean stop: the other nodes see this one gone at once.
    public func leave() async {
        stop()
        try? await registry.leave(nodeID)
    }

    /// Stops heartbeating, receiving events and publishing (to the others, this node is dead
    /// after the TTL); its tasks end.
    public func stop() {
        heartbeats.withLock { $0?.cancel() }
        subscriber.close()
        writes.finish()
    }

    public func snapshot(_ meeting: String) async -> (participants: [LiveParticipant], waiting: [LiveWaiting])? {
        guard let replies = try? await redis.pipeline([["HVALS", Self.participantsKey(meeting)], ["HVALS", Self.waitingKey(meeting)]]),
              replies.count == 2 else { return nil }
        let decoder = JSONDecoder()
        let participants = (replies[0].array ?? []).compactMap { $0.string.flatMap { try? decoder.decode(LiveParticipant.self, from: Data($0.utf8)) } }
        let waiting = (replies[1].array ?? []).compactMap { $0.string.flatMap { try? decoder.decode(LiveWaiting.self, from: Data($0.utf8)) } }
        return (participants, waiting)
    }

    public func admit(_ request: AdmissionRequest) async throws(SignalingError) -> AdmissionOutcome {
        let encoder = JSONEncoder()
        let entry: (id: String, json: Data?, kind: String)
        if let participant = request.participant {
            entry = (participant.info.id, try? encoder.encode(participant), "participant")
        } else if let waiting = request.waiting {
            entry = (waiting.entry.id, try? encoder.encode(waiting), "waiting")
        } else {
            throw .badRequest("nothing to admit")
        }
        guard let json = entry.json, let keys = try? encoder.encode(request.credentialKeys.sorted()) else { throw .badRequest("unencodable entry") }
        let command = ["EVAL", Self.admission, "3", RedisMeetingRecordStore.key(request.meeting), Self.participantsKey(request.meeting),
                       Self.waitingKey(request.meeting), request.resume ?? "", request.subject, String(decoding: keys, as: UTF8.self),
                       request.moderator ? "1" : "0", String(request.maximumParticipants), entry.kind, entry.id,
                       String(decoding: json, as: UTF8.self), String(Self.expirySeconds)]
        var reply: RESPValue?
        // Redis restarting (the client waits between reconnection attempts): a joiner waits a
        // little rather than being turned away.
        let deadline = ContinuousClock.now + .seconds(3)
        while reply == nil {
            do {
                reply = try await redis.send(command)
            } catch {
                if case .server = error { throw .forbidden("the meeting's state store refused the admission (\(error))") }
                guard ContinuousClock.now < deadline else { throw .forbidden("the meeting's state is unavailable (\(error)); try again") }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        guard let reply else { throw .forbidden("the meeting's state is unavailable; try again") }
        guard let parts = reply.array, parts.count == 2, let verdict = parts[0].string else {
            throw .forbidden("the meeting's state store answered \(reply)")
        }
        switch (verdict, parts[1].string ?? "") {
        case ("admitted", _): return .admitted
        case ("resumed", let existing):
            guard let participant = try? JSONDecoder().decode(LiveParticipant.self, from: Data(existing.utf8)) else {
                throw .forbidden("the participant to resume is unreadable")
            }
            return .resumed(participant)
        case ("refused", let reason):
            guard let refusal = AdmissionRules.Refusal(rawValue: reason) else { throw .forbidden("the meeting's state store refused: \(reason)") }
            throw refusal.error
        default: throw .forbidden("the meeting's state store answered \(verdict)")
        }
    }

    public func publish(_ event: MeetingEvent) {
        guard let data = try? JSONEncoder().encode(event) else { return }
        let meeting = event.meeting
        var commands: [[String]] = []
        switch event.change {
        case .participant(let entry)?:
            guard let json = try? JSONEncoder().encode(entry) else { return }
            commands = [["HSET", Self.participantsKey(meeting), entry.info.id, String(decoding: json, as: UTF8.self)],
                        ["EXPIRE", Self.participantsKey(meeting), String(Self.expirySeconds)]]
        case .participantLeft(let id, let node)?:
            commands = [["EVAL", Self.removal, "1", Self.participantsKey(meeting), id, node]]
        case .waiting(let entry)?:
            guard let json = try? JSONEncoder().encode(entry) else { return }
            commands = [["HSET", Self.waitingKey(meeting), entry.entry.id, String(decoding: json, as: UTF8.self)],
                        ["EXPIRE", Self.waitingKey(meeting), String(Self.expirySeconds)]]
        case .waitingLeft(let id)?:
            commands = [["HDEL", Self.waitingKey(meeting), id]]
        case .admitted?, nil:
            break
        }
        writes.yield(commands + [["PUBLISH", Self.channel(meeting), String(decoding: data, as: UTF8.self)]])
    }

    public func removeOrphan(meeting: String, participantID: String, node: String) {
        writes.yield([["EVAL", Self.removal, "2", Self.participantsKey(meeting), Self.waitingKey(meeting), participantID, node]])
    }

    public func adopt(meeting: String, participantID: String, from node: String) async -> Bool {
        let claim = "meeting:\(meeting):adopted:\(participantID):\(node)"
        return (try? await redis.setIfAbsent(claim, nodeID, expiresInSeconds: 3600)) ?? false
    }

    /// KEYS: record, participants, waiting. ARGV: resume id or "", subject, credential keys (JSON
    /// array), moderator "1"/"0", capacity, "participant" or "waiting", participant id, entry JSON,
    /// expiry seconds. `AdmissionRules.decide` over Redis keys: a resume by the same subject wins
    /// over every rule (they are in already); otherwise removals and the lock (for non-moderators),
    /// then capacity. The request's own `locked` and `removedKeys` are not used: the record here
    /// is the one every node writes through.
    static let admission = """
        if ARGV[1] ~= '' then
          local existing = redis.call('HGET', KEYS[2], ARGV[1])
          if existing then
            local ok, entry = pcall(cjson.decode, existing)
            if ok and entry.subject == ARGV[2] then return {'resumed', existing} end
          end
        end
        if ARGV[4] ~= '1' then
          local record = redis.call('GET', KEYS[1])
          if record then
            local decoded = cjson.decode(record)
            if type(decoded.removed) == 'table' then
              for _, key in ipairs(cjson.decode(ARGV[3])) do
                if decoded.removed[key] ~= nil then return {'refused', 'removed'} end
              end
            end
            if decoded.locked == true then return {'refused', 'locked'} end
          end
        end
        if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[5]) then return {'refused', 'meeting-full'} end
        local target = KEYS[2]
        if ARGV[6] == 'waiting' then target = KEYS[3] end
        redis.call('HSET', target, ARGV[7], ARGV[8])
        redis.call('EXPIRE', target, ARGV[9])
        return {'admitted', ''}
        """

    /// KEYS: hashes to remove from. ARGV: participant id, the node it should still be on (a
    /// participant that reconnected through another node meanwhile stays).
    static let removal = """
        local removed = 0
        for _, key in ipairs(KEYS) do
          local existing = redis.call('HGET', key, ARGV[1])
          if existing then
            local ok, entry = pcall(cjson.decode, existing)
            if not ok or entry.node == ARGV[2] then removed = removed + redis.call('HDEL', key, ARGV[1]) end
          end
        end
        return removed
        """
}
