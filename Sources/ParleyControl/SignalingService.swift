import Foundation
import Logging
import ParleyAccess
import ParleyBase
import ParleyMediaAPI
import ParleyWire

/// What one signaling connection has become: nothing yet, waiting, or a participant of a meeting.
public struct SignalingConnection: Sendable {
    public var meetingID: String?
    public var participantID: String?
    public var transportID: String?
    /// In the waiting room: only `leave` is accepted until a host decides.
    public var waiting = false
    /// The client's address, for the attempt limits.
    public var address: String
    /// Tells this connection from a later one that resumed the same participant.
    public let id = RandomToken.make(length: 12)
    public init(address: String = "unknown") { self.address = address }
}

/// The signaling logic behind the WebSocket and WHIP/WHEP: joins, offers, chat, mutes, leaves,
/// and the SFU's events turned into messages. Free of HTTP so it is tested directly.
public final class SignalingService: Sendable {
    public let hub: MeetingHub
    public let gatekeeper: Gatekeeper
    public let sfu: any MediaServer
    private let logger: Logger
    /// Told of every closed transport (the HTTP layer forgets its WHIP/WHEP session).
    private let transportClosed: @Sendable (String) async -> Void
    /// TURN servers for clients, with credentials made per participant in `joined`.
    public let turn: TURNConfiguration?
    /// The server's slot counts (`--audio-speakers`, `--video-slots`); a meeting may set its own
    /// speaker count.
    public let media: MeetingMediaSettings

    public init(gatekeeper: Gatekeeper, sfu: any MediaServer, logger: Logger, turn: TURNConfiguration? = nil, media: MeetingMediaSettings = .defaults,
                transportClosed: @escaping @Sendable (String) async -> Void = { _ in }) {
        self.hub = gatekeeper.hub
        self.gatekeeper = gatekeeper
        self.sfu = sfu
        self.logger = logger
        self.turn = turn
        self.media = media
        self.transportClosed = transportClosed
    }

    /// A meeting's slot counts: the server's, with the meeting's own speaker count if it set one.
    public func media(of meeting: String) async -> MeetingMediaSettings {
        var media = self.media
        if let speakers = await hub.access(meeting)?.settings.audioSpeakers { media.audioSpeakers = speakers }
        return media.clamped
    }

    /// Handles one text message from a WebSocket; errors go back to the same client.
    public func handle(text: String, connection: inout SignalingConnection, sink: @escaping MessageSink) async {
        var inReplyTo: String?
        do {
            let message = try ClientMessage(json: text)
            if case .offer = message { inReplyTo = "offer" }
            try await handle(message, connection: &connection, sink: sink)
        } catch let error as SignalingError {
            sink(OutgoingMessage(.error(code: error.code, message: error.description, inReplyTo: inReplyTo)))
        } catch {
            sink(OutgoingMessage(.error(code: "internal", message: "\(error)", inReplyTo: inReplyTo)))
        }
    }

    func handle(_ message: ClientMessage, connection: inout SignalingConnection, sink: @escaping MessageSink) async throws {
        if connection.waiting, message != .leave {
            // Admission happens elsewhere (a host's decision); `joined` tells the connection.
            if await !hub.contains(meeting: connection.meetingID ?? "", participantID: connection.participantID ?? "", connection: connection.id) {
                throw SignalingError.forbidden("you are in the waiting room until a host lets you in")
            }
            connection.waiting = false
        }
        if case .join = message {} else if message != .leave, let meetingID = connection.meetingID, let participantID = connection.participantID,
                                           await !hub.contains(meeting: meetingID, participantID: participantID, connection: connection.id) {
            // Removed (or the meeting is gone): nothing more from this connection counts.
            throw SignalingError.notJoined
        }
        switch message {
        case .join(let request):
            guard connection.participantID == nil else { throw SignalingError.alreadyJoined }
            let identity = try await gatekeeper.check(request, address: connection.address)
            let meetingID = request.meeting
            switch try await hub.admit(meeting: meetingID, identity: identity, sink: sink, resume: request.resume, connection: connection.id) {
            case .joined(let id, let others):
                connection.meetingID = meetingID
                connection.participantID = id
                await sendJoined(meeting: meetingID, participantID: id, identity: identity, others: others, sink: sink)
                // Only the newcomer's blocks are new (the others' are where their media flows
                // already): one control call at most, not one per participant per join.
                if let blocked = await hub.effectiveBlocks(meetingID)[id], !blocked.isEmpty {
                    sfu.setBlockedMedia(meetingID: meetingID, participantID: id, blocked: blocked)
                }
                logger.info("participant joined", metadata: ["meeting": "\(meetingID)", "participant": "\(id)"])
            case .resumed(let id, let transportID, let others):
                connection.meetingID = meetingID
                connection.participantID = id
                connection.transportID = transportID
                if let transportID { await sfu.adoptTransport(meetingID: meetingID, participantID: id, transportID: transportID) }
                await sendJoined(meeting: meetingID, participantID: id, identity: identity, others: others, sink: sink, resumed: true)
                logger.info("participant resumed", metadata: ["meeting": "\(meetingID)", "participant": "\(id)"])
            case .waiting(let id):
                connection.meetingID = meetingID
                connection.participantID = id
                connection.waiting = true
                sink(OutgoingMessage(.waiting(participantID: id)))
                logger.info("participant waiting", metadata: ["meeting": "\(meetingID)", "participant": "\(id)"])
            }
        case .offer(let sdp, let sources, let newConnection):
            guard let meetingID = connection.meetingID, let participantID = connection.participantID else { throw SignalingError.notJoined }
            if newConnection, let old = connection.transportID {
                sfu.closeTransport(meetingID: meetingID, transportID: old, reason: Self.replacedReason)
                connection.transportID = nil
                // Until the new one is answered the participant has no transport: the old one's
                // loss, reported late, is no news to a client already building the next.
                await hub.setTransport(meeting: meetingID, participantID: participantID, nil)
            }
            let known: Set<String> = ["camera", "microphone", "screen"]
            let result: NegotiationResult
            do {
                result = try await negotiate(meetingID: meetingID, participantID: participantID, transportID: connection.transportID,
                                             role: .participant, sdp: sdp, sources: sources.filter { known.contains($0.value) })
            } catch SignalingError.mediaFailed(let reason) {
                // The transport is gone (its SFU stopped): the next offer, from a new peer
                // connection, gets a new transport.
                connection.transportID = nil
                throw SignalingError.mediaFailed(reason)
            }
            connection.transportID = result.transportID
            sink(OutgoingMessage(.answer(sdp: result.answer, assignments: result.assignments, assignmentsVersion: result.assignmentsVersion)))
        case .chat(let text):
            guard let meetingID = connection.meetingID, let participantID = connection.participantID else { throw SignalingError.notJoined }
            let body = try Validation.chatText(text)
            let name = await hub.participant(meeting: meetingID, id: participantID)?.info.name ?? ""
            await hub.broadcast(meeting: meetingID, .chat(from: participantID, name: name, text: body, at: hub.clock.wallNow()), except: nil)
        case .mute(let kind, let muted):
            guard let meetingID = connection.meetingID, let participantID = connection.participantID else { throw SignalingError.notJoined }
            await applyBlocks(meetingID, try await hub.setOwnMute(meeting: meetingID, participantID: participantID, kind: kind, muted: muted))
        case .host(let action, let target):
            guard let meetingID = connection.meetingID, let participantID = connection.participantID else { throw SignalingError.notJoined }
            guard await hub.isModerator(meeting: meetingID, participantID: participantID) else {
                throw SignalingError.forbidden("only hosts and co-hosts can \(action.rawValue)")
            }
            try await perform(action, on: target, meeting: meetingID, by: participantID)
        case .report(let target, let reason):
            guard let meetingID = connection.meetingID, let participantID = connection.participantID else { throw SignalingError.notJoined }
            try await hub.report(meeting: meetingID, reporterID: participantID, reportedID: target, reason: try Validation.reportReason(reason))
            logger.notice("participant reported", metadata: ["meeting": "\(meetingID)", "reported": "\(target)"])
        case .viewport(let sizes):
            guard let meetingID = connection.meetingID, let participantID = connection.participantID else { throw SignalingError.notJoined }
            sfu.setViewport(meetingID: meetingID, participantID: participantID, sizes: sizes)
        case .selectVideos(let videos):
            guard let meetingID = connection.meetingID, let participantID = connection.participantID else { throw SignalingError.notJoined }
            let slots = await media(of: meetingID).videoSlots
            sfu.selectVideos(meetingID: meetingID, participantID: participantID, sources: Array(videos.prefix(slots)))
        case .ping(let id):
            sink(OutgoingMessage(.pong(id: id)))
        case .leave:
            await disconnect(&connection)
        }
    }

    private func sendJoined(meeting: String, participantID: String, identity: JoinIdentity, others: [ParticipantInfo], sink: MessageSink?,
                            resumed: Bool = false) async {
        // They are in: their token brings them back (a reconnect) without waiting again.
        var admitted = identity
        admitted.admitted = true
        let token = try? await gatekeeper.token(for: admitted, meeting: meeting, role: identity.isHost ? .host : .participant)
        // The hub gave the participant its role (host, co-host) from the meeting's subjects.
        let role = await hub.participant(meeting: meeting, id: participantID)?.info.role ?? .participant
        let state = await hub.state(meeting)
        sink?(OutgoingMessage(.joined(participantID: participantID, meeting: meeting, participants: others, role: role, token: token, state: state,
                                      resumed: resumed, iceServers: turn.map { [$0.credentials(for: participantID, now: Date(timeIntervalSince1970: hub.clock.wallNow()))] },
                                      media: await media(of: meeting))))
        if role != .participant { sink?(OutgoingMessage(.waitingRoom(await hub.waitingList(meeting)))) }
        if let speaker = await hub.activeSpeaker(meeting: meeting) { sink?(OutgoingMessage(.activeSpeaker(participantID: speaker))) }
    }

    /// A host control, enforced here and at the SFU.
    private func perform(_ action: HostAction, on target: String?, meeting: String, by hostID: String) async throws {
        let hostName = await hub.participant(meeting: meeting, id: hostID)?.info.name ?? "a host"
        switch action {
        case .muteAudio: await applyBlocks(meeting, await hub.block(meeting: meeting, participantID: target, .audio, by: hostName))
        case .stopVideo: await applyBlocks(meeting, await hub.block(meeting: meeting, participantID: target, .video, by: hostName))
        case .muteAllAudio: await applyBlocks(meeting, await hub.block(meeting: meeting, participantID: nil, .audio, by: hostName))
        case .stopAllVideo: await applyBlocks(meeting, await hub.block(meeting: meeting, participantID: nil, .video, by: hostName))
        case .allowAudio: await applyBlocks(meeting, await hub.unblock(meeting: meeting, participantID: target!, .audio))
        case .allowVideo: await applyBlocks(meeting, await hub.unblock(meeting: meeting, participantID: target!, .video))
        case .remove:
            // The client is told and its socket closed (by whichever node holds it); media stops at once.
            try await hub.remove(meeting: meeting, participantID: target!, by: hostName)
            sfu.closeParticipant(meetingID: meeting, participantID: target!)
            logger.notice("participant removed", metadata: ["meeting": "\(meeting)", "participant": "\(target!)"])
        case .allowRejoin: try await hub.allowRejoin(meeting: meeting, participantID: target!)
        case .makeCoHost: try await hub.setCoHost(meeting: meeting, participantID: target!, true)
        case .removeCoHost: try await hub.setCoHost(meeting: meeting, participantID: target!, false)
        case .lock: await hub.setLocked(meeting, true)
        case .unlock: await hub.setLocked(meeting, false)
        case .hostsOnlyScreenShare: await applyBlocks(meeting, await hub.setHostsOnlyScreenShare(meeting, true))
        case .everyoneScreenShare: await applyBlocks(meeting, await hub.setHostsOnlyScreenShare(meeting, false))
        case .admit, .admitAll:
            for admitted in try await hub.decide(meeting: meeting, participantID: action == .admit ? target : nil, .admit) {
                await sendJoined(meeting: meeting, participantID: admitted.participantID, identity: admitted.identity, others: admitted.others,
                                 sink: admitted.sink)
            }
            await applyBlocks(meeting, await hub.effectiveBlocks(meeting))
        case .deny, .denyAll:
            _ = try await hub.decide(meeting: meeting, participantID: action == .deny ? target : nil, .deny)
        }
    }

    /// Tells the SFU what to drop for each participant.
    public func applyBlocks(_ meeting: String, _ blocks: [String: Set<BlockedMedia>]) async {
        for (participantID, blocked) in blocks { sfu.setBlockedMedia(meetingID: meeting, participantID: participantID, blocked: blocked) }
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
                                                                role: role, offer: offer, sources: sources, media: await media(of: meetingID)))
        } catch NegotiationError.unknownTransport {
            throw SignalingError.mediaFailed("the media connection is gone (its media server stopped): start a new connection")
        } catch let error as NegotiationError {
            throw SignalingError.negotiationFailed(error.description)
        }
        if role != .whep {
            let published = result.published
            await hub.update(meeting: meetingID, participantID: participantID) { $0.tracks = published }
            await hub.setTransport(meeting: meetingID, participantID: participantID, result.transportID)
        }
        for update in result.changedAssignments {
            await hub.send(meeting: meetingID, participantID: update.participantID, .assignments(update.assignments, version: update.version))
        }
        return result
    }

    /// The connection closed or left: the participant leaves and its media stops.
    public func disconnect(_ connection: inout SignalingConnection) async {
        guard let meetingID = connection.meetingID, let participantID = connection.participantID else { return }
        // A participant that reconnected through another node (or whose node is shutting down in a
        // cluster) keeps its place and its media.
        if await hub.leave(meeting: meetingID, participantID: participantID, connection: connection.id) {
            sfu.closeParticipant(meetingID: meetingID, participantID: participantID)
            logger.info("participant left", metadata: ["meeting": "\(meetingID)", "participant": "\(participantID)"])
        }
        connection = SignalingConnection(address: connection.address)
    }

    /// Why a transport closes when its client opened a new peer connection (not a failure).
    static let replacedReason = "replaced by a new connection"

    /// Turns SFU events into signaling; runs for the life of the server.
    public func runEventLoop() async {
        await hub.follow(HubCallbacks(
            blocksChanged: { [weak self] meeting, blocks in await self?.applyBlocks(meeting, blocks) },
            admitted: { [weak self] meeting, participantID, identity, others, sink in
                await self?.sendJoined(meeting: meeting, participantID: participantID, identity: identity, others: others, sink: sink)
            },
            orphanRemoved: { [weak self] meeting, participantID in
                self?.logger.info("participant's node died and it did not come back", metadata: ["meeting": "\(meeting)", "participant": "\(participantID)"])
                self?.sfu.closeParticipant(meetingID: meeting, participantID: participantID)
            },
            adopted: { [weak self] meeting, participantID, transportID in
                self?.logger.info("took over a WHIP publisher whose node died", metadata: ["meeting": "\(meeting)", "participant": "\(participantID)"])
                if let transportID { await self?.sfu.adoptTransport(meetingID: meeting, participantID: participantID, transportID: transportID) }
            }))
        for await event in sfu.events {
            switch event {
            case .assignmentsChanged(let meetingID, let update):
                // Every signaling node hears every SFU event; the one holding the connection tells it.
                await hub.sendLocally(meeting: meetingID, participantID: update.participantID, .assignments(update.assignments, version: update.version))
            case .transportClosed(let meetingID, let participantID, let transportID, let reason):
                logger.info("transport closed", metadata: ["meeting": "\(meetingID)", "participant": "\(participantID)", "reason": "\(reason)"])
                await transportClosed(transportID)
                // Only the participant's current transport: one the client has already replaced
                // (it noticed the dead path before the SFU's heartbeat expired) asks for nothing.
                guard reason != "participant left", reason != Self.replacedReason, await hub.contains(meeting: meetingID, participantID: participantID),
                      let participant = await hub.participant(meeting: meetingID, id: participantID)?.info,
                      await hub.transport(meeting: meetingID, participantID: participantID) == transportID else { break }
                if participant.client == "whip" {
                    // A WHIP publisher has no other channel: losing its media is leaving.
                    await hub.leave(meeting: meetingID, participantID: participantID)
                } else {
                    await hub.update(meeting: meetingID, participantID: participantID) { $0.tracks = [] }
                    await hub.send(meeting: meetingID, participantID: participantID,
                                   .error(code: "media-failed", message: "the media connection was lost: \(reason)"))
                }
            case .layersWanted(let meetingID, let participantID, let mid, let rids):
                await hub.sendLocally(meeting: meetingID, participantID: participantID, .publishLayers(mid: mid, rids: rids))
            case .activeSpeaker(let meetingID, let participantID):
                // Every signaling node hears it from the SFU: each tells its own connections.
                await hub.setActiveSpeaker(meeting: meetingID, participantID: participantID)
            case .videoPaused(let meetingID, let participantID, let mids):
                await hub.sendLocally(meeting: meetingID, participantID: participantID, .videoPaused(mids: mids))
            case .transportConnected(let meetingID, let participantID, let transportID):
                logger.debug("transport connected", metadata: ["meeting": "\(meetingID)", "participant": "\(participantID)", "transport": "\(transportID)"])
            }
        }
    }
}
