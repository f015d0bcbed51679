import Foundation
import ParleySFU
import ParleyTransport

/// Where a participant's messages go: a web client's WebSocket queue, or nowhere (WHIP).
public typealias MessageSink = @Sendable (OutgoingMessage) -> Void

/// A server message with its JSON text, encoded once however many participants receive it
/// (encoding per recipient was most of the signaling CPU when 200 people joined one meeting).
public struct OutgoingMessage: Sendable {
    public let message: ServerMessage
    public let json: String

    public init(_ message: ServerMessage) {
        self.message = message
        self.json = message.json
    }
}

/// The embedded, in-memory directory of meetings and participants, and the fan-out of events to
/// every participant of a meeting (the Redis-backed version comes with multi-process deployments).
public actor MeetingHub {
    struct Participant {
        var info: ParticipantInfo
        var sink: MessageSink?
    }

    private var meetings: [String: [String: Participant]] = [:]
    /// Join order per meeting, so lists read the same everywhere.
    private var order: [String: [String]] = [:]
    public let maximumParticipants: Int

    public init(maximumParticipants: Int = 500) { self.maximumParticipants = maximumParticipants }

    /// Adds a participant and tells the others; returns its id and everyone already there.
    public func join(meeting: String, name: String, client: String, sink: MessageSink?) throws(SignalingError) -> (String, [ParticipantInfo]) {
        let existing = participants(in: meeting)
        guard existing.count < maximumParticipants else { throw .meetingFull }
        let id = RandomToken.make(length: 10)
        let info = ParticipantInfo(id: id, name: name, client: client, audioMuted: false, videoMuted: false, tracks: [])
        meetings[meeting, default: [:]][id] = Participant(info: info, sink: sink)
        order[meeting, default: []].append(id)
        broadcast(meeting: meeting, .participantJoined(info), except: id)
        return (id, existing)
    }

    public func leave(meeting: String, participantID: String) {
        guard meetings[meeting]?.removeValue(forKey: participantID) != nil else { return }
        order[meeting]?.removeAll { $0 == participantID }
        if meetings[meeting]?.isEmpty == true {
            meetings[meeting] = nil
            order[meeting] = nil
        }
        broadcast(meeting: meeting, .participantLeft(participantID: participantID), except: nil)
    }

    public func participants(in meeting: String) -> [ParticipantInfo] {
        (order[meeting] ?? []).compactMap { meetings[meeting]?[$0]?.info }
    }

    public func contains(meeting: String, participantID: String) -> Bool {
        meetings[meeting]?[participantID] != nil
    }

    /// Applies a change to a participant and tells everyone if it changed anything.
    public func update(meeting: String, participantID: String, _ change: @Sendable (inout ParticipantInfo) -> Void) {
        guard var participant = meetings[meeting]?[participantID] else { return }
        let before = participant.info
        change(&participant.info)
        guard participant.info != before else { return }
        meetings[meeting]?[participantID] = participant
        broadcast(meeting: meeting, .participantUpdated(participant.info), except: nil)
    }

    public func send(meeting: String, participantID: String, _ message: ServerMessage) {
        guard let sink = meetings[meeting]?[participantID]?.sink else { return }
        sink(OutgoingMessage(message))
    }

    public func broadcast(meeting: String, _ message: ServerMessage, except: String?) {
        guard let participants = meetings[meeting], participants.contains(where: { $0.key != except && $0.value.sink != nil }) else { return }
        let outgoing = OutgoingMessage(message)
        for (id, participant) in participants where id != except {
            participant.sink?(outgoing)
        }
    }

    /// Tells every participant of every meeting that it ended (shutdown).
    public func endAll(reason: String) {
        for meeting in meetings.keys { broadcast(meeting: meeting, .meetingEnded(reason: reason), except: nil) }
    }

    public var meetingCount: Int { meetings.count }
    public var participantCount: Int { meetings.values.reduce(0) { $0 + $1.count } }
}
