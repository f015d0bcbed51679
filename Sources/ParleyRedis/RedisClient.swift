import NIOCore
import NIOPosix
import Synchronization

/// A Redis client that keeps one pipelined connection and makes a new one when it breaks
/// (a Redis restart, a network blip), waiting longer between failed attempts (100 ms doubling up
/// to 2 s) so a Redis that is down is not hammered. `connect` fails at once, with the reason,
/// when Redis cannot be reached at start.
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    private struct State {
        var connection: RedisConnection?
        var connecting: Task<RedisConnection, any Error>?
        var failures = 0
        var nextAttempt = ContinuousClock.now
    }
    private let state = Mutex(State())
    static let initialBackoff: Duration = .milliseconds(100)
    static let maximumBackoff: Duration = .seconds(2)

    private init(configuration: RedisConfiguration) { self.configuration = configuration }

    public static func connect(_ configuration: RedisConfiguration) async throws(RedisError) -> RedisClient {
        let client = RedisClient(configuration: configuration)
        let connection = try await RedisConnection.connect(configuration)
        client.state.withLock { $0.connection = connection }
        return client
    }

    /// One command (reconnecting first if the connection broke).
    public func send(_ arguments: [String]) async throws(RedisError) -> RESPValue {
        try await withConnection { connection throws(RedisError) in try await connection.send(arguments) }
    }

    /// Commands in one round trip; their replies in order (error replies included as values).
    public func pipeline(_ commands: [[String]]) async throws(RedisError) -> [RESPValue] {
        try await withConnection { connection throws(RedisError) in try await connection.pipeline(commands) }
    }

    public func close() {
        state.withLock { state in
            state.connection?.close()
            state.connection = nil
            state.connecting?.cancel()
        }
    }

    private func withConnection<T>(_ body: (RedisConnection) async throws(RedisError) -> T) async throws(RedisError) -> T {
        let connection = try await liveConnection()
        do {
            return try await body(connection)
        } catch {
            if case .server = error { throw error }
            // The connection is suspect (closed, timed out): the next command makes a new one.
            drop(connection)
            throw error
        }
    }

    private func drop(_ connection: RedisConnection) {
        connection.close()
        state.withLock { if $0.connection === connection { $0.connection = nil } }
    }

    private func liveConnection() async throws(RedisError) -> RedisConnection {
        enum Step { case use(RedisConnection), wait(Task<RedisConnection, any Error>), refuse(Duration) }
        let configuration = self.configuration
        let step = state.withLock { state -> Step in
            if let connection = state.connection, connection.isActive { return .use(connection) }
            if let connecting = state.connecting { return .wait(connecting) }
            let now = ContinuousClock.now
            guard now >= state.nextAttempt else { return .refuse(state.nextAttempt - now) }
            let task = Task { () throws -> RedisConnection in try await RedisConnection.connect(configuration) }
            state.connecting = task
            return .wait(task)
        }
        switch step {
        case .use(let connection):
            return connection
        case .refuse(let wait):
            throw .unavailable("reconnecting to \(configuration.host):\(configuration.port); next attempt in \(wait)")
        case .wait(let task):
            do {
                let connection = try await task.value
                state.withLock { state in
                    state.connection = connection
                    state.connecting = nil
                    state.failures = 0
                }
                return connection
            } catch {
                state.withLock { state in
                    state.connecting = nil
                    state.failures += 1
                    let backoff = min(Self.maximumBackoff, Self.initialBackoff * (1 << min(state.failures - 1, 5)))
                    state.nextAttempt = ContinuousClock.now + backoff
                }
                throw (error as? RedisError) ?? .unavailable("\(error)")
            }
        }
    }
}

extension RedisClient {
    public func get(_ key: String) async throws(RedisError) -> String? { try await send(["GET", key]).string }

    public func set(_ key: String, _ value: String) async throws(RedisError) { _ = try await send(["SET", key, value]) }

    /// SET NX: true if this call created the key (the atomic "first one wins").
    public func setIfAbsent(_ key: String, _ value: String, expiresInSeconds: Int? = nil) async throws(RedisError) -> Bool {
        var command = ["SET", key, value, "NX"]
        if let expiresInSeconds { command += ["EX", String(expiresInSeconds)] }
        return try await send(command) == .simpleString("OK")
    }

    public func publish(_ channel: String, _ message: String) async throws(RedisError) -> Int {
        try await send(["PUBLISH", channel, message]).int ?? 0
    }
}
