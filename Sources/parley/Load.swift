import ArgumentParser
import Foundation
import Logging
import ParleyLoad

extension LoadTarget: ExpressibleByArgument {}

struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Simulate participants against a Parley server and measure what they receive.",
        discussion: "Each participant joins through the signaling WebSocket (or WHIP/WHEP with --whip), publishes "
            + "synthetic Opus-like audio (50 packets/s) and VP8-like video, subscribes to the others, and measures "
            + "loss, jitter, one-way latency, time to join and to the first packet. Media goes only to the address in --url."
    )

    @Option(help: "The server, as http://IPv4:PORT.")
    var url: String

    @Option(help: "Number of meetings.")
    var meetings = 1

    @Option(help: "Participants per meeting.")
    var participants = 2

    @Option(help: "Seconds to run.")
    var duration: Double = 10

    @Option(help: "Video bitrate of each publisher, bits per second.")
    var videoBitrate = 500_000

    @Option(help: "Video frame rate.")
    var frameRate = 25

    @Option(help: "Participants per meeting that publish video (default: all).")
    var videoPublishers: Int?

    @Option(help: "Participants per meeting that publish audio (default: all).")
    var audioPublishers: Int?

    @Option(help: "Receive video from at most this many others (default: all).")
    var subscribe: Int?

    @Flag(help: "Join through WHIP (the video publishers, default 1 per meeting) and WHEP (everyone else) instead of signaling.")
    var whip = false

    @Option(help: "The SFU under test: parley, or janus (its VideoRoom over the WebSocket API; --url ws://IPv4:PORT).")
    var target: LoadTarget = .parley

    @Option(help: "Local address the simulated peers bind (and announce as their candidate unless 0.0.0.0).")
    var bindHost = "0.0.0.0"

    @Option(help: "The only address media may be sent to (default: the --url host).")
    var mediaHost: String?

    @Flag(help: "Print the report as JSON instead of a table.")
    var json = false

    func validate() throws {
        guard meetings >= 1, participants >= 1 else { throw ValidationError("--meetings and --participants must be at least 1") }
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
        guard !(whip && target == .janus) else { throw ValidationError("--whip is for Parley; Janus is driven through its VideoRoom API") }
        guard (1...120).contains(frameRate), videoBitrate >= 10_000 else { throw ValidationError("--frame-rate 1-120, --video-bitrate at least 10000") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        var configuration = LoadConfiguration(url: url)
        configuration.meetings = meetings
        configuration.participants = participants
        configuration.duration = duration
        configuration.videoBitrate = videoBitrate
        configuration.frameRate = frameRate
        configuration.videoPublishers = videoPublishers
        configuration.audioPublishers = audioPublishers
        configuration.subscribeTopK = subscribe
        configuration.whipWhep = whip
        configuration.target = target
        configuration.bindHost = bindHost
        configuration.mediaHost = mediaHost
        let runner: LoadRunner
        do {
            runner = try LoadRunner(configuration: configuration, logger: Logger(label: "parley-load"))
        } catch {
            throw ValidationError(error.description)
        }
        let report = await runner.run { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.table)
        }
        if report.joined == 0 { throw ExitCode(2) }
    }
}
