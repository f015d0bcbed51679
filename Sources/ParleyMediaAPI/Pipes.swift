import Foundation

/// One end of a pipe between two SFU workers (of one process, or of two SFU nodes): the address
/// and port its worker listens on, and the SRTP master key (AES-128-GCM: 16 bytes of key, 12 of
/// salt, base64) it protects what it sends with. The far end takes it as its receiving key.
public struct PipeEndpoint: Sendable, Codable, Equatable {
    public var address: String
    public var port: UInt16
    public var key: String

    public init(address: String, port: UInt16, key: String) {
        self.address = address; self.port = port; self.key = key
    }

    /// The key's length in bytes (AES-128-GCM key and salt).
    public static let keyLength = 28

    /// A fresh random key, base64.
    public static func makeKey() -> String {
        var generator = SystemRandomNumberGenerator()
        return Data((0..<keyLength).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64EncodedString()
    }

    /// The key's bytes, or nil when it is not base64 of the right length.
    public var keyBytes: [UInt8]? {
        guard let data = Data(base64Encoded: key), data.count == Self.keyLength else { return nil }
        return Array(data)
    }
}

/// Asks an SFU to carry a meeting on a pipe from `from` (`POST /control/pipes`). The SFU answers
/// with its own end (`PipeAnswer`), and media of the meeting crosses in both directions.
public struct PipeOffer: Sendable, Codable, Equatable {
    public var meetingID: String
    public var media: MeetingMediaSettings
    public var from: PipeEndpoint
    /// The SFU node asking (for the operator view and logs).
    public var fromNode: String

    public init(meetingID: String, media: MeetingMediaSettings = .defaults, from: PipeEndpoint, fromNode: String) {
        self.meetingID = meetingID; self.media = media; self.from = from; self.fromNode = fromNode
    }

    enum CodingKeys: String, CodingKey {
        case meetingID = "meetingId", media, from, fromNode
    }
}

public struct PipeAnswer: Sendable, Codable, Equatable {
    public var endpoint: PipeEndpoint
    public init(endpoint: PipeEndpoint) { self.endpoint = endpoint }
}

/// Where a pipe goes: another worker of the same SFU, or another SFU node.
public enum PipeReach: String, Sendable, Codable, Equatable {
    case sameSFU = "worker"
    case otherSFU = "sfu"
}

/// Which piped copies a pipe carries on, besides the worker's own producers.
public enum PipeRelay: String, Sendable, Codable, Equatable {
    /// None (a worker that is not its SFU's hub for the meeting).
    case none
    /// Those that came over pipes of the other reach: a hub worker passes what other SFUs send
    /// to its sibling workers and back (a mesh between SFUs: each SFU sends its own to each other).
    case otherReach
    /// Every one that did not come over this pipe: the hub SFU of a star passes each spoke's
    /// media to the other spokes.
    case all
}

/// How a meeting's SFUs are piped together.
public enum CascadeTopology: String, Sendable, Codable, Equatable, CaseIterable {
    /// Every SFU to every other: one hop, n(n−1)/2 pipes.
    case mesh
    /// Every SFU to the meeting's primary SFU (the hub), which relays: two hops, n−1 pipes.
    case star
}

/// One pipe of a worker, for operators: where it goes, what crosses it.
public struct PipeStatus: Sendable, Codable, Equatable {
    /// The far worker, "address:port".
    public var remote: String
    public var reach: PipeReach
    /// The meetings it carries (a pipe between two workers carries every meeting they share).
    public var meetings: [String]
    public var packetsSent: Int
    public var packetsReceived: Int
    /// The far side's loss on what we send, from its receiver reports (percent).
    public var lossPercent: Double
    /// What this side sends across (bits per second), what the far side can take by that loss
    /// (nil: no loss seen, no limit), and the highest temporal layer of video that crosses for it.
    public var sendBitrate: Int?
    public var bandwidthEstimate: Int?
    public var temporalCap: Int?
    public var streams: [PipeStreamStatus]

    public init(remote: String, reach: PipeReach, meetings: [String], packetsSent: Int, packetsReceived: Int, lossPercent: Double,
                sendBitrate: Int? = nil, bandwidthEstimate: Int? = nil, temporalCap: Int? = nil, streams: [PipeStreamStatus]) {
        self.remote = remote; self.reach = reach; self.meetings = meetings; self.packetsSent = packetsSent; self.packetsReceived = packetsReceived
        self.lossPercent = lossPercent; self.sendBitrate = sendBitrate; self.bandwidthEstimate = bandwidthEstimate
        self.temporalCap = temporalCap; self.streams = streams
    }
}

/// One stream crossing a pipe: a layer of a producer, sent ("out") or received ("in").
public struct PipeStreamStatus: Sendable, Codable, Equatable {
    public var meetingID: String
    public var producerID: String
    public var participantID: String
    public var kind: MediaKind
    public var layer: Int
    public var direction: String
    public var packets: Int
    public var bitrate: Int
    /// Out: whether the far side wants this layer now.
    public var wanted: Bool

    public init(meetingID: String, producerID: String, participantID: String, kind: MediaKind, layer: Int, direction: String, packets: Int,
                bitrate: Int, wanted: Bool) {
        self.meetingID = meetingID; self.producerID = producerID; self.participantID = participantID; self.kind = kind; self.layer = layer
        self.direction = direction; self.packets = packets; self.bitrate = bitrate; self.wanted = wanted
    }

    enum CodingKeys: String, CodingKey {
        case meetingID = "meetingId", producerID = "producerId", participantID = "participantId", kind, layer, direction, packets, bitrate, wanted
    }
}
