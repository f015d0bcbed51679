import Foundation
import ParleyMediaAPI
import ParleyRedis

/// Which SFU serves which meeting, kept in Redis so every signaling node agrees:
/// - SFUs heartbeat `sfu:{id}` (their `SFUNode` as JSON) with a short TTL: a dead SFU's key is
///   gone within `heartbeatTTL`, and the room service no longer sees it;
/// - `meeting:{id}:sfu` names a meeting's SFU, set atomically (first writer wins), replaced only
///   when the named SFU is dead;
/// - a new meeting goes to the least loaded of its next candidates on the consistent-hash ring of
///   live SFUs, never to one at capacity (bounded-load consistent hashing).
public final class RoomService: Sendable {
    let redis: RedisClient
    public static let heartbeatTTL = NodeRegistry.heartbeatTTL
    public static let heartbeatInterval = NodeRegistry.heartbeatInterval
    /// How many ring candidates compete for a new meeting.
    public static let candidates = 2

    /// How meetings over several SFUs are piped: nil chooses by size (`topology(forSFUs:)`).
    let topologySetting: CascadeTopology?
    /// Up to this many SFUs a meeting is a mesh (one hop); beyond, a star (n − 1 pipes, not n(n−1)/2).
    public static let largestMesh = 6

    public init(redis: RedisClient, topology: CascadeTopology? = nil) {
        self.redis = redis
        self.topologySetting = topology
    }

    public func topology(forSFUs count: Int) -> CascadeTopology {
        topologySetting ?? (count > Self.largestMesh ? .star : .mesh)
    }

    static func meetingKey(_ id: String) -> String { "meeting:\(id):sfu" }
    /// Every SFU carrying a meeting (the primary and those it spread to), a Redis set.
    static func membersKey(_ id: String) -> String { "meeting:\(id):sfus" }
    /// How a meeting's SFUs are piped ("mesh" or "star"), chosen by the room service.
    static func topologyKey(_ id: String) -> String { "meeting:\(id):topology" }
    static func loadKey(_ id: String) -> String { "sfu:\(id):meetings" }

    var nodes: NodeRegistry { NodeRegistry(redis: redis, kind: "sfu") }

    // MARK: SFU side

    /// One heartbeat: the node's state, alive for `heartbeatTTL`. When Redis did not know the node
    /// alive (its data was lost in a restart, or the node stalled), the meetings it carries are
    /// claimed back where nobody else took them, so their next joins still land here.
    public func heartbeat(_ node: SFUNode, meetings: [String] = []) async throws(RedisError) {
        let wasAlive = try await nodes.heartbeat(node.id, value: String(decoding: (try? JSONEncoder().encode(node)) ?? Data(), as: UTF8.self))
        guard !wasAlive, !meetings.isEmpty else { return }
        let claims = try await redis.pipeline(meetings.map { ["SET", Self.meetingKey($0), node.id, "NX"] })
        _ = try await redis.pipeline(meetings.map { ["SADD", Self.membersKey($0), node.id] })
        let claimed = claims.filter { $0 == .simpleString("OK") }.count
        if claimed > 0 { _ = try await redis.send(["INCRBY", Self.loadKey(node.id), String(claimed)]) }
    }

    /// A clean stop: gone at once rather than after the TTL.
    public func leave(_ id: String) async throws(RedisError) { try await nodes.leave(id) }

    // MARK: Signaling side

    /// Every SFU whose heartbeat is alive.
    public func liveNodes() async throws(RedisError) -> [SFUNode] {
        try await nodes.live().compactMap { try? JSONDecoder().decode(SFUNode.self, from: Data($0.value.utf8)) }
    }

    /// The cluster's epoch: a random value kept in Redis without expiry (`cluster:epoch`), made
    /// by whoever finds it missing. When it changes, Redis lost its data (restarted empty), and
    /// missing heartbeats prove nothing until the nodes have written theirs again.
    public func epoch() async throws(RedisError) -> String {
        let replies = try await redis.pipeline([["SET", "cluster:epoch", UUID().uuidString, "NX"], ["GET", "cluster:epoch"]])
        guard replies.count == 2, let epoch = replies[1].string else { throw .protocolError("no cluster epoch") }
        return epoch
    }

    /// The SFU of a meeting: the one already named if it is alive, else a new choice, agreed by
    /// every node through one atomic compare-and-set.
    public func assign(meeting: String, unreachable: Set<String> = []) async throws(RedisError) -> SFUNode {
        let live = try await liveNodes().filter { !unreachable.contains($0.id) }
        let byID = Dictionary(live.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let current = try await redis.get(Self.meetingKey(meeting))
        if let current, let node = byID[current] { return node }
        let choice = try await choose(for: meeting, among: live)
        // Replace only what we saw (nothing, or a dead SFU): a concurrent assigner's choice wins.
        let winner = try await redis.send(["EVAL", Self.compareAndSet, "1", Self.meetingKey(meeting), choice.id, current ?? ""]).string
        guard let winner else { throw .protocolError("room service: no SFU id from the assignment script") }
        if winner == choice.id {
            _ = try? await redis.pipeline([["INCR", Self.loadKey(choice.id)]] + (current.map { [["DECR", Self.loadKey($0)]] } ?? []))
            return choice
        }
        guard let node = byID[winner] else { return try await assign(meeting: meeting, unreachable: unreachable) }
        return node
    }

    /// The meeting ended: its SFUs carry one meeting less.
    public func release(meeting: String) async throws(RedisError) {
        let members = try await members(of: meeting)
        guard let current = try await redis.get(Self.meetingKey(meeting)) else { return }
        _ = try await redis.pipeline([["DEL", Self.meetingKey(meeting)], ["DEL", Self.membersKey(meeting)], ["DEL", Self.topologyKey(meeting)]]
                                     + Set(members + [current]).map { ["DECR", Self.loadKey($0)] })
    }

    /// The SFUs a meeting is on (alive or not).
    public func members(of meeting: String) async throws(RedisError) -> [String] {
        try await redis.send(["SMEMBERS", Self.membersKey(meeting)]).array?.compactMap(\.string) ?? []
    }

    /// A meeting's SFUs, its primary (the hub of a star) and its topology, in one round trip.
    public func cascade(of meeting: String) async throws(RedisError) -> (members: [String], primary: String?, topology: CascadeTopology) {
        let replies = try await redis.pipeline([["SMEMBERS", Self.membersKey(meeting)], ["GET", Self.meetingKey(meeting)], ["GET", Self.topologyKey(meeting)]])
        guard replies.count == 3 else { throw .protocolError("cascade of \(meeting): \(replies.count) replies") }
        let members = replies[0].array?.compactMap(\.string) ?? []
        return (members, replies[1].string, replies[2].string.flatMap(CascadeTopology.init(rawValue:)) ?? topology(forSFUs: members.count))
    }

    /// An SFU carries a meeting (it spread there, or took it back after Redis lost its data).
    public func join(meeting: String, node: String) async throws(RedisError) {
        let added = try await redis.send(["SADD", Self.membersKey(meeting), node]).int ?? 0
        if added > 0, try await redis.get(Self.meetingKey(meeting)) != node { _ = try await redis.send(["INCR", Self.loadKey(node)]) }
    }

    /// An SFU no longer carries a meeting (nobody of it is left there). A primary that leaves
    /// hands the meeting to a member still carrying it (the hub of a star moves with it).
    public func leave(meeting: String, node: String) async throws(RedisError) {
        let removed = try await redis.send(["SREM", Self.membersKey(meeting), node]).int ?? 0
        guard removed > 0 else { return }
        _ = try await redis.send(["DECR", Self.loadKey(node)])
        guard try await redis.get(Self.meetingKey(meeting)) == node else { return }
        let live = Set(try await liveNodes().map(\.id))
        guard let heir = try await members(of: meeting).sorted().first(where: live.contains) else { return }
        // The heir counts the meeting in its load already, as a member.
        _ = try await redis.send(["EVAL", Self.compareAndSet, "1", Self.meetingKey(meeting), heir, node])
    }

    /// A draining SFU gives up being a meeting's primary (the hub of a star) to a live member that
    /// takes newcomers, so the meeting's next joins and the star's pipes form around that one.
    /// Returns the new primary, or nil when it was not the primary or no member can take over.
    @discardableResult
    public func handOver(meeting: String, from node: String) async throws(RedisError) -> String? {
        guard try await redis.get(Self.meetingKey(meeting)) == node else { return nil }
        let live = try await liveNodes().filter { $0.id != node && $0.draining != true }
        let members = Set(try await members(of: meeting))
        guard let heir = Self.leastLoaded(live.filter { members.contains($0.id) }) else { return nil }
        let winner = try await redis.send(["EVAL", Self.compareAndSet, "1", Self.meetingKey(meeting), heir.id, node]).string
        // Both stay members, each counting the meeting once in its load, as before.
        return winner == heir.id ? heir.id : nil
    }

    /// Where a meeting's next participant goes (cascading): the least loaded live SFU of the
    /// meeting's set that is not full (the primary first when they are equal); when they are all
    /// full, another SFU joins the set (the least loaded of the ring's candidates), so the meeting
    /// grows past one SFU instead of refusing the newcomer. `excluding`: SFUs that answered full
    /// (their heartbeat is up to one interval old); `unreachable`: SFUs whose control API did not
    /// answer, taken as dead though their heartbeat has not expired yet (a dead primary is replaced).
    public func place(meeting: String, excluding: Set<String> = [], unreachable: Set<String> = []) async throws(RedisError) -> SFUNode {
        let live = try await liveNodes().filter { !unreachable.contains($0.id) }
        let liveIDs = Set(live.map(\.id))
        let known = try await members(of: meeting)
        let current = try await redis.get(Self.meetingKey(meeting))
        var primary: String
        if let current, liveIDs.contains(current) {
            primary = current
        } else if let survivor = Self.leastLoaded(live.filter { known.contains($0.id) }) {
            // The primary died: a live member of the set takes over, not a stranger to the meeting.
            let winner = try await redis.send(["EVAL", Self.compareAndSet, "1", Self.meetingKey(meeting), survivor.id, current ?? ""]).string
            primary = winner ?? survivor.id
        } else {
            primary = try await assign(meeting: meeting, unreachable: unreachable).id
        }
        if !known.contains(primary) { _ = try await redis.send(["SADD", Self.membersKey(meeting), primary]) }
        let members = Set(known + [primary])
        let open = live.filter { members.contains($0.id) && !$0.isFull && !excluding.contains($0.id) }
        if let best = open.min(by: { Self.rank($0, primary: primary) < Self.rank($1, primary: primary) }) { return best }
        let strangers = live.filter { !members.contains($0.id) && !excluding.contains($0.id) }
        guard strangers.contains(where: { !$0.isFull }) else {
            throw .unavailable("every SFU is at capacity (\(live.count) alive, \(members.count) carrying the meeting)")
        }
        let spill = try await choose(for: meeting, among: strangers)
        try await join(meeting: meeting, node: spill.id)
        _ = try await redis.send(["SET", Self.topologyKey(meeting), topology(forSFUs: members.count + 1).rawValue])
        return spill
    }

    /// The one of `nodes` that takes a meeting over: the least loaded (then by id).
    private static func leastLoaded(_ nodes: [SFUNode]) -> SFUNode? {
        nodes.min { rank($0, primary: "") < rank($1, primary: "") }
    }

    private static func rank(_ node: SFUNode, primary: String) -> (Double, Int, String) {
        (node.load, node.id == primary ? 0 : 1, node.id)
    }

    /// The SFU currently named for a meeting (alive or not).
    public func current(meeting: String) async throws(RedisError) -> String? { try await redis.get(Self.meetingKey(meeting)) }

    private func choose(for meeting: String, among live: [SFUNode]) async throws(RedisError) -> SFUNode {
        let open = live.filter { !$0.isFull }
        guard !open.isEmpty else {
            throw .unavailable(live.isEmpty ? "no SFU is alive" : "every SFU is at capacity (\(live.count) alive)")
        }
        let ring = HashRing(nodes: open.map(\.id))
        let candidates = ring.candidates(for: meeting, count: Self.candidates)
        let loads = try await redis.send(["MGET"] + candidates.map(Self.loadKey)).array?.map { $0.int ?? 0 } ?? []
        let byID = Dictionary(open.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        // Least loaded first: assigned meetings relative to capacity, then live participants.
        let ranked = zip(candidates, loads + Array(repeating: 0, count: max(0, candidates.count - loads.count))).compactMap { id, meetings in
            byID[id].map { (node: $0, score: Double(meetings) / Double(max(1, $0.capacity)), participants: $0.participants) }
        }.sorted { ($0.score, $0.participants, $0.node.id) < ($1.score, $1.participants, $1.node.id) }
        return ranked[0].node
    }

    /// KEYS[1] meeting key, ARGV[1] our choice, ARGV[2] what we saw ("" for nothing).
    static let compareAndSet = """
        local current = redis.call('GET', KEYS[1])
        if current == false or current == ARGV[2] then
          redis.call('SET', KEYS[1], ARGV[1])
          return ARGV[1]
        end
        return current
        """
}
