import Foundation
import Synchronization

/// How a simulated participant leaves (`parley load --leave`): every way a real one can, so a
/// run can churn a server the way a day of meetings does.
public enum LeaveMode: String, Sendable, CaseIterable, Codable {
    /// At the end of the run, together: a signaling `leave` (over WHIP/WHEP, a DELETE).
    case allAtOnce = "all-at-once"
    /// The same way, one participant at a time, spread evenly over the run.
    case oneByOne = "one-by-one"
    /// Goes quiet the moment its DTLS ClientHello is out (ICE done, handshake not), then leaves at once.
    case midHandshake = "mid-handshake"
    /// At the end: DTLS close_notify and silence, as a browser closing its peer connection;
    /// waits for the server to drop the media (`media-failed`), then leaves.
    case dtlsClose = "dtls-close"
    /// At the end: stops sending anything, waits for the server to drop it when ICE consent
    /// expires (30 s), then leaves. Such a run lasts up to `serverDropWait` longer.
    case silent
    /// At the end: goes quiet and closes the signaling WebSocket with no `leave` (signaling only).
    case dropSocket = "drop-socket"

    /// How long a participant that hung up or went silent waits for the server to drop its media.
    public var serverDropWait: Double {
        switch self {
        case .dtlsClose: return 5
        case .silent: return 36  // the SFU's ICE consent timeout (30 s), checked on its timer ticks
        default: return 0
        }
    }

    /// Whether the mode waits for the server to notice on its own.
    public var waitsForServer: Bool { serverDropWait > 0 }
}

/// One participant's way and moment to leave.
struct Leaving: Sendable {
    var mode: LeaveMode
    var at: Date
}

/// What one participant's leaving came to, for the report.
struct LeaveOutcome: Sendable {
    var mode: LeaveMode
    /// Seconds from the start of the run.
    var leftAt: Double?
    var mediaEndedByServer: Bool?
    var removed = false
}

/// What the signaling reader and the leaving task of one participant share.
final class ParticipantSession: Sendable {
    let peer = Mutex<PeerRef?>(nil)
    /// Set once it hung up or went silent: from then on `media-failed` is expected.
    let leaving = Atomic<Bool>(false)
    let mediaGone = Atomic<Bool>(false)
}

extension LoadRunner {
    func leaveMode(index: Int) -> LeaveMode {
        let modes = configuration.leaveModes.isEmpty ? [.allAtOnce] : configuration.leaveModes
        return modes[index % modes.count]
    }

    /// The deadline, or for `one-by-one` the k-th of the run's N such participants (taken meeting
    /// by meeting, so the meetings thin out together) at k/(N+1) of the run.
    func leaveTime(meeting: Int, index: Int, started: Date, deadline: Date) -> Date {
        guard leaveMode(index: index) == .oneByOne else { return deadline }
        let order = (0..<configuration.participants).filter { leaveMode(index: $0) == .oneByOne }
            .flatMap { index in (0..<configuration.meetings).map { (meeting: $0, index: index) } }
        guard let position = order.firstIndex(where: { $0.meeting == meeting && $0.index == index }) else { return deadline }
        return started.addingTimeInterval(configuration.duration * Double(position + 1) / Double(order.count + 1))
    }
}
