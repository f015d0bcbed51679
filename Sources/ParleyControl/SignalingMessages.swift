import Foundation
import ParleyAccess
import ParleyMediaAPI

/// Version of the WebSocket signaling protocol (docs/signaling.md).
public let signalingProtocolVersion = 1

/// A message from a client over the signaling WebSocket, decoded by its `type`.
public enum ClientMessage: Sendable, Equatable {
    case join(JoinRequest)
    /// `newConnection`: the first offer of a new peer connection (replaces the old transport).
    case offer(sdp: String, sources: [String: String], newConnection: Bool = false)
    case chat(text: String)
    case mute(kind: MediaKind, muted: Bool)
    /// A host control; `participantID` names the target where the action has one.
    case host(action: HostAction, participantID: String?)
    case report(participantID: String, reason: String)
    /// How large the client shows each received video, by mid (device pixels): simulcast layer choice.
    case viewport(sizes: [String: VideoSize])
    /// The videos the client shows now (its gallery page), in order: its video slots carry these.
    case selectVideos([VideoSource])
    /// Is the server still there? Answered at once with `pong` (the client checks its socket
    /// when its network changed, before it waits on it for an ICE restart's answer).
    case ping(id: String?)
    case leave

    private struct Envelope: Decodable {
        var type: String
        var meeting: String?
        var name: String?
        var sdp: String?
        var sources: [String: String]?
        var text: String?
        var kind: String?
        var muted: Bool?
        var password: String?
        var invite: String?
        var token: String?
        var idToken: String?
        var action: String?
        var participantId: String?
        var reason: String?
        var newConnection: Bool?
        var resume: String?
        var sizes: [String: VideoSize]?
        var videos: [VideoSource]?
        var id: String?
    }

    public static let maximumSize = 256 * 1024

    /// Parses one message; the error says what is wrong so the client can be told.
    public init(json: String) throws(SignalingError) {
        guard json.utf8.count <= Self.maximumSize else { throw .badMessage("message larger than \(Self.maximumSize) bytes") }
        let envelope: Envelope
        do {
            envelope = try JSONCoding.decoder.decode(Envelope.self, from: Data(json.utf8))
        } catch {
            throw .badMessage("not a JSON object with a string \"type\"")
        }
        switch envelope.type {
        case "join":
            guard let meeting = envelope.meeting else { throw .badMessage("join needs \"meeting\"") }
            self = .join(JoinRequest(meeting: meeting, name: envelope.name ?? "", password: envelope.password, invite: envelope.invite,
                                     token: envelope.token, idToken: envelope.idToken, resume: envelope.resume))
        case "offer":
            guard let sdp = envelope.sdp else { throw .badMessage("offer needs \"sdp\"") }
            self = .offer(sdp: sdp, sources: envelope.sources ?? [:], newConnection: envelope.newConnection ?? false)
        case "chat":
            guard let text = envelope.text else { throw .badMessage("chat needs \"text\"") }
            self = .chat(text: text)
        case "mute":
            guard let kind = envelope.kind.flatMap(MediaKind.init(rawValue:)), let muted = envelope.muted else {
                throw .badMessage("mute needs \"kind\" (audio or video) and \"muted\"")
            }
            self = .mute(kind: kind, muted: muted)
        case "host":
            guard let action = envelope.action.flatMap(HostAction.init(rawValue:)) else {
                throw .badMessage("host needs an \"action\": one of \(HostAction.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if action.needsTarget && envelope.participantId == nil { throw .badMessage("\(action.rawValue) needs \"participantId\"") }
            self = .host(action: action, participantID: envelope.participantId)
        case "report":
            guard let target = envelope.participantId, let reason = envelope.reason else { throw .badMessage("report needs \"participantId\" and \"reason\"") }
            self = .report(participantID: target, reason: reason)
        case "select-videos":
            guard let videos = envelope.videos else { throw .badMessage("select-videos needs \"videos\": [{participantId, source}]") }
            let limit = MeetingMediaSettings.videoSlotsRange.upperBound
            guard videos.count <= limit, videos.allSatisfy({ ["camera", "screen"].contains($0.source) && $0.participantID.count <= 64 }) else {
                throw .badMessage("select-videos: at most \(limit) videos, each {participantId, source: camera or screen}")
            }
            self = .selectVideos(videos)
        case "viewport":
            guard let sizes = envelope.sizes else { throw .badMessage("viewport needs \"sizes\": {mid: {width, height}}") }
            guard sizes.count <= 256, sizes.values.allSatisfy({ (0...16384).contains($0.width) && (0...16384).contains($0.height) }) else {
                throw .badMessage("viewport: at most 256 mids, sizes 0…16384")
            }
            self = .viewport(sizes: sizes)
        case "ping":
            guard (envelope.id?.count ?? 0) <= 64 else { throw .badMessage("ping: \"id\" of at most 64 characters") }
            self = .ping(id: envelope.id)
        case "leave":
            self = .leave
        default:
            throw .badMessage("unknown message type \"\(envelope.type.prefix(32))\"")
        }
    }
}

/// How someone asks to join, with whatever credentials they bring.
public struct JoinRequest: Sendable, Equatable {
    public var meeting: String
    public var name: String
    public var password: String?
    /// The code of an invite link (`/m/{id}?invite=...`).
    public var invite: String?
    /// An access token (host token, one from the API, or the one `joined` gave for reconnects).
    public var token: String?
    /// An OpenID Connect ID token, for meetings that require sign-in.
    public var idToken: String?
    /// The participant id a reconnecting client had: with its token, it takes that participant
    /// back (same id, same media connection) through whichever signaling node it reached.
    public var resume: String?

    public init(meeting: String, name: String, password: String? = nil, invite: String? = nil, token: String? = nil, idToken: String? = nil,
                resume: String? = nil) {
        self.meeting = meeting; self.name = name; self.password = password; self.invite = invite; self.token = token; self.idToken = idToken
        self.resume = resume
    }
}

/// What hosts and co-hosts can do (`{"type":"host","action":...}`).
public enum HostAction: String, Sendable, Equatable, CaseIterable {
    case muteAudio = "mute-audio", stopVideo = "stop-video", muteAllAudio = "mute-all-audio", stopAllVideo = "stop-all-video"
    case allowAudio = "allow-audio", allowVideo = "allow-video"
    case remove, allowRejoin = "allow-rejoin"
    case makeCoHost = "make-cohost", removeCoHost = "remove-cohost"
    case lock, unlock
    case admit, deny, admitAll = "admit-all", denyAll = "deny-all"
    case hostsOnlyScreenShare = "hosts-only-screen-share", everyoneScreenShare = "everyone-screen-share"

    var needsTarget: Bool {
        switch self {
        case .muteAudio, .stopVideo, .allowAudio, .allowVideo, .remove, .allowRejoin, .makeCoHost, .removeCoHost, .admit, .deny: return true
        default: return false
        }
    }
}

public enum ParticipantRole: String, Codable, Sendable {
    case host, cohost, participant
}

/// A participant as every client sees it.
public struct ParticipantInfo: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    /// "web" for the browser client, "whip" for a WHIP publisher.
    public var client: String
    public var role: ParticipantRole
    public var audioMuted: Bool
    public var videoMuted: Bool
    public var tracks: [PublishedTrack]
}

/// A typed error that reaches the client as `{type:"error", code, message}` (or an HTTP status).
public enum SignalingError: Error, Equatable, Sendable, CustomStringConvertible {
    case badMessage(String)
    case badRequest(String)
    case notJoined
    case alreadyJoined
    case negotiationFailed(String)
    case meetingFull
    case meetingNotFound
    case passwordRequired
    case wrongPassword
    case tooManyAttempts(retryAfter: Int)
    case locked
    case signInRequired
    case domainNotAllowed
    case removed
    case denied
    case forbidden(String)
    case access(AccessError)
    /// The client's transport is gone (its media server stopped): start a new peer connection.
    case mediaFailed(String)

    public var code: String {
        switch self {
        case .badMessage: return "bad-message"
        case .badRequest: return "bad-request"
        case .notJoined: return "not-joined"
        case .alreadyJoined: return "already-joined"
        case .negotiationFailed: return "negotiation-failed"
        case .meetingFull: return "meeting-full"
        case .meetingNotFound: return "meeting-not-found"
        case .passwordRequired: return "password-required"
        case .wrongPassword: return "wrong-password"
        case .tooManyAttempts: return "too-many-attempts"
        case .locked: return "locked"
        case .signInRequired: return "sign-in-required"
        case .domainNotAllowed: return "domain-not-allowed"
        case .removed: return "removed"
        case .denied: return "denied"
        case .forbidden: return "forbidden"
        case .access(let error): return error.code
        case .mediaFailed: return "media-failed"
        }
    }

    public var description: String {
        switch self {
        case .badMessage(let reason), .badRequest(let reason), .negotiationFailed(let reason): return reason
        case .notJoined: return "join a meeting first"
        case .alreadyJoined: return "this connection already joined a meeting"
        case .meetingFull: return "the meeting is full"
        case .meetingNotFound: return "there is no such meeting"
        case .passwordRequired: return "this meeting needs a password"
        case .wrongPassword: return "wrong password"
        case .tooManyAttempts(let seconds): return "too many attempts, retry in \(seconds) s"
        case .locked: return "the meeting is locked: nobody new can join"
        case .signInRequired: return "this meeting is for signed-in users: sign in to join"
        case .domainNotAllowed: return "this meeting admits only signed-in users from its allowed email domains"
        case .removed: return "a host removed you from this meeting"
        case .denied: return "a host did not let you in"
        case .forbidden(let reason): return reason
        case .access(let error): return error.description
        case .mediaFailed(let reason): return reason
        }
    }
}

/// Messages the server sends, each encoded with its `type`.
public enum ServerMessage: Sendable {
    /// `resumed`: a reconnect took the participant back (same id; the media connection stays).
    case joined(participantID: String, meeting: String, participants: [ParticipantInfo], role: ParticipantRole, token: String?,
                state: MeetingStateView, resumed: Bool = false, iceServers: [TURNCredentials]? = nil, media: MeetingMediaSettings? = nil)
    /// In the waiting room: `joined` follows if a host admits, an error `denied` if not.
    case waiting(participantID: String)
    /// To hosts and co-hosts: who waits.
    case waitingRoom([WaitingParticipant])
    /// To everyone: the meeting's lock and sharing rules changed.
    case meetingState(locked: Bool, hostsOnlyScreenShare: Bool, waitingRoom: Bool)
    /// To the participant a host acted on ("mute-audio", "stop-video", "removed", ...).
    case moderated(action: String, by: String)
    /// To hosts: someone reported a participant.
    case reported(ParticipantReport)
    case answer(sdp: String, assignments: [MidAssignment], assignmentsVersion: Int)
    case assignments([MidAssignment], version: Int)
    case participantJoined(ParticipantInfo)
    case participantUpdated(ParticipantInfo)
    case participantLeft(participantID: String)
    case chat(from: String, name: String, text: String, at: Double)
    /// `inReplyTo`: "offer" when it is the reply to an offer (which gets exactly one reply, an
    /// answer or an error, in order), so a client tells it from news about its media.
    case error(code: String, message: String, inReplyTo: String? = nil)
    case meetingEnded(reason: String)
    /// To a simulcast publisher: the layers (rids) of its track on `mid` that somebody receives;
    /// it pauses the others.
    case publishLayers(mid: String, rids: [String])
    /// To a subscriber: its receiving video mids paused because its bandwidth has no room for
    /// them (the whole list; empty when everything runs again). Audio is never paused.
    case videoPaused(mids: [String])
    /// To everyone: who speaks now.
    case activeSpeaker(participantID: String)
    /// The answer to a client's `ping`, with its id.
    case pong(id: String?)

    private struct Wire: Encodable {
        var type: String
        var version: Int?
        var participantId: String?
        var meeting: String?
        var participants: [ParticipantInfo]?
        var participant: ParticipantInfo?
        var sdp: String?
        var assignments: [MidAssignment]?
        var assignmentsVersion: Int?
        var from: String?
        var name: String?
        var text: String?
        var at: Double?
        var code: String?
        var message: String?
        var inReplyTo: String?
        var reason: String?
        var role: ParticipantRole?
        var token: String?
        var state: MeetingStateView?
        var waiting: [WaitingParticipant]?
        var action: String?
        var by: String?
        var report: ParticipantReport?
        var resumed: Bool?
        var mid: String?
        var rids: [String]?
        var mids: [String]?
        var id: String?
        var iceServers: [TURNCredentials]?
        var media: MeetingMediaSettings?
    }

    public var json: String {
        var wire: Wire
        switch self {
        case .joined(let id, let meeting, let participants, let role, let token, let state, let resumed, let iceServers, let media):
            wire = Wire(type: "joined", version: signalingProtocolVersion, participantId: id, meeting: meeting, participants: participants,
                        role: role, token: token, state: state, resumed: resumed ? true : nil, iceServers: iceServers, media: media)
        case .waiting(let id): wire = Wire(type: "waiting", participantId: id)
        case .waitingRoom(let list): wire = Wire(type: "waiting-room", waiting: list)
        case .meetingState(let locked, let hostsOnly, let waitingRoom):
            wire = Wire(type: "meeting-state", state: MeetingStateView(locked: locked, hostsOnlyScreenShare: hostsOnly, waitingRoom: waitingRoom))
        case .moderated(let action, let by): wire = Wire(type: "moderated", action: action, by: by)
        case .reported(let report): wire = Wire(type: "reported", report: report)
        case .answer(let sdp, let assignments, let version):
            wire = Wire(type: "answer", sdp: sdp, assignments: assignments, assignmentsVersion: version)
        case .assignments(let assignments, let version): wire = Wire(type: "assignments", assignments: assignments, assignmentsVersion: version)
        case .participantJoined(let p): wire = Wire(type: "participant-joined", participant: p)
        case .participantUpdated(let p): wire = Wire(type: "participant-updated", participant: p)
        case .participantLeft(let id): wire = Wire(type: "participant-left", participantId: id)
        case .chat(let from, let name, let text, let at): wire = Wire(type: "chat", from: from, name: name, text: text, at: at)
        case .error(let code, let message, let inReplyTo): wire = Wire(type: "error", code: code, message: message, inReplyTo: inReplyTo)
        case .meetingEnded(let reason): wire = Wire(type: "meeting-ended", reason: reason)
        case .publishLayers(let mid, let rids): wire = Wire(type: "publish-layers", mid: mid, rids: rids)
        case .videoPaused(let mids): wire = Wire(type: "video-paused", reason: "bandwidth", mids: mids)
        case .activeSpeaker(let id): wire = Wire(type: "active-speaker", participantId: id)
        case .pong(let id): wire = Wire(type: "pong", id: id)
        }
        return (try? String(decoding: JSONCoding.encoder.encode(wire), as: UTF8.self)) ?? "{\"type\":\"error\"}"
    }
}

/// The meeting rules every participant's client shows.
public struct MeetingStateView: Codable, Sendable, Equatable {
    public var locked: Bool
    public var hostsOnlyScreenShare: Bool
    public var waitingRoom: Bool
    public init(locked: Bool, hostsOnlyScreenShare: Bool, waitingRoom: Bool) {
        self.locked = locked; self.hostsOnlyScreenShare = hostsOnlyScreenShare; self.waitingRoom = waitingRoom
    }
}
