import Foundation
import NIOCore
import Testing
@testable import ParleyRedis
import ParleyTestSupport

// Each test waits on a real redis-server: a hang fails the test rather than stalling `make test`.
@Suite(.serialized, .timeLimit(.minutes(3))) struct RedisClientTests {
    @Test func commandsRoundTripAndErrorRepliesAreErrors() async throws {
        let server = try RedisServer()
        let client = try await RedisClient.connect(server.configuration)
        try await client.set("greeting", "héllo wörld")
        #expect(try await client.get("greeting") == "héllo wörld")
        #expect(try await client.get("missing") == nil)
        #expect(try await client.send(["INCRBY", "counter", "41"]).int == 41)
        #expect(try await client.setIfAbsent("owner", "a") == true)
        #expect(try await client.setIfAbsent("owner", "b") == false)
        #expect(try await client.get("owner") == "a")
        await #expect(throws: RedisError.self) { try await client.send(["INCR", "greeting"]) }
        // The connection survives an error reply.
        #expect(try await client.send(["PING"]) == .simpleString("PONG"))
        client.close()
    }

    @Test func pipelinedCommandsComeBackInOrder() async throws {
        let server = try RedisServer()
        let client = try await RedisClient.connect(server.configuration)
        let replies = try await client.pipeline((0..<1000).map { _ in ["INCR", "n"] })
        #expect(replies.map(\.int) == (1...1000).map { Optional($0) })
        // Concurrent callers on one connection each get their own reply.
        try await withThrowingTaskGroup(of: (Int, String?).self) { group in
            for index in 0..<200 {
                group.addTask {
                    try await client.set("k\(index)", "v\(index)")
                    return (index, try await client.get("k\(index)"))
                }
            }
            for try await (index, value) in group { #expect(value == "v\(index)") }
        }
        client.close()
    }

    @Test func publishedMessagesReachTheSubscriberInOrder() async throws {
        let server = try RedisServer()
        let client = try await RedisClient.connect(server.configuration)
        let subscriber = try await RedisSubscriber.connect(server.configuration)
        try await subscriber.subscribe(["meeting:m1", "meeting:m2"])
        for index in 0..<100 { _ = try await client.publish(index.isMultiple(of: 2) ? "meeting:m1" : "meeting:m2", "event \(index)") }
        var received: [RedisSubscriber.Event] = []
        for await event in subscriber.events {
            received.append(event)
            if received.count == 100 { break }
        }
        #expect(received == (0..<100).map { .message(channel: $0.isMultiple(of: 2) ? "meeting:m1" : "meeting:m2", payload: "event \($0)") })
        try await subscriber.unsubscribe(["meeting:m2"])
        #expect(try await client.publish("meeting:m2", "nobody") == 0)
        subscriber.close()
        client.close()
    }

    @Test func clientAndSubscriberComeBackAfterARedisRestart() async throws {
        let server = try RedisServer()
        let client = try await RedisClient.connect(server.configuration)
        let subscriber = try await RedisSubscriber.connect(server.configuration)
        try await subscriber.subscribe(["meeting:x"])
        try await client.set("before", "1")
        server.stop()
        await #expect(throws: RedisError.self) { try await client.send(["PING"]) }
        try server.start()
        // Within a few backoff periods the client reconnects by itself on the next commands.
        var pong: RESPValue?
        for _ in 0..<60 where pong == nil {
            pong = try? await client.send(["PING"])
            if pong == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(pong == .simpleString("PONG"))
        // The subscriber says it reconnected, then receives on the channels it had.
        var iterator = subscriber.events.makeAsyncIterator()
        #expect(await iterator.next() == .reconnected)
        _ = try await client.publish("meeting:x", "after the restart")
        #expect(await iterator.next() == .message(channel: "meeting:x", payload: "after the restart"))
        subscriber.close()
        client.close()
    }

    @Test func passwordsAreSentAndWrongOnesAreClearErrors() async throws {
        let server = try RedisServer(extraArguments: ["--requirepass", "s3cret-redis"])
        var configuration = server.configuration
        configuration.password = "s3cret-redis"
        let client = try await RedisClient.connect(configuration)
        #expect(try await client.send(["PING"]) == .simpleString("PONG"))
        client.close()
        configuration.password = "wrong"
        await #expect(throws: RedisError.self) { try await RedisClient.connect(configuration) }
        configuration.password = nil
        let anonymous = try await RedisClient.connect(configuration)
        do {
            _ = try await anonymous.send(["GET", "x"])
            Issue.record("a command without AUTH should be refused")
        } catch {
            #expect(error.description.contains("NOAUTH"))
        }
        let url = try RedisConfiguration(url: "redis://:s3cret-redis@127.0.0.1:\(server.port)/2")
        #expect(url.password == "s3cret-redis" && url.database == 2)
        let selected = try await RedisClient.connect(url)
        try await selected.set("in-db-2", "yes")
        #expect(try await selected.get("in-db-2") == "yes")
        selected.close()
    }

    @Test func tlsWithAPasswordAndTheOperatorsCertificateAuthority() async throws {
        // A certificate for 127.0.0.1 made with the openssl command (a test package), trusted as the CA.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("parley-redis-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", folder + "/key.pem", "-out", folder + "/cert.pem",
                             "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0)
        let tlsPort = RedisServer.freePort()
        let server = try RedisServer(extraArguments: ["--tls-port", String(tlsPort), "--tls-cert-file", folder + "/cert.pem",
                                                      "--tls-key-file", folder + "/key.pem", "--tls-ca-cert-file", folder + "/cert.pem",
                                                      "--tls-auth-clients", "no", "--requirepass", "tls-and-password"])
        var configuration = try RedisConfiguration(url: "rediss://:tls-and-password@127.0.0.1:\(tlsPort)")
        configuration.caCertificatePath = folder + "/cert.pem"
        let client = try await RedisClient.connect(configuration)
        try await client.set("secure", "yes")
        #expect(try await client.get("secure") == "yes")
        client.close()
        // Without trusting that CA the handshake fails, clearly.
        configuration.caCertificatePath = nil
        await #expect(throws: RedisError.self) { try await RedisClient.connect(configuration) }
        server.stop()
    }

    @Test func redisUnavailableAtStartIsAClearErrorNotAHang() async throws {
        let clock = ContinuousClock()
        let started = clock.now
        var configuration = RedisConfiguration(host: "127.0.0.1", port: RedisServer.freePort())
        configuration.connectTimeout = .seconds(2)
        do {
            _ = try await RedisClient.connect(configuration)
            Issue.record("connected to nothing")
        } catch {
            #expect(error.description.contains("Redis unavailable") && error.description.contains("127.0.0.1"))
        }
        #expect(clock.now - started < .seconds(3))
        // A server that accepts but never answers: the command times out instead of hanging.
        let (listener, silentPort) = RedisServer.listeningSocket()
        defer { close(listener) }
        var silent = RedisConfiguration(host: "127.0.0.1", port: silentPort)
        silent.commandTimeout = .milliseconds(500)
        let client = try await RedisClient.connect(silent)
        let before = clock.now
        await #expect(throws: RedisError.timeout("PING")) { try await client.send(["PING"]) }
        #expect(clock.now - before < .seconds(2))
        client.close()
    }

    @Test func badURLsAreRefusedWithTheExpectedForm() {
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "http://127.0.0.1:6379") }
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis://127.0.0.1:6379/zero") }
        #expect((try? RedisConfiguration(url: "rediss://user:pw@redis.internal:6380"))?.tls == true)
    }
}

@Suite struct RESPParserTests {
    func parse(_ text: String) throws -> RESPValue? {
        var buffer = ByteBuffer(string: text)
        return try RESPValue.parse(&buffer)
    }

    @Test func everyTypeParsesAndPartialInputWaitsForMore() throws {
        #expect(try parse("+OK\r\n") == .simpleString("OK"))
        #expect(try parse("-ERR no\r\n") == .error("ERR no"))
        #expect(try parse(":-42\r\n") == .integer(-42))
        #expect(try parse("$5\r\nhello\r\n") == .bulkString(Array("hello".utf8)))
        #expect(try parse("$-1\r\n") == .bulkString(nil))
        #expect(try parse("*2\r\n$1\r\na\r\n:1\r\n") == .array([.bulkString([97]), .integer(1)]))
        #expect(try parse("*-1\r\n") == .array(nil))
        for partial in ["+OK", "$5\r\nhel", "*2\r\n$1\r\na\r\n", ":1\r"] { #expect(try parse(partial) == nil) }
    }

    @Test func malformedInputIsAnErrorNeverACrash() {
        for bad in ["?x\r\n", "$-5\r\n", ":12a\r\n", "$3\r\nabcd\r\n", "*99999999999\r\n", String(repeating: "*1\r\n", count: 40) + ":1\r\n"] {
            #expect(throws: RESPParseError.self) { try parse(bad) }
        }
        var generator = SeededGenerator()
        for _ in 0..<5000 {
            let bytes = (0..<Int.random(in: 0...40, using: &generator)).map { _ in
                [UInt8(ascii: "*"), UInt8(ascii: "$"), UInt8(ascii: ":"), 13, 10, UInt8(ascii: "1"), UInt8(ascii: "-")].randomElement(using: &generator)!
            }
            var buffer = ByteBuffer(bytes: bytes)
            _ = try? RESPValue.parse(&buffer)
        }
    }
}
