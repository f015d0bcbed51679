/// What the media plane carries of one meeting, for operators (`GET /api/admin/meetings/{id}`):
/// where it runs and every stream in and out. Cascading adds the pipes between SFUs and workers.
public struct MeetingMediaStatus: Sendable, Codable, Equatable {
    /// One entry per SFU worker the meeting is on.
    public var routers: [RouterStatus]

    public init(routers: [RouterStatus]) { self.routers = routers }
}

/// The meeting on one worker of one SFU.
public struct RouterStatus: Sendable, Codable, Equatable {
    /// The SFU node (its id in a cluster; "local" in `parley serve`).
    public var node: String
    public var worker: Int
    /// The worker's UDP port (what clients' media reaches).
    public var port: UInt16
    public var transports: [TransportStatus]
    /// The pipes carrying this meeting to other workers and SFUs.
    public var pipes: [PipeStatus]

    public init(node: String, worker: Int, port: UInt16, transports: [TransportStatus], pipes: [PipeStatus] = []) {
        self.node = node; self.worker = worker; self.port = port; self.transports = transports; self.pipes = pipes
    }
}

/// One peer connection: who, what it publishes, what it receives.
public struct TransportStatus: Sendable, Codable, Equatable {
    public var id: String
    public var participantID: String
    public var role: TransportRole
    public var connected: Bool
    /// The bandwidth estimate towards this subscriber, bits per second.
    public var estimatedBitrate: Int
    public var producers: [ProducerStatus]
    public var consumers: [ConsumerStatus]

    public init(id: String, participantID: String, role: TransportRole, connected: Bool, estimatedBitrate: Int,
                producers: [ProducerStatus], consumers: [ConsumerStatus]) {
        self.id = id; self.participantID = participantID; self.role = role; self.connected = connected
        self.estimatedBitrate = estimatedBitrate; self.producers = producers; self.consumers = consumers
    }

    enum CodingKeys: String, CodingKey {
        case id, role, connected, estimatedBitrate, producers, consumers
        case participantID = "participantId"
    }
}

/// An incoming track, per encoding (simulcast layer).
public struct ProducerStatus: Sendable, Codable, Equatable {
    public struct Layer: Sendable, Codable, Equatable {
        public var rid: String?
        public var bitrate: Int
        public var packetsReceived: Int
        /// Packets the publisher numbered that never arrived (RFC 3550 cumulative loss).
        public var packetsLost: Int
        public var width: Int?
        public var height: Int?
        public init(rid: String?, bitrate: Int, packetsReceived: Int, packetsLost: Int, width: Int?, height: Int?) {
            self.rid = rid; self.bitrate = bitrate; self.packetsReceived = packetsReceived; self.packetsLost = packetsLost
            self.width = width; self.height = height
        }
    }

    public var id: String
    public var kind: MediaKind
    public var source: String
    public var blocked: Bool
    public var layers: [Layer]

    public init(id: String, kind: MediaKind, source: String, blocked: Bool, layers: [Layer]) {
        self.id = id; self.kind = kind; self.source = source; self.blocked = blocked; self.layers = layers
    }
}

/// An outgoing track (a receiving mid of the subscriber): what it carries now.
public struct ConsumerStatus: Sendable, Codable, Equatable {
    public var mid: String
    public var kind: MediaKind
    public var producerID: String?
    public var participantID: String?
    /// Simulcast: the layer sent now (nil before its first keyframe).
    public var layer: Int?
    public var packetsSent: Int
    public var pausedForBandwidth: Bool

    public init(mid: String, kind: MediaKind, producerID: String?, participantID: String?, layer: Int?, packetsSent: Int, pausedForBandwidth: Bool) {
        self.mid = mid; self.kind = kind; self.producerID = producerID; self.participantID = participantID; self.layer = layer
        self.packetsSent = packetsSent; self.pausedForBandwidth = pausedForBandwidth
    }

    enum CodingKeys: String, CodingKey {
        case mid, kind, layer, packetsSent, pausedForBandwidth
        case producerID = "producerId"
        case participantID = "participantId"
    }
}
