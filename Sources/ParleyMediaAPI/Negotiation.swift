import ParleyWire

/// What signaling (or WHIP/WHEP) hands the SFU: a client's SDP offer for one peer connection.
public struct NegotiationRequest: Sendable {
    public var meetingID: String
    public var participantID: String
    /// nil for the first offer of a peer connection; the SFU creates the transport.
    public var transportID: String?
    public var role: TransportRole
    public var offer: SessionDescription
    /// mid → what the client says the track is ("camera", "microphone", "screen").
    public var sources: [String: String]
    /// The meeting's slot counts: how many speakers and videos this subscriber receives.
    public var media: MeetingMediaSettings

    public init(meetingID: String, participantID: String, transportID: String?, role: TransportRole, offer: SessionDescription, sources: [String: String] = [:],
                media: MeetingMediaSettings = .defaults) {
        self.meetingID = meetingID; self.participantID = participantID; self.transportID = transportID
        self.role = role; self.offer = offer; self.sources = sources; self.media = media
    }
}

/// A track a transport publishes.
public struct PublishedTrack: Sendable, Codable, Equatable {
    public var id: String
    public var mid: String
    public var kind: MediaKind
    public var source: String
    /// Audio: the CSRC the SFU writes on this track's packets in a subscriber's speaker slot, so
    /// a client can tell who speaks in a slot packet by packet.
    public var sourceID: UInt32?

    public init(id: String, mid: String, kind: MediaKind, source: String, sourceID: UInt32? = nil) {
        self.id = id; self.mid = mid; self.kind = kind; self.source = source; self.sourceID = sourceID
    }

    enum CodingKeys: String, CodingKey {
        case id, mid, kind, source
        case sourceID = "sourceId"
    }
}

/// Which remote track a receiving m-line shows; `producerID` nil means nothing for now.
public struct MidAssignment: Sendable, Codable, Equatable {
    public var mid: String
    public var kind: MediaKind
    public var producerID: String?
    public var participantID: String?
    public var source: String?

    public init(mid: String, kind: MediaKind, producerID: String?, participantID: String?, source: String?) {
        self.mid = mid; self.kind = kind; self.producerID = producerID; self.participantID = participantID; self.source = source
    }

    enum CodingKeys: String, CodingKey {
        case mid, kind, source
        case producerID = "producerId"
        case participantID = "participantId"
    }
}

public struct NegotiationResult: Sendable, Codable {
    public var transportID: String
    public var answer: String
    public var assignments: [MidAssignment]
    public var published: [PublishedTrack]
    /// Grows with every assignment list of this transport; clients keep the newest.
    public var assignmentsVersion: Int
    /// Other participants whose receiving mids now show something else: just those mids.
    public var changedAssignments: [AssignmentUpdate]

    public init(transportID: String, answer: String, assignments: [MidAssignment], published: [PublishedTrack], assignmentsVersion: Int,
                changedAssignments: [AssignmentUpdate]) {
        self.transportID = transportID; self.answer = answer; self.assignments = assignments; self.published = published
        self.assignmentsVersion = assignmentsVersion; self.changedAssignments = changedAssignments
    }
}

/// New assignments of some of a participant's receiving mids, for signaling to pass on.
public struct AssignmentUpdate: Sendable, Equatable, Codable {
    public var participantID: String
    public var version: Int
    public var assignments: [MidAssignment]

    public init(participantID: String, version: Int, assignments: [MidAssignment]) {
        self.participantID = participantID; self.version = version; self.assignments = assignments
    }
}

/// Why an offer could not be answered; the message goes back to the client.
public enum NegotiationError: Error, Equatable, Sendable, CustomStringConvertible {
    case badOffer(String)
    case unknownTransport(String)
    case failed(String)

    public var description: String {
        switch self {
        case .badOffer(let reason): return "bad offer: \(reason)"
        case .unknownTransport(let id): return "no transport \(id)"
        case .failed(let reason): return reason
        }
    }
}
