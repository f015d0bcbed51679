import Foundation
import Logging
import ParleyControl
import ParleyRedis

/// Created meetings' records in Redis (`meeting:{id}:record`, JSON), so a meeting, its password
/// hash, hosts, lock, removals and reports survive any signaling process.
public final class RedisMeetingRecordStore: MeetingRecordStore {
    let redis: RedisClient
    let logger: Logger
    /// Tells this process's own writes from others' on the `meeting-records` channel.
    let origin = UUID().uuidString
    static let channel = "meeting-records"

    public init(redis: RedisClient, logger: Logger) {
        self.redis = redis
        self.logger = logger
    }

    static func key(_ id: String) -> String { "meeting:\(id):record" }

    /// Meeting ids other processes wrote, from the `meeting-records` channel (empty if Redis
    /// cannot be subscribed to; the subscriber reconnects by itself after that).
    public func changes() async -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        do {
            let subscriber = try await RedisSubscriber.connect(redis.configuration)
            try await subscriber.subscribe([Self.channel])
            let origin = self.origin
            Task {
                for await event in subscriber.events {
                    guard case .message(_, let payload) = event else { continue }
                    let parts = payload.split(separator: " ", maxSplits: 1)
                    if parts.count == 2, parts[0] != origin { continuation.yield(String(parts[1])) }
                }
                continuation.finish()
            }
        } catch {
            logger.error("cannot follow meeting changes from other nodes", metadata: ["error": "\(error)"])
            continuation.finish()
        }
        return stream
    }

    public func load(_ id: String) async -> MeetingRecord? {
        do {
            guard let json = try await redis.get(Self.key(id)) else { return nil }
            return try JSONDecoder().decode(MeetingRecord.self, from: Data(json.utf8))
        } catch {
            logger.error("could not read a meeting from Redis", metadata: ["meeting": "\(id)", "error": "\(error)"])
            return nil
        }
    }

    public func save(_ id: String, _ record: MeetingRecord) async {
        guard let data = try? JSONEncoder().encode(record) else { return }
        // A write that fails while Redis restarts is tried again for a while rather than lost.
        for attempt in 0..<20 {
            do {
                try await redis.set(Self.key(id), String(decoding: data, as: UTF8.self))
                _ = try? await redis.publish(Self.channel, "\(origin) \(id)")
                return
            } catch {
                if attempt == 19 { logger.error("could not save a meeting to Redis", metadata: ["meeting": "\(id)", "error": "\(error)"]) }
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
    }
}
