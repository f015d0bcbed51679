import Foundation
import ParleySFU

/// Everything `parley serve` is configured with (flags; see `parley serve --help`).
public struct ServerConfiguration: Sendable {
    public var httpHost: String = "127.0.0.1"
    public var httpPort: Int = 8080
    public var sfu = SFUConfiguration()
    /// The folder of the web client (HTML, CSS, ES modules).
    public var webRoot: String = ServerConfiguration.defaultWebRoot()

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
