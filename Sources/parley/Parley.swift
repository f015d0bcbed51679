import ArgumentParser
import Foundation
import Logging
import ParleyAccess
import ParleySFU
import ParleyServer

@main
struct Parley: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley",
        abstract: "Parley: self-hostable video meetings with its own SFU.",
        subcommands: [Serve.self, Load.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every role in one process (HTTP API, signaling, web client, SFU) with in-memory state.",
        discussion: "Open http://127.0.0.1:8080/m/demo in two browsers to meet. WHIP clients publish with "
            + "POST /whip/{meeting}; WHEP clients play with POST /whep/{meeting}. GET /healthz reports status."
    )

    @Option(help: "Address the HTTP server binds to; 0.0.0.0 to serve other machines.")
    var httpHost = "127.0.0.1"

    @Option(help: "HTTP port (web client, signaling WebSocket, WHIP/WHEP, /healthz).")
    var httpPort = 8080

    @Option(help: "Address the SFU's UDP sockets bind to (default: all addresses).")
    var udpHost = ""

    @Option(help: "The SFU's first UDP port; one port per worker loop, counting up.")
    var udpPort: UInt16 = 40000

    @Option(help: "Number of SFU worker loops (default: one per core).")
    var workers: Int?

    @Option(help: "The address put in ICE candidates: the one browsers can reach this machine on.")
    var announceIp = "127.0.0.1"

    @Option(help: "The folder of the web client (default: ./Web or the checkout's Web).")
    var webRoot: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Flag(help: "Refuse meetings nobody created through the API (unknown meetings are a 404).")
    var noAdhocMeetings = false

    @Option(help: "Base URL of the links the API hands out, e.g. https://meet.example.org (default: the request's Host).")
    var publicUrl: String?

    @Option(help: ArgumentHelp("File with the server secret (at least 32 bytes, or 64 hex digits) that signs tokens and seals invite links; "
        + "without it a random one is made at each start, so links and tokens end with the process."))
    var secretFile: String?

    @Option(help: "File with the bearer token of the operator API (/api/admin/reports); without it that API is off.")
    var adminTokenFile: String?

    @Option(help: ArgumentHelp("An OpenID Connect issuer people may sign in with, repeatable: "
        + "name=Google,issuer=https://accounts.google.com,client-id=ID[,jwks=URL]", valueName: "issuer"))
    var oidcIssuer: [String] = []

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        guard (0...65535).contains(httpPort) else { throw ValidationError("--http-port must be 0-65535") }
        if let workers, !(1...256).contains(workers) { throw ValidationError("--workers must be 1-256") }
        guard !announceIp.isEmpty else { throw ValidationError("--announce-ip must not be empty") }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "parley")
        var configuration = ServerConfiguration()
        configuration.httpHost = httpHost
        configuration.httpPort = httpPort
        configuration.sfu = SFUConfiguration(udpHost: udpHost, udpPort: udpPort, announceAddress: announceIp,
                                             workers: workers ?? SFUConfiguration().workers)
        if let webRoot { configuration.webRoot = webRoot }
        configuration.adhocMeetings = !noAdhocMeetings
        configuration.publicURL = publicUrl
        do {
            if let secretFile { configuration.secret = try ServerSecret(contentsOf: secretFile) }
            if let adminTokenFile {
                guard let data = FileManager.default.contents(atPath: adminTokenFile) else {
                    throw AccessError.configuration("cannot read the admin token file \(adminTokenFile)")
                }
                let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                guard token.count >= 16 else { throw AccessError.configuration("the admin token must be at least 16 characters") }
                configuration.adminToken = token
            }
            configuration.identityProviders = try oidcIssuer.map { argument throws(AccessError) in try IdentityProviderConfiguration(argument: argument) }
        } catch let error as AccessError {
            throw ValidationError(error.description)
        }
        let server = try ParleyServer(configuration: configuration, logger: logger)
        try await server.run()
    }
}
