import Foundation
import Logging
import ParleyControl
import ParleyRedis

/// WHIP/WHEP sessions in Redis (`media-session:{id}` → JSON, `media-session-transport:{transport}`
/// → id), so a `DELETE` ends a session whichever signaling node it reaches.
public final class RedisMediaSessionStore: MediaSessionStore {
    let redis: RedisClient
    let logger: Logger
    /// Sessions outlive their last use by this long at most (a publisher that vanished).
    static let expirySeconds = 86_400

    public init(redis: RedisClient, logger: Logger) {
        self.redis = redis
        self.logger = logger
    }

    static func key(_ id: String) -> String { "media-session:\(id)" }
    static func transportKey(_ transportID: String) -> String { "media-session-transport:\(transportID)" }

    public func save(_ id: String, _ session: MediaSession) async {
        guard let json = try? JSONEncoder().encode(session) else { return }
        do {
            _ = try await redis.pipeline([["SET", Self.key(id), String(decoding: json, as: UTF8.self), "EX", String(Self.expirySeconds)],
                                          ["SET", Self.transportKey(session.transportID), id, "EX", String(Self.expirySeconds)]])
        } catch {
            logger.warning("could not share a WHIP/WHEP session; only this node can end it", metadata: ["error": "\(error)"])
        }
    }

    public func load(_ id: String) async -> MediaSession? {
        guard let json = try? await redis.get(Self.key(id)) else { return nil }
        return try? JSONDecoder().decode(MediaSession.self, from: Data(json.utf8))
    }

    public func delete(_ id: String, transportID: String) async {
        _ = try? await redis.pipeline([["DEL", Self.key(id)], ["DEL", Self.transportKey(transportID)]])
    }

    public func session(forTransport transportID: String) async -> String? {
        try? await redis.get(Self.transportKey(transportID))
    }
}
