import Foundation

/// Where Redis is and how to reach it: `redis://[[user]:password@]host[:port][/db]`, or `rediss://`
/// for TLS.
public struct RedisConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    public var database: Int
    public var tls: Bool
    /// Path of a CA certificate file to trust for TLS (default: the system's trust roots).
    public var caCertificatePath: String?
    public var connectTimeout: Duration = .seconds(3)
    public var commandTimeout: Duration = .seconds(5)

    public init(host: String = "127.0.0.1", port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0,
                tls: Bool = false) {
        self.host = host; self.port = port; self.username = username; self.password = password; self.database = database; self.tls = tls
    }

    public init(url: String) throws(RedisError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme, ["redis", "rediss"].contains(scheme),
              let host = components.host, !host.isEmpty else {
            throw .configuration("Redis URL must look like redis://[:password@]host[:port][/db] or rediss://…, got \(url)")
        }
        var database = 0
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if !path.isEmpty {
            guard let number = Int(path), number >= 0 else { throw .configuration("Redis database must be a number, got \(path)") }
            database = number
        }
        self.init(host: host, port: components.port ?? 6379, username: components.user.flatMap { $0.isEmpty ? nil : $0 },
                  password: components.password?.removingPercentEncoding, database: database, tls: scheme == "rediss")
    }
}

/// What went wrong talking to Redis, said plainly.
public enum RedisError: Error, Equatable, Sendable, CustomStringConvertible {
    case configuration(String)
    case unavailable(String)
    case timeout(String)
    case server(String)
    case closed
    case protocolError(String)

    public var description: String {
        switch self {
        case .configuration(let reason): return reason
        case .unavailable(let reason): return "Redis unavailable: \(reason)"
        case .timeout(let what): return "Redis did not answer in time: \(what)"
        case .server(let message): return "Redis refused: \(message)"
        case .closed: return "the Redis connection closed"
        case .protocolError(let reason): return reason
        }
    }
}
