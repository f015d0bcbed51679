import Foundation
import ParleyMediaAPI

/// A participant as every signaling node holds it: what clients see, what the rules need, and
/// which node holds its connection.
public struct LiveParticipant: Codable, Sendable, Equatable {
    public var info: ParticipantInfo
    public var subject: String
    public var email: String?
    public var credentialKeys: Set<String>
    /// What a host stopped (mute, stop video); the screen rule comes from the settings.
    public var hostBlocked: Set<BlockedMedia> = []
    /// The signaling node holding its WebSocket (or WHIP session).
    public var node: String
    /// Its media transport, so a reconnect through another node keeps the same peer connection.
    public var transportID: String?
    /// Orders the participant list.
    public var joinedAt: Double
}

/// Someone in a meeting's waiting room.
public struct LiveWaiting: Codable, Sendable, Equatable {
    public var entry: WaitingParticipant
    public var identity: JoinIdentity
    public var node: String
    public var since: Double
}

/// One change to a meeting's live state, or one message for some of its participants, as a node
/// publishes it on the meeting's channel (`meeting:{id}`) for the other nodes.
public struct MeetingEvent: Codable, Sendable, Equatable {
    public enum Change: Codable, Sendable, Equatable {
        case participant(LiveParticipant)
        case participantLeft(String, node: String)
        case waiting(LiveWaiting)
        case waitingLeft(String)
        /// A host let this waiting participant in: the node holding its connection sends `joined`.
        case admitted(String)
    }

    public enum Recipients: Codable, Sendable, Equatable {
        case everyone(except: String?)
        case participant(String)
        case moderators
    }

    public struct Delivery: Codable, Sendable, Equatable {
        public var to: Recipients
        public var json: String
        public var endsMeeting: Bool

        public init(to: Recipients, _ message: OutgoingMessage) {
            self.to = to; json = message.json; endsMeeting = message.endsMeeting
        }

        public var message: OutgoingMessage { OutgoingMessage(json: json, endsMeeting: endsMeeting) }
    }

    /// The node that made the change.
    public var origin: String
    public var meeting: String
    public var change: Change?
    public var delivery: Delivery?

    public init(origin: String, meeting: String, change: Change? = nil, delivery: Delivery? = nil) {
        self.origin = origin; self.meeting = meeting; self.change = change; self.delivery = delivery
    }
}

/// What a node asks the store when someone knocks: admit this participant (or put them in the
/// waiting room) if the meeting's shared state still allows it, or resume a participant that
/// reconnects through this node.
public struct AdmissionRequest: Sendable {
    public var meeting: String
    public var subject: String
    public var credentialKeys: Set<String>
    /// A host or co-host: neither lock nor removals apply.
    public var moderator: Bool
    public var maximumParticipants: Int
    /// The participant id a reconnecting client had.
    public var resume: String?
    /// Exactly one of these is set: in as a participant, or into the waiting room.
    public var participant: LiveParticipant?
    public var waiting: LiveWaiting?
    /// This node's copy of the meeting's lock and removals. The local store decides with them;
    /// Redis reads its own record (`meeting:{id}:record`), which every node writes through.
    public var locked: Bool
    public var removedKeys: Set<String>

    public init(meeting: String, subject: String, credentialKeys: Set<String>, moderator: Bool, maximumParticipants: Int, resume: String? = nil,
                participant: LiveParticipant? = nil, waiting: LiveWaiting? = nil, locked: Bool = false, removedKeys: Set<String> = []) {
        self.meeting = meeting; self.subject = subject; self.credentialKeys = credentialKeys; self.moderator = moderator
        self.maximumParticipants = maximumParticipants; self.resume = resume; self.participant = participant; self.waiting = waiting
        self.locked = locked; self.removedKeys = removedKeys
    }
}

public enum AdmissionOutcome: Sendable, Equatable {
    case admitted
    /// The participant the client had, now held by this node.
    case resumed(LiveParticipant)
}

/// What a store tells a hub besides meeting events.
public enum LiveStoreEvent: Sendable {
    case meeting(MeetingEvent)
    /// The store's subscription broke and came back: events may be missing, reload what you hold.
    case resynchronize
}

/// Meetings' live state shared by signaling nodes (Redis in a cluster): participants and waiting
/// rooms, admission decided atomically, events fanned out per meeting, and which nodes are alive.
public protocol LiveMeetingStore: Sendable {
    var nodeID: String { get }
    /// Other signaling nodes share this state: a shutdown ends no meeting (clients resume elsewhere).
    var isShared: Bool { get }
    /// Admits, queues or resumes in one atomic step (`AdmissionRules.decide`); throws `locked`, `removed` or `meetingFull`.
    func admit(_ request: AdmissionRequest) async throws(SignalingError) -> AdmissionOutcome
    /// Everyone in (and waiting for) a meeting, or nil when the store cannot be read.
    func snapshot(_ meeting: String) async -> (participants: [LiveParticipant], waiting: [LiveWaiting])?
    /// Starts (stops) receiving a meeting's events.
    func follow(_ meeting: String) async
    func unfollow(_ meeting: String) async
    /// Stores the event's change, then publishes it; events leave in the order they are given.
    func publish(_ event: MeetingEvent)
    /// Removes a participant whose node died, unless it reconnected through another node meanwhile.
    func removeOrphan(meeting: String, participantID: String, node: String)
    /// Claims a dead node's participant for this node; exactly one claimant wins.
    func adopt(meeting: String, participantID: String, from node: String) async -> Bool
    func events() async -> AsyncStream<LiveStoreEvent>
    /// Signaling nodes whose heartbeat is alive (nil when the store cannot be read).
    func liveNodes() async -> Set<String>?
}

/// A WHIP or WHEP session, by the id in its `Location`: what `DELETE` ends.
public struct MediaSession: Codable, Sendable, Equatable {
    public var meetingID: String
    public var participantID: String
    public var transportID: String
    public var isPublisher: Bool

    public init(meetingID: String, participantID: String, transportID: String, isPublisher: Bool) {
        self.meetingID = meetingID; self.participantID = participantID; self.transportID = transportID; self.isPublisher = isPublisher
    }
}

/// WHIP/WHEP sessions every signaling node can end (Redis in a cluster): a `DELETE` may reach
/// another node than the `POST` did.
public protocol MediaSessionStore: Sendable {
    func save(_ id: String, _ session: MediaSession) async
    func load(_ id: String) async -> MediaSession?
    func delete(_ id: String, transportID: String) async
    /// The session whose transport this is, if any.
    func session(forTransport transportID: String) async -> String?
}
