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
