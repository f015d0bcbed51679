import ArgumentParser
import Foundation
import Logging
import ParleyAccess
import ParleyCluster
import ParleyRedis
import ParleyMediaAPI
import ParleyMediaNode
import ParleyServer

@main
struct Parley: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley",
        abstract: "Parley: self-hostable video meetings with its own SFU.",
        subcommands: [Serve.self, Signal.self, SFUNodeCommand.self, Load.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every role in one process (HTTP API, signaling, web client, SFU) with in-memory state.",
        discussion: "Open http://127.0.0.1:8080/m/demo in two browsers to meet. WHIP clients publish with "
            + "POST /whip/{meeting}; WHEP clients play with POST /whep/{meeting}. GET /healthz reports status."
    )

    @OptionGroup var http: HTTPOptions

    @OptionGroup var slots: SlotOptions

    @OptionGroup var media: MediaPlaneOptions

    @OptionGroup var log: LogOptions

    @OptionGroup var access: AccessOptions

    func run() async throws {
        let logger = log.bootstrap()
        var configuration = ServerConfiguration()
        http.apply(to: &configuration)
        configuration.media = slots.settings
        configuration.maximumParticipants = slots.maxParticipants
        configuration.sfu = media.configuration
        try access.apply(to: &configuration)
        let server = try ParleyServer(configuration: configuration, logger: logger)
        try await server.run()
    }
}

/// Where the HTTP side listens: `serve` and `signal`.
struct HTTPOptions: ParsableArguments {
    @Option(help: "Address the HTTP server binds to; 0.0.0.0 to serve other machines.")
    var httpHost = "127.0.0.1"

    @Option(help: "HTTP port (web client, signaling WebSocket, WHIP/WHEP, /healthz).")
    var httpPort = 8080

    @Option(help: "The folder of the web client (default: ./Web or the checkout's Web).")
    var webRoot: String?

    func validate() throws {
        guard (0...65535).contains(httpPort) else { throw ValidationError("--http-port must be 0-65535") }
    }

    func apply(to configuration: inout ServerConfiguration) {
        configuration.httpHost = httpHost
        configuration.httpPort = httpPort
        if let webRoot { configuration.webRoot = webRoot }
    }
}

/// How many streams each subscriber receives, whatever the meeting's size: `serve` and `signal`.
struct SlotOptions: ParsableArguments {
    @Option(help: "The loudest speakers each participant hears at once (1-10; a meeting may set its own, audioSpeakers in the API).")
    var audioSpeakers = MeetingMediaSettings.defaults.audioSpeakers

    @Option(help: "The most videos a participant receives at once (1-49); the web client pages through the rest.")
    var videoSlots = MeetingMediaSettings.defaults.videoSlots

    @Option(help: "The most participants one meeting admits (1-100000); beyond one SFU's capacity a meeting spreads over several.")
    var maxParticipants = 1000

    func validate() throws {
        guard (1...100_000).contains(maxParticipants) else { throw ValidationError("--max-participants must be 1-100000") }
        let speakers = MeetingMediaSettings.audioSpeakersRange, videos = MeetingMediaSettings.videoSlotsRange
        guard speakers.contains(audioSpeakers) else { throw ValidationError("--audio-speakers must be \(speakers.lowerBound)-\(speakers.upperBound)") }
        guard videos.contains(videoSlots) else { throw ValidationError("--video-slots must be \(videos.lowerBound)-\(videos.upperBound)") }
    }

    var settings: MeetingMediaSettings { MeetingMediaSettings(audioSpeakers: audioSpeakers, videoSlots: videoSlots) }
}

/// The SFU's sockets: `serve` and `sfu`.
struct MediaPlaneOptions: ParsableArguments {
    @Option(help: "Address the SFU's UDP sockets bind to (default: all addresses).")
    var udpHost = ""

    @Option(help: "The SFU's first UDP port; one port per worker loop, counting up.")
    var udpPort: UInt16 = 40000

    @Option(help: "Number of SFU worker loops (default: one per core).")
    var workers: Int?

    @Option(help: "The address put in ICE candidates: the one browsers can reach this machine on.")
    var announceIp = "127.0.0.1"

    @Flag(help: "No passive ICE-TCP candidates (by default each worker also listens on TCP, same port, for clients whose network blocks UDP).")
    var noIceTcp = false

    @Option(help: "Participants of one meeting on one worker before the meeting spreads to another worker, piped to the first (1-100000).")
    var workerCapacity = 100

    func validate() throws {
        if let workers, !(1...256).contains(workers) { throw ValidationError("--workers must be 1-256") }
        guard (1...100_000).contains(workerCapacity) else { throw ValidationError("--worker-capacity must be 1-100000") }
        guard !announceIp.isEmpty else { throw ValidationError("--announce-ip must not be empty") }
    }

    var configuration: SFUConfiguration {
        SFUConfiguration(udpHost: udpHost, udpPort: udpPort, announceAddress: announceIp, workers: workers ?? SFUConfiguration().workers,
                         iceTCP: !noIceTcp, workerCapacity: workerCapacity)
    }
}

/// How much to log: every command that serves.
struct LogOptions: ParsableArguments {
    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func bootstrap() -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = LineLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "parley")
    }
}

/// Who gets into meetings: the options `serve` and `signal` share.
struct AccessOptions: ParsableArguments {
    @Flag(help: "Refuse meetings nobody created through the API (unknown meetings are a 404).")
    var noAdhocMeetings = false

    @Option(help: "Base URL of the links the API hands out, e.g. https://meet.example.org (default: the request's Host).")
    var publicUrl: String?

    @Option(help: ArgumentHelp("File with the server secret (at least 32 bytes, or 64 hex digits) that signs tokens and seals invite links; "
        + "without it a random one is made at each start, so links and tokens end with the process. Every signaling node of a "
        + "cluster needs the same one."))
    var secretFile: String?

    @Option(help: "File with the bearer token of the operator API (/api/admin/reports); without it that API is off.")
    var adminTokenFile: String?

    @Option(help: ArgumentHelp("An OpenID Connect issuer people may sign in with, repeatable: "
        + "name=Google,issuer=https://accounts.google.com,client-id=ID[,jwks=URL]", valueName: "issuer"))
    var oidcIssuer: [String] = []

    @Option(help: ArgumentHelp("The address of a proxy in front of this server (nginx), repeatable: its X-Forwarded-For names the "
        + "client whose failed attempts are counted.", valueName: "ip"))
    var trustedProxy: [String] = []

    @Option(help: ArgumentHelp("A TURN server clients may relay through when UDP to the SFU is blocked, repeatable: "
        + "turn:HOST:PORT?transport=udp, turn:HOST:PORT?transport=tcp or turns:HOST:PORT?transport=tcp (see deploy/turnserver.conf).",
        valueName: "url"))
    var turnUrl: [String] = []

    @Option(help: "File with the secret shared with the TURN server (coturn's static-auth-secret); needed with --turn-url.")
    var turnSecretFile: String?

    @Option(help: "Seconds the TURN credentials handed out at join stay valid.")
    var turnCredentialLifetime = 86_400

    func validate() throws {
        for url in turnUrl where !(url.hasPrefix("turn:") || url.hasPrefix("turns:")) {
            throw ValidationError("--turn-url must start with turn: or turns: (got \(url))")
        }
        if !turnUrl.isEmpty && turnSecretFile == nil { throw ValidationError("--turn-url needs --turn-secret-file") }
        if turnUrl.isEmpty && turnSecretFile != nil { throw ValidationError("--turn-secret-file needs at least one --turn-url") }
        guard (60...604_800).contains(turnCredentialLifetime) else { throw ValidationError("--turn-credential-lifetime must be 60-604800 seconds") }
    }

    func apply(to configuration: inout ServerConfiguration) throws {
        configuration.adhocMeetings = !noAdhocMeetings
        configuration.trustedProxies = Set(trustedProxy)
        configuration.publicURL = publicUrl
        do {
            if let secretFile { configuration.secret = try ServerSecret(contentsOf: secretFile) }
            if let adminTokenFile {
                let token = try readToken(adminTokenFile, what: "admin token")
                configuration.adminToken = token
            }
            configuration.identityProviders = try oidcIssuer.map { argument throws(AccessError) in try IdentityProviderConfiguration(argument: argument) }
            if let turnSecretFile {
                configuration.turn = TURNConfiguration(urls: turnUrl, secret: try readToken(turnSecretFile, what: "TURN secret"),
                                                       lifetime: .seconds(turnCredentialLifetime))
            }
        } catch {
            throw ValidationError(error.description)
        }
    }
}

/// A secret kept in a file (trimmed), at least 16 characters.
func readToken(_ path: String, what: String) throws(AccessError) -> String {
    guard let data = FileManager.default.contents(atPath: path) else { throw .configuration("cannot read the \(what) file \(path)") }
    let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard token.count >= 16 else { throw .configuration("the \(what) must be at least 16 characters") }
    return token
}

/// Where Redis is: shared by `signal` and `sfu`.
struct RedisOptions: ParsableArguments {
    @Option(help: "Redis, as redis://[:password@]host:port[/db] or rediss:// for TLS.")
    var redis: String

    @Option(help: "File with a CA certificate to trust for rediss://.")
    var redisCaFile: String?

    @Option(help: "File with the bearer token of the SFU nodes' control API (the same on every node).")
    var controlTokenFile: String?

    func configuration() throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: redis)
        configuration.caCertificatePath = redisCaFile
        return configuration
    }

    func controlToken() throws -> String? {
        try controlTokenFile.map { path throws(AccessError) in try readToken(path, what: "control token") }
    }
}

/// `parley signal`: HTTP, the API, WebSocket signaling and WHIP/WHEP, with the media on SFU nodes
/// found through Redis.
struct Signal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a signaling node: web client, API, signaling and WHIP/WHEP; media on `parley sfu` nodes found through Redis.",
        discussion: "Each meeting goes to an SFU node chosen by the room service (consistent hashing bounded by load); an SFU "
            + "that stops heartbeating is seen within 2 s and its meetings move. Meetings (settings, password hash, lock, hosts, "
            + "removals, reports), who is in them and who waits live in Redis and survive this process; participants of one "
            + "meeting may be connected to different signaling nodes (events reach them through the Redis channel meeting:{id}). "
            + "Run as many as you like behind a load balancer (docs/scaling.md)."
    )

    @Option(help: "This node's id in logs and in Redis (default: a random one).")
    var nodeId: String = "signal-" + UUID().uuidString.prefix(8).lowercased()

    @Option(help: "Seconds a participant whose signaling node died keeps its place for its client to reconnect through another node.")
    var reconnectGrace: Int = 10

    @Option(help: "How a meeting over several SFUs is piped: mesh (every SFU to every other), star (every SFU to the meeting's primary, which relays), or auto (mesh up to 6 SFUs, star beyond).")
    var cascadeTopology: String = "auto"

    @OptionGroup var http: HTTPOptions

    @OptionGroup var slots: SlotOptions

    @OptionGroup var access: AccessOptions

    @OptionGroup var cluster: RedisOptions

    @OptionGroup var log: LogOptions

    func run() async throws {
        let logger = log.bootstrap()
        var configuration = ServerConfiguration()
        http.apply(to: &configuration)
        configuration.media = slots.settings
        configuration.maximumParticipants = slots.maxParticipants
        try access.apply(to: &configuration)
        let controlToken = try cluster.controlToken()
        let redisConfiguration = try cluster.configuration()
        guard (1...3600).contains(reconnectGrace) else { throw ValidationError("--reconnect-grace must be 1…3600 seconds") }
        guard cascadeTopology == "auto" || CascadeTopology(rawValue: cascadeTopology) != nil else {
            throw ValidationError("--cascade-topology must be auto, mesh or star")
        }
        let client: RedisClient
        let media: ClusterMediaServer
        let live: RedisLiveMeetingStore
        do {
            client = try await RedisClient.connect(redisConfiguration)
            media = try await ClusterMediaServer(redis: client, redisConfiguration: redisConfiguration, controlToken: controlToken,
                                                 topology: CascadeTopology(rawValue: cascadeTopology), logger: logger)
            live = try await RedisLiveMeetingStore(redis: client, configuration: redisConfiguration, nodeID: nodeId, logger: logger)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        configuration.meetingStore = RedisMeetingRecordStore(redis: client, logger: logger)
        configuration.liveStore = live
        configuration.sessionStore = RedisMediaSessionStore(redis: client, logger: logger)
        configuration.reconnectGrace = .seconds(reconnectGrace)
        logger.info("signaling node starting", metadata: ["node": "\(nodeId)", "redis": "\(redisConfiguration.host):\(redisConfiguration.port)"])
        let server = try ParleyServer(configuration: configuration, logger: logger, media: media)
        try await server.run()
        await live.leave()
        media.stop()
    }
}

/// `parley sfu`: an SFU node for `parley signal`.
struct SFUNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sfu",
        abstract: "Run an SFU node: media for the meetings the room service gives it, a control API for signaling nodes, heartbeats to Redis."
    )

    @Option(help: "This node's id (default: a random one).")
    var nodeId: String = "sfu-" + UUID().uuidString.prefix(8).lowercased()

    @OptionGroup var media: MediaPlaneOptions

    @Option(help: "Address of the control API (signaling nodes must reach it).")
    var controlHost = "127.0.0.1"

    @Option(help: "Port of the control API (0: any free port).")
    var controlPort = 0

    @Option(help: "The control API's URL as signaling nodes reach it (default: http://control-host:port).")
    var controlUrl: String?

    @Option(help: "Participants this node takes at most.")
    var capacity = 500

    @Option(help: "Takes no newcomers while it receives this many RTP packets a second or more (default: no limit).")
    var capacityPacketsPerSecond: Int?

    @Option(help: "Takes no newcomers while it uses this much CPU or more, in percent of one core (default: no limit).")
    var capacityCpu: Double?

    @Option(help: "On SIGTERM, how long to wait (seconds) for participants to move to other SFUs before stopping.")
    var drainTimeout = 10.0

    func validate() throws {
        guard capacity >= 1 else { throw ValidationError("--capacity must be at least 1") }
        if let capacityPacketsPerSecond, capacityPacketsPerSecond < 1 { throw ValidationError("--capacity-packets-per-second must be at least 1") }
        if let capacityCpu, !(capacityCpu > 0) { throw ValidationError("--capacity-cpu must be above 0 (percent of one core)") }
        guard (0...600).contains(drainTimeout) else { throw ValidationError("--drain-timeout must be 0-600 seconds") }
    }

    @OptionGroup var cluster: RedisOptions

    @OptionGroup var log: LogOptions

    func run() async throws {
        let logger = log.bootstrap()
        var configuration = SFUNodeServer.Configuration(nodeID: nodeId, sfu: media.configuration, redis: try cluster.configuration())
        configuration.controlHost = controlHost
        configuration.controlPort = controlPort
        configuration.controlURL = controlUrl
        configuration.capacity = capacity
        configuration.maxPacketsPerSecond = capacityPacketsPerSecond
        configuration.maxCPUPercent = capacityCpu
        configuration.drainTimeout = .milliseconds(Int(drainTimeout * 1000))
        configuration.controlToken = try cluster.controlToken()
        let server: SFUNodeServer
        do {
            server = try await SFUNodeServer(configuration: configuration, logger: logger)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        try await server.run()
    }
}
