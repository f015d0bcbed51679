import Foundation
import ParleyRedis

/// A real redis-server on a free loopback port, started and stopped by the test.
public final class RedisServer {
    public let port: Int
    let extraArguments: [String]
    private var process: Process?

    public init(extraArguments: [String] = []) throws {
        port = Self.freePort()
        self.extraArguments = extraArguments
        try start()
    }

    deinit { stop() }

    public static func freePort() -> Int {
        let (fd, port) = listeningSocket(listen: false)
        close(fd)
        return port
    }

    /// A TCP socket bound to a free loopback port (listening if asked, never accepting): the
    /// caller closes it.
    public static func listeningSocket(listen shouldListen: Bool = true) -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = bind(fd, $0, length) }
        }
        withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) }
        }
        if shouldListen { listen(fd, 8) }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    public func start() throws {
        let paths = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        guard let binary = paths.first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw RedisError.configuration("redis-server is not installed: `make test-deps` installs it (Debian package redis-server)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"] + extraArguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        for _ in 0..<100 {
            if canConnect() { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw RedisError.unavailable("redis-server did not start on port \(port)")
    }

    public func stop() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    private func canConnect() -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    public var configuration: RedisConfiguration { RedisConfiguration(host: "127.0.0.1", port: port) }
}

