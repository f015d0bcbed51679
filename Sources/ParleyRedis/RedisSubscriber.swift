import NIOCore
import Synchronization

/// The dedicated pub/sub connection: SUBSCRIBE/UNSUBSCRIBE, messages as an async stream, and,
/// when the connection breaks, a new one with every channel subscribed again (backoff as the
/// client's). `reconnected` events tell the consumer that messages may have been missed.
public final class RedisSubscriber: Sendable {
    public enum Event: Sendable, Equatable {
        case message(channel: String, payload: String)
        case reconnected
    }

    public let configuration: RedisConfiguration
    public let events: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation
    private struct State {
        var connection: RedisConnection?
        var channels: Set<String> = []
        var stopped = false
        var reconnecting = false
    }
    private let state = Mutex(State())

    private init(configuration: RedisConfiguration) {
        self.configuration = configuration
        (events, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(100_000))
    }

    public static func connect(_ configuration: RedisConfiguration) async throws(RedisError) -> RedisSubscriber {
        let subscriber = RedisSubscriber(configuration: configuration)
        let connection = try await subscriber.open()
        subscriber.state.withLock { $0.connection = connection }
        return subscriber
    }

    private func open() async throws(RedisError) -> RedisConnection {
        let continuation = self.continuation
        return try await RedisConnection.connect(configuration, onPush: { value in
            guard let parts = value.array, parts.count >= 3, let kind = parts[0].string else { return }
            // message: [message, channel, payload]; pmessage: [pmessage, pattern, channel, payload]
            if kind == "message", let channel = parts[1].string, let payload = parts[2].string {
                continuation.yield(.message(channel: channel, payload: payload))
            } else if kind == "pmessage", parts.count >= 4, let channel = parts[2].string, let payload = parts[3].string {
                continuation.yield(.message(channel: channel, payload: payload))
            }
        }, onClose: { [weak self] in
            self?.connectionClosed()
        })
    }

    public func subscribe(_ channels: [String]) async throws(RedisError) {
        guard !channels.isEmpty else { return }
        let connection = state.withLock { state -> RedisConnection? in
            state.channels.formUnion(channels)
            return state.connection
        }
        // While reconnecting, the new connection subscribes everything in `channels`.
        guard let connection else { return }
        _ = try await connection.pipeline([["SUBSCRIBE"] + channels])
    }

    public func unsubscribe(_ channels: [String]) async throws(RedisError) {
        guard !channels.isEmpty else { return }
        let connection = state.withLock { state -> RedisConnection? in
            state.channels.subtract(channels)
            return state.connection
        }
        guard let connection else { return }
        _ = try await connection.pipeline([["UNSUBSCRIBE"] + channels])
    }

    public func close() {
        let connection = state.withLock { state -> RedisConnection? in
            state.stopped = true
            defer { state.connection = nil }
            return state.connection
        }
        connection?.close()
        continuation.finish()
    }

    private func connectionClosed() {
        let start = state.withLock { state -> Bool in
            state.connection = nil
            guard !state.stopped, !state.reconnecting else { return false }
            state.reconnecting = true
            return true
        }
        guard start else { return }
        Task { await self.reconnect() }
    }

    private func reconnect() async {
        var backoff = RedisClient.initialBackoff
        while !state.withLock({ $0.stopped }) {
            try? await Task.sleep(for: backoff)
            guard let connection = try? await open() else {
                backoff = min(RedisClient.maximumBackoff, backoff * 2)
                continue
            }
            let channels = state.withLock { state -> [String] in
                state.connection = connection
                state.reconnecting = false
                return Array(state.channels)
            }
            if !channels.isEmpty { _ = try? await connection.pipeline([["SUBSCRIBE"] + channels]) }
            continuation.yield(.reconnected)
            return
        }
    }
}
