import ParleyRedis

/// Nodes of one kind (SFUs, signaling nodes) that say they are alive: each writes `{kind}:{id}`
/// with a short TTL every `heartbeatInterval` and keeps its id in the set `{kind}s`, so a node that
/// dies is gone from `live()` within `heartbeatTTL`.
struct NodeRegistry: Sendable {
    let redis: RedisClient
    let kind: String
    static let heartbeatTTL: Duration = .milliseconds(1000)
    static let heartbeatInterval: Duration = .milliseconds(300)

    var setKey: String { kind + "s" }
    func key(_ id: String) -> String { "\(kind):\(id)" }

    /// One heartbeat: `value` (what the node says of itself) alive for `heartbeatTTL`. Returns
    /// whether the node was known alive before it (false at start, after a stall, or when Redis
    /// lost its data).
    @discardableResult
    func heartbeat(_ id: String, value: String) async throws(RedisError) -> Bool {
        let ttl = Self.heartbeatTTL.components.seconds * 1000 + Self.heartbeatTTL.components.attoseconds / 1_000_000_000_000_000
        let replies = try await redis.pipeline([["SET", key(id), value, "PX", String(ttl), "GET"], ["SADD", setKey, id]])
        if case .error(let message) = replies[0] { throw .server(message) }
        return !replies[0].isNull
    }

    /// A clean stop: gone at once rather than after the TTL.
    func leave(_ id: String) async throws(RedisError) {
        _ = try await redis.pipeline([["DEL", key(id)], ["SREM", setKey, id]])
    }

    /// Every node whose heartbeat is alive, with what it said; forgets the dead ones' ids.
    func live() async throws(RedisError) -> [(id: String, value: String)] {
        let ids = try await redis.send(["SMEMBERS", setKey]).array?.compactMap(\.string).sorted() ?? []
        guard !ids.isEmpty else { return [] }
        let values = try await redis.send(["MGET"] + ids.map(key)).array ?? []
        var live: [(String, String)] = []
        var dead: [String] = []
        for (id, value) in zip(ids, values) {
            if let value = value.string { live.append((id, value)) } else { dead.append(id) }
        }
        if !dead.isEmpty { _ = try? await redis.send(["SREM", setKey] + dead) }
        return live
    }
}
