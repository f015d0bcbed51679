import Foundation
import ParleyAccess
import ParleyControl
import ParleyMediaAPI
import ParleyMediaNode

/// Everything `parley serve` is configured with (flags; see `parley serve --help`).
public struct ServerConfiguration: Sendable {
    public var httpHost: String = "127.0.0.1"
    public var httpPort: Int = 8080
    public var sfu = SFUConfiguration()
    /// The folder of the web client (HTML, CSS, ES modules).
    public var webRoot: String = ServerConfiguration.defaultWebRoot()
    /// Meetings nobody created are made, open, on first join; off: unknown meetings are 404.
    public var adhocMeetings = true
    /// The base of the links the API hands out (invite, host); default: the Host the request came to.
    public var publicURL: String?
    /// Signs access tokens and seals invite links; random per start unless read from a file.
    public var secret = ServerSecret.random()
    /// Bearer token of the operator API (`/api/admin/...`); nil: that API is off.
    public var adminToken: String?
    /// Proxies (nginx) whose X-Forwarded-For names the real client.
    public var trustedProxies: Set<String> = []
    /// Where created meetings are kept beyond this process (Redis with `parley signal`).
    public var meetingStore: (any MeetingRecordStore)?
    /// Where who is in which meeting is shared with the other signaling nodes (Redis with `parley signal`).
    public var liveStore: (any LiveMeetingStore)?
    /// Where WHIP/WHEP sessions are shared, so any node can end them (Redis with `parley signal`).
    public var sessionStore: (any MediaSessionStore)?
    /// How long a participant whose signaling node died keeps its place (cluster).
    public var reconnectGrace: Duration = .seconds(10)
    /// OpenID Connect issuers whose ID tokens sign people in.
    public var identityProviders: [IdentityProviderConfiguration] = []
    /// TURN servers clients may relay through (`turn:host:port?transport=udp|tcp`, `turns:`), with
    /// the secret they share with Parley (coturn's `static-auth-secret`) and how long the
    /// credentials handed out in `joined` last.
    public var turn: TURNConfiguration?
    /// Receiving slots per subscriber: the loudest speakers heard (`--audio-speakers`) and the
    /// videos shown at once (`--video-slots`).
    public var media = MeetingMediaSettings.defaults
    /// The most participants one meeting admits.
    public var maximumParticipants = 1000

    public init() {}

    /// `PARLEY_WEB_ROOT`, else `./Web`, else `Web` beside the checkout the binary was built in.
    public static func defaultWebRoot() -> String {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["PARLEY_WEB_ROOT"], !env.isEmpty { return env }
        let cwd = fm.currentDirectoryPath + "/Web"
        if fm.fileExists(atPath: cwd + "/meeting.html") { return cwd }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            let candidate = url.appendingPathComponent("Web").path
            if fm.fileExists(atPath: candidate + "/meeting.html") { return candidate }
            url = url.deletingLastPathComponent()
        }
        return cwd
    }
}
