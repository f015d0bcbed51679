import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// One TCP (or TLS) connection to Redis. Commands are pipelined: each write queues its promise and
/// replies complete them in order. A command that times out closes the connection (later replies
/// could no longer be matched), so callers see `timeout` and then reconnect.
public final class RedisConnection: Sendable {
    let channel: any Channel
    private let handler: NIOLoopBound<RESPHandler>
    public let configuration: RedisConfiguration

    private init(channel: any Channel, handler: NIOLoopBound<RESPHandler>, configuration: RedisConfiguration) {
        self.channel = channel
        self.handler = handler
        self.configuration = configuration
    }

    /// Connects, authenticates and selects the database; fails within `connectTimeout`.
    /// `onPush` receives what Redis sends unasked (pub/sub messages).
    public static func connect(_ configuration: RedisConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                               onPush: (@Sendable (RESPValue) -> Void)? = nil,
                               onClose: (@Sendable () -> Void)? = nil) async throws(RedisError) -> RedisConnection {
        let timeout = TimeAmount(configuration.connectTimeout)
        let sslContext: NIOSSLContext?
        if configuration.tls {
            var tls = TLSConfiguration.makeClientConfiguration()
            if let path = configuration.caCertificatePath {
                do { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(path)) } catch {
                    throw .configuration("cannot read the Redis CA certificate \(path): \(error)")
                }
            }
            do { sslContext = try NIOSSLContext(configuration: tls) } catch { throw .configuration("TLS setup: \(error)") }
        } else {
            sslContext = nil
        }
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        // IP literals are not names (no SNI); the certificate is then checked against the address.
                        let isAddress = (try? SocketAddress(ipAddress: configuration.host, port: 0)) != nil
                        let tlsHandler = try NIOSSLClientHandler(context: sslContext, serverHostname: isAddress ? nil : configuration.host)
                        try channel.pipeline.syncOperations.addHandler(tlsHandler)
                    }
                    try channel.pipeline.syncOperations.addHandler(RESPHandler(onPush: onPush, onClose: onClose))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: configuration.host, port: configuration.port).get()
        } catch {
            throw .unavailable("cannot connect to \(configuration.host):\(configuration.port) (\(error))")
        }
        let handler: NIOLoopBound<RESPHandler>
        do {
            handler = try await channel.eventLoop.submit {
                NIOLoopBound(try channel.pipeline.syncOperations.handler(type: RESPHandler.self), eventLoop: channel.eventLoop)
            }.get()
        } catch {
            channel.close(promise: nil)
            throw .unavailable("connection setup: \(error)")
        }
        let connection = RedisConnection(channel: channel, handler: handler, configuration: configuration)
        do {
            if let password = configuration.password {
                _ = try await connection.send(configuration.username.map { ["AUTH", $0, password] } ?? ["AUTH", password])
            }
            if configuration.database != 0 { _ = try await connection.send(["SELECT", String(configuration.database)]) }
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    public var isActive: Bool { channel.isActive }

    /// One command; an error reply becomes `RedisError.server`.
    public func send(_ arguments: [String]) async throws(RedisError) -> RESPValue {
        let replies = try await pipeline([arguments])
        if case .error(let message) = replies[0] { throw .server(message) }
        return replies[0]
    }

    /// Several commands in one write; the replies in order (error replies included as values).
    public func pipeline(_ commands: [[String]]) async throws(RedisError) -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        let timeout = TimeAmount(configuration.commandTimeout)
        let handler = self.handler
        let channel = self.channel
        let future: EventLoopFuture<[RESPValue]> = channel.eventLoop.flatSubmit {
            guard channel.isActive else { return channel.eventLoop.makeFailedFuture(RedisError.closed) }
            var buffer = channel.allocator.buffer(capacity: 64 * commands.count)
            var futures: [EventLoopFuture<RESPValue>] = []
            for command in commands {
                RESPValue.writeCommand(command, into: &buffer)
                futures.append(handler.value.enqueue(timeout: timeout, description: command.first ?? "?"))
            }
            channel.writeAndFlush(buffer, promise: nil)
            return EventLoopFuture.whenAllSucceed(futures, on: channel.eventLoop)
        }
        do {
            return try await future.get()
        } catch let error as RedisError {
            throw error
        } catch {
            throw .unavailable("\(error)")
        }
    }

    public func close() {
        channel.close(promise: nil)
    }
}

/// Matches replies to the commands in flight, hands pushes (pub/sub) to a callback, and fails
/// everything in flight when the connection ends.
final class RESPHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var promise: EventLoopPromise<RESPValue>
        var timeout: Scheduled<Void>?
    }
    private var pending: CircularBuffer<Pending> = []
    private var buffered: ByteBuffer?
    private var context: ChannelHandlerContext?
    private var eventLoop: (any EventLoop)?
    private let onPush: (@Sendable (RESPValue) -> Void)?
    private let onClose: (@Sendable () -> Void)?
    private var closed = false

    init(onPush: (@Sendable (RESPValue) -> Void)?, onClose: (@Sendable () -> Void)?) {
        self.onPush = onPush
        self.onClose = onClose
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        eventLoop = context.eventLoop
    }

    /// The context refers to this handler: holding it past the pipeline's end would keep the
    /// whole closed channel alive (LeakSanitizer found one per closed connection).
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Called on the event loop when a command is written.
    func enqueue(timeout: TimeAmount, description: String) -> EventLoopFuture<RESPValue> {
        guard let eventLoop else { preconditionFailure("RESPHandler used before it joined a pipeline") }
        guard !closed, let context else { return eventLoop.makeFailedFuture(RedisError.closed) }
        let promise = context.eventLoop.makePromise(of: RESPValue.self)
        let scheduled = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
            guard let self, self.pending.contains(where: { $0.promise.futureResult === promise.futureResult }) else { return }
            self.failAll(RedisError.timeout(description))
            context.close(promise: nil)
        }
        pending.append(Pending(promise: promise, timeout: scheduled))
        return promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffered == nil { buffered = incoming } else { buffered!.writeBuffer(&incoming) }
        do {
            while var buffer = buffered, let value = try RESPValue.parse(&buffer) {
                buffered = buffer
                deliver(value)
            }
            if buffered?.readableBytes == 0 { buffered = nil } else { buffered?.discardReadBytes() }
        } catch {
            failAll(RedisError.protocolError(error.description))
            context.close(promise: nil)
        }
    }

    private func deliver(_ value: RESPValue) {
        // Pub/sub messages arrive unasked: arrays whose first element is "message"/"pmessage".
        if let onPush, let kind = value.array?.first?.string, kind == "message" || kind == "pmessage" {
            onPush(value)
            return
        }
        guard let next = pending.popFirst() else {
            onPush?(value)
            return
        }
        next.timeout?.cancel()
        next.promise.succeed(value)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        failAll(RedisError.closed)
        onClose?()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(RedisError.unavailable("\(error)"))
        context.close(promise: nil)
    }

    private func failAll(_ error: RedisError) {
        while let next = pending.popFirst() {
            next.timeout?.cancel()
            next.promise.fail(error)
        }
    }
}
