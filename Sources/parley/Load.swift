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
            + "loss, jitter, one-way latency, time to join and to the first packet. Media goes only to the address in --url.\n\n"
            + "--leave chooses how participants leave; participant k of each meeting takes the k-th mode of the list, cycling:\n"
            + "- all-at-once: at the end of the run, together, with a signaling `leave` (with --whip: DELETE the session).\n"
            + "- one-by-one: the same, one participant at a time, spread evenly over the run.\n"
            + "- mid-handshake: goes quiet right after its DTLS ClientHello (ICE done, handshake not), then leaves at once.\n"
            + "- dtls-close: at the end, DTLS close_notify and silence; waits up to 5 s for the server to drop the media.\n"
            + "- silent: at the end, sends nothing more; waits up to 36 s for the server to drop it when ICE consent "
            + "expires (30 s), so the run lasts that much longer.\n"
            + "- drop-socket: at the end, goes quiet and closes the signaling WebSocket without a `leave` (not with --whip).\n"
            + "The report says per participant how and when it left, whether a host removed it, and whether the server "
            + "dropped a dtls-close or silent one on its own."
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

    @Option(help: "Threads the simulated peers run on, each with its own sockets and timers (default: one per core).")
    var threads: Int?

    @Option(help: "Audio publishers per meeting that talk (loud audio levels); the rest send silence. Default: no audio levels at all.")
    var loudSpeakers: Int?

    @Option(help: "Participants joining per second, in order (default: all at once): a ramp, as people arrive at a large meeting.")
    var joinRate: Double?

    @Flag(help: "Publish nothing; receive what --audio-publishers and --video-publishers others send (a run joining a meeting another run publishes in).")
    var receiveOnly = false

    @Flag(help: "Join through WHIP (the video publishers, default 1 per meeting) and WHEP (everyone else) instead of signaling.")
    var whip = false

    @Option(help: "The SFU under test: parley, or janus (its VideoRoom over the WebSocket API; --url ws://IPv4:PORT).")
    var target: LoadTarget = .parley

    @Option(help: "Local address the simulated peers bind (and announce as their candidate unless 0.0.0.0).")
    var bindHost = "0.0.0.0"

    @Option(help: "The only address media may be sent to (default: the --url host).")
    var mediaHost: String?

    @Option(help: "How participants leave, a comma-separated list cycled over each meeting's participants: all-at-once, one-by-one, mid-handshake, dtls-close, silent, drop-socket (see above).")
    var leave = LeaveMode.allAtOnce.rawValue

    @Option(help: "Meetings are named PREFIX-0, PREFIX-1…, participants PREFIX-M-K.")
    var meetingPrefix = "load"

    @Flag(help: "Print the report as JSON instead of a table.")
    var json = false

    @Flag(help: "Write the once-a-second progress to stderr as JSON lines (totals, and per participant packets, loss and frames received) for scripts.")
    var progressJSON = false

    var leaveModes: [LeaveMode] {
        get throws {
            try leave.split(separator: ",").map { word in
                guard let mode = LeaveMode(rawValue: word.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("--leave: unknown mode \(word); modes: \(LeaveMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return mode
            }
        }
    }

    func validate() throws {
        guard meetings >= 1, participants >= 1 else { throw ValidationError("--meetings and --participants must be at least 1") }
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
        if let loudSpeakers, loudSpeakers < 0 { throw ValidationError("--loud-speakers must be 0 or more") }
        if let joinRate, !(joinRate > 0 && joinRate <= 100_000) { throw ValidationError("--join-rate must be above 0 (participants per second)") }
        if let threads, !(1...64).contains(threads) { throw ValidationError("--threads must be 1-64") }
        guard !(whip && target == .janus) else { throw ValidationError("--whip is for Parley; Janus is driven through its VideoRoom API") }
        guard (1...120).contains(frameRate), videoBitrate >= 10_000 else { throw ValidationError("--frame-rate 1-120, --video-bitrate at least 10000") }
        let modes = try leaveModes
        guard !modes.isEmpty else { throw ValidationError("--leave needs at least one mode") }
        guard !(whip && modes.contains(.dropSocket)) else { throw ValidationError("--leave drop-socket needs the signaling WebSocket; WHIP/WHEP has none") }
        guard target == .parley || modes == [.allAtOnce] else { throw ValidationError("--leave is for Parley; Janus participants all leave at the end") }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
        guard !meetingPrefix.isEmpty, meetingPrefix.count <= 48, meetingPrefix.allSatisfy(allowed.contains) else {
            throw ValidationError("--meeting-prefix: 1-48 of A-Z a-z 0-9 _ -")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = LineLogHandler(label: label)
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
        configuration.loudSpeakers = loudSpeakers
        configuration.joinRate = joinRate
        configuration.receiveOnly = receiveOnly
        if let threads { configuration.threads = threads }
        configuration.whipWhep = whip
        configuration.target = target
        configuration.bindHost = bindHost
        configuration.mediaHost = mediaHost
        configuration.leaveModes = try leaveModes
        configuration.meetingPrefix = meetingPrefix
        let runner: LoadRunner
        do {
            runner = try LoadRunner(configuration: configuration, logger: Logger(label: "parley-load"))
        } catch {
            throw ValidationError(error.description)
        }
        let progressJSON = self.progressJSON
        let report = await runner.run { progress in
            var line = progress.line
            if progressJSON {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                line = (try? String(decoding: encoder.encode(progress), as: UTF8.self)) ?? line
            }
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
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
