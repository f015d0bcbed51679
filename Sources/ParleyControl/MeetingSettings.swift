import Foundation
import ParleyMediaAPI

/// A meeting's security settings, as the API takes and shows them (the password is write-only:
/// it is kept as a bcrypt hash and shown as `hasPassword`).
public struct MeetingSettings: Codable, Sendable, Equatable {
    public var title: String?
    /// Joiners wait until a host admits them.
    public var waitingRoom = false
    /// Only people signed in with a configured OpenID Connect issuer may join.
    public var requireSignIn = false
    /// If not empty, only signed-in people whose verified email is in one of these domains.
    public var allowedDomains: [String] = []
    /// The meeting starts locked: only hosts get in until one unlocks it.
    public var lockOnStart = false
    /// Only hosts and co-hosts may share their screen.
    public var hostsOnlyScreenShare = false
    /// Participants a host muted may unmute themselves (as in most meeting tools); when false,
    /// only a host lifts the mute.
    public var allowSelfUnmute = true
    /// How many of the loudest speakers each participant hears (1–10); nil: the server's
    /// `--audio-speakers`.
    public var audioSpeakers: Int?

    public init() {}
}

/// A change to a meeting's settings (`PATCH /api/meetings/{id}`); absent fields stay as they are.
public struct MeetingSettingsPatch: Codable, Sendable {
    public var title: String?
    /// A new password; the empty string removes it.
    public var password: String?
    public var waitingRoom: Bool?
    public var requireSignIn: Bool?
    public var allowedDomains: [String]?
    public var lockOnStart: Bool?
    public var hostsOnlyScreenShare: Bool?
    public var allowSelfUnmute: Bool?
    public var audioSpeakers: Int?
    public var locked: Bool?

    public init() {}

    public func apply(to settings: inout MeetingSettings) {
        if let title { settings.title = title }
        if let waitingRoom { settings.waitingRoom = waitingRoom }
        if let requireSignIn { settings.requireSignIn = requireSignIn }
        if let allowedDomains { settings.allowedDomains = allowedDomains }
        if let lockOnStart { settings.lockOnStart = lockOnStart }
        if let hostsOnlyScreenShare { settings.hostsOnlyScreenShare = hostsOnlyScreenShare }
        if let allowSelfUnmute { settings.allowSelfUnmute = allowSelfUnmute }
        if let audioSpeakers { settings.audioSpeakers = audioSpeakers }
    }

    /// Refuses values that cannot be right, with the reason.
    public func validate() throws(SignalingError) {
        if let title, title.count > 200 { throw .badRequest("title longer than 200 characters") }
        if let password {
            guard password.utf8.count <= 72 else { throw .badRequest("password longer than 72 bytes (bcrypt's limit)") }
            guard !password.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw .badRequest("password contains control characters")
            }
        }
        if let audioSpeakers, !MeetingMediaSettings.audioSpeakersRange.contains(audioSpeakers) {
            throw .badRequest("audioSpeakers must be \(MeetingMediaSettings.audioSpeakersRange.lowerBound)–\(MeetingMediaSettings.audioSpeakersRange.upperBound)")
        }
        if let allowedDomains {
            guard allowedDomains.count <= 50 else { throw .badRequest("at most 50 allowed domains") }
            for domain in allowedDomains {
                guard Validation.isDomain(domain) else { throw .badRequest("\"\(domain.prefix(80))\" is not a domain name") }
            }
        }
    }
}

/// A report of one participant by another, kept for hosts and operators.
public struct ParticipantReport: Codable, Sendable, Equatable {
    public var meeting: String
    public var reporterID: String
    public var reporterName: String
    public var reportedID: String
    public var reportedName: String
    public var reason: String
    public var at: Date
}

/// Someone in a meeting's waiting room, as hosts see them.
public struct WaitingParticipant: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    /// Verified by the identity provider; nil when not signed in.
    public var email: String?
}

/// What the API shows of a meeting.
public struct MeetingView: Codable, Sendable, Equatable {
    public var id: String
    public var settings: MeetingSettings
    public var hasPassword: Bool
    public var locked: Bool
    public var participants: Int
    public var waiting: Int
}
