import Foundation
import Logging
import ParleySFU
import ParleyWire

/// What one signaling connection has become: nothing yet, or a participant of a meeting.
public struct SignalingConnection: Sendable {
    public var meetingID: String?
    public var participantID: String?
    public var transportID: String?
    public init() {}
}

/// The signaling logic behind the WebSocket and WHIP/WHEP: joins, offers, chat, mutes, leaves,
/// and the SFU's events turned into messages. Free of HTTP so it is tested directly.
public final class SignalingService: Sendable {
    public let hub: MeetingHub
    public let sfu: SFU
    private let logger: Logger
    /// Told of every closed transport (the HTTP layer forgets its WHIP/WHEP session).
    private let transportClosed: @Sendable (String) async -> Void

    public init(hub: MeetingHub, sfu: SFU, logger: Logger, transportClosed: @escaping @Sendable (String) async -> Void = { _ in }) {
        self.hub = hub
        self.sfu = sfu
        self.logger = logger
        self.transportClosed = transportClosed
    }

    /// Handles one text message from a WebSocket; errors go back to the same client.
    public func handle(text: String, connection: inout SignalingConnection, sink: @escaping MessageSink) async {
        do {
            let message = try ClientMessage(json: text)
            try await handle(message, connection: &connection, sink: sink)
        } catch let error as SignalingError {
            sink(OutgoingMessage(.error(code: error.code, message: error.description)))
        } catch {
            sink(OutgoingMessage(.error(code: "internal", message: "\(error)")))
        }
    }

    func handle(_ message: ClientMessage, connection: inout SignalingConnection, sink: @escaping MessageSink) async throws {
        switch message {
        case .join(let meeting, let name):
            guard connection.participantID == nil else { throw SignalingError.alreadyJoined }
            let meetingID = try Validation.meetingID(meeting)
            let displayName = try Validation.displayName(name)
            let (id, others) = try await hub.join(meeting: meetingID, name: displayName, client: "web", sink: sink)
            connection.meetingID = meetingID
            connection.participantID = id
            sink(OutgoingMessage(.joined(participantID: id, meeting: meetingID, participants: others)))
            logger.info("participant joined", metadata: ["meeting": "\(meetingID)", "participant": "\(id)"])
        case .offer(let sdp, let sources):
            guard let meetingID = connection.meetingID, let participantID = connection.participantID else { throw SignalingError.notJoined }
            let known: Set<String> = ["camera", "microphone", "screen"]
            let result = try await negotiate(meetingID: meetingID, participantID: participantID, transportID: connection.transportID,
                                             role: .participant, sdp: sdp, sources: sources.filter { known.contains($0.value) })
            connection.transportID = result.transportID
            sink(OutgoingMessage(.answer(sdp: result.answer, assignments: result.assignments, assignmentsVersion: result.assignmentsVersion)))
        case .chat(let text):
            guard let meetingID = connection.meetingID, let participantID = connection.participantID else { throw SignalingError.notJoined }
            let body = try Validation.chatText(text)
            let name = await hub.participants(in: meetingID).first { $0.id == participantID }?.name ?? ""
            await hub.broadcast(meeting: meetingID, .chat(from: participantID, name: name, text: body, at: Date().timeIntervalSince1970), except: nil)
        case .mute(let kind, let muted):
            guard let meetingID = connection.meetingID, let participantID = connection.participantID else { throw SignalingError.notJoined }
            await hub.update(meeting: meetingID, participantID: participantID) { info in
                if kind == .audio { info.audioMuted = muted } else { info.videoMuted = muted }
            }
        case .leave:
            await disconnect(&connection)
        }
    }

    /// Answers an offer on the SFU and publishes the participant's new track list.
    public func negotiate(meetingID: String, participantID: String, transportID: String?, role: TransportRole,
                          sdp: String, sources: [String: String]) async throws -> NegotiationResult {
        let offer: SessionDescription
        do {
            offer = try SessionDescription(parsing: sdp)
        } catch {
            throw SignalingError.negotiationFailed("SDP offer: \(error)")
        }
        let result: NegotiationResult
        do {
            result = try await sfu.negotiate(NegotiationRequest(meetingID: meetingID, participantID: participantID, transportID: transportID,
                                                                role: role, offer: offer, sources: sources))
        } catch let error as NegotiationError {
            throw SignalingError.negotiationFailed(error.description)
        }
        if role != .whep {
            let published = result.published
            await hub.update(meeting: meetingID, participantID: participantID) { $0.tracks = published }
        }
        for update in result.changedAssignments {
            await hub.send(meeting: meetingID, participantID: update.participantID, .assignments(update.assignments, version: update.version))
        }
        return result
    }

    /// The connection closed or left: the participant leaves and its media stops.
    public func disconnect(_ connection: inout SignalingConnection) async {
        guard let meetingID = connection.meetingID, let participantID = connection.participantID else { return }
        await hub.leave(meeting: meetingID, participantID: participantID)
        sfu.closeParticipant(meetingID: meetingID, participantID: participantID)
        logger.info("participant left", metadata: ["meeting": "\(meetingID)", "participant": "\(participantID)"])
        connection = SignalingConnection()
    }

    /// Turns SFU events into signaling; runs for the life of the server.
    public func runEventLoop() async {
        for await event in sfu.events {
            switch event {
            case .assignmentsChanged(let meetingID, let update):
                await hub.send(meeting: meetingID, participantID: update.participantID, .assignments(update.assignments, version: update.version))
            case .transportClosed(let meetingID, let participantID, let transportID, let reason):
                logger.info("transport closed", metadata: ["meeting": "\(meetingID)", "participant": "\(participantID)", "reason": "\(reason)"])
                await transportClosed(transportID)
                guard reason != "participant left",
                      let participant = await hub.participants(in: meetingID).first(where: { $0.id == participantID }) else { break }
                if participant.client == "whip" {
                    // A WHIP publisher has no other channel: losing its media is leaving.
                    await hub.leave(meeting: meetingID, participantID: participantID)
                } else {
                    await hub.update(meeting: meetingID, participantID: participantID) { $0.tracks = [] }
                    await hub.send(meeting: meetingID, participantID: participantID,
                                   .error(code: "media-failed", message: "the media connection was lost: \(reason)"))
                }
            case .transportConnected(let meetingID, let participantID, let transportID):
                logger.debug("transport connected", metadata: ["meeting": "\(meetingID)", "participant": "\(participantID)", "transport": "\(transportID)"])
            }
        }
    }
}
