/// Whether a track is sound or picture.
public enum MediaKind: String, Sendable, Codable {
    case audio, video
}

/// Who is on the other end of a transport, which decides how its offers are answered.
public enum TransportRole: String, Sendable, Codable {
    /// A web client: publishes its tracks and subscribes to the others' on one peer connection.
    case participant
    /// A WHIP client: publishes only.
    case whip
    /// A WHEP client: plays the meeting's most recent publisher.
    case whep
}

/// How large a subscriber shows one received video, in device pixels.
public struct VideoSize: Sendable, Codable, Equatable {
    public var width: Int
    public var height: Int
    public init(width: Int, height: Int) { self.width = width; self.height = height }
}

/// What a host stopped a participant from sending: the SFU drops it however the client behaves.
public enum BlockedMedia: String, Sendable, Hashable, Codable, CaseIterable {
    /// Microphone (every audio producer).
    case audio
    /// Camera (video that is not a screen share).
    case video
    /// Screen share.
    case screen
}

/// How many receiving slots a subscriber's peer connection has, whatever the meeting's size: the
/// SFU fills `audioSpeakers` audio slots with the loudest current speakers (per packet) and up to
/// `videoSlots` video slots with the videos the subscriber shows, so a 1,000-person meeting
/// negotiates the same few sections as a 10-person one.
public struct MeetingMediaSettings: Sendable, Codable, Equatable {
    public static let audioSpeakersRange = 1...10
    public static let videoSlotsRange = 1...49
    public static let defaults = MeetingMediaSettings(audioSpeakers: 3, videoSlots: 25)

    /// The N loudest speakers each subscriber hears (`--audio-speakers`, or the meeting's own).
    public var audioSpeakers: Int
    /// The most videos a subscriber receives at once (`--video-slots`).
    public var videoSlots: Int

    public init(audioSpeakers: Int, videoSlots: Int) {
        self.audioSpeakers = audioSpeakers; self.videoSlots = videoSlots
    }

    /// Values out of range are brought into it (a request from another node is not trusted blindly).
    public var clamped: MeetingMediaSettings {
        MeetingMediaSettings(audioSpeakers: min(max(audioSpeakers, Self.audioSpeakersRange.lowerBound), Self.audioSpeakersRange.upperBound),
                             videoSlots: min(max(videoSlots, Self.videoSlotsRange.lowerBound), Self.videoSlotsRange.upperBound))
    }
}

/// One video a subscriber asks to see: a participant's camera or screen share.
public struct VideoSource: Sendable, Codable, Equatable, Hashable {
    public var participantID: String
    /// "camera" or "screen".
    public var source: String

    public init(participantID: String, source: String) { self.participantID = participantID; self.source = source }

    enum CodingKeys: String, CodingKey {
        case source
        case participantID = "participantId"
    }
}
