import Foundation
import ParleyBase
import ParleyMediaAPI

/// Where a participant's messages go: a web client's WebSocket queue, or nowhere (WHIP).
public typealias MessageSink = @Sendable (OutgoingMessage) -> Void

/// A server message with its JSON text, encoded once however many participants receive it
/// (encoding per recipient was most of the signaling CPU when 200 people joined one meeting).
public struct OutgoingMessage: Sendable {
    public let json: String
    /// The last message of the connection (`meeting-ended`): the socket closes after it.
    public let endsMeeting: Bool

    public init(_ message: ServerMessage) {
        self.json = message.json
        if case .meetingEnded = message { endsMeeting = true } else { endsMeeting = false }
    }

    /// A message another signaling node encoded.
    public init(json: String, endsMeeting: Bool) {
        self.json = json
        self.endsMeeting = endsMeeting
    }
}

/// Who is asking to join, after their credentials were checked (SignalingService, the API).
public struct JoinIdentity: Codable, Sendable, Equatable {
    /// Stable across reconnects: the access token's subject.
    public var subject: String
    public var name: String
    /// Verified by an identity provider, or nil.
    public var email: String?
    /// "web" for the browser client, "whip" for a WHIP publisher.
    public var client: String
    /// Presented a host token of this meeting.
    public var isHost: Bool
    /// Presented a token a host issued: no waiting room.
    public var admitted: Bool
    /// What a removal blocks: the subject, and the invite link or signed-in email used.
    public var credentialKeys: Set<String>

    public init(subject: String, name: String, email: String? = nil, client: String = "web", isHost: Bool = false,
                admitted: Bool = false, credentialKeys: Set<String> = []) {
        self.subject = subject; self.name = name; self.email = email; self.client = client
        self.isHost = isHost; self.admitted = admitted
        self.credentialKeys = credentialKeys.union(["sub:" + subject])
    }
}

public enum JoinOutcome: Sendable, Equatable {
    case joined(participantID: String, others: [ParticipantInfo])
    /// In the waiting room until a host admits (then `joined` is sent) or denies.
    case waiting(participantID: String)
    /// A reconnecting client took its participant back (through this node or another): same id,
    /// same media transport.
    case resumed(participantID: String, transportID: String?, others: [ParticipantInfo])
}

/// What the hub asks of the signaling layer when something happened elsewhere.
public struct HubCallbacks: Sendable {
    /// A settings change from another node changed what the SFU must drop.
    public var blocksChanged: @Sendable (String, [String: Set<BlockedMedia>]) async -> Void
    /// A host on another node let in someone waiting on this node: send them `joined`.
    public var admitted: @Sendable (_ meeting: String, _ participantID: String, JoinIdentity, _ others: [ParticipantInfo], @escaping MessageSink) async -> Void
    /// A participant whose signaling node died did not come back in time: stop its media.
    public var orphanRemoved: @Sendable (_ meeting: String, _ participantID: String) async -> Void
    /// This node took over a WHIP publisher whose node died (its media goes on): watch its transport.
    public var adopted: @Sendable (_ meeting: String, _ participantID: String, _ transportID: String?) async -> Void

    public init(blocksChanged: @escaping @Sendable (String, [String: Set<BlockedMedia>]) async -> Void,
                admitted: @escaping @Sendable (String, String, JoinIdentity, [ParticipantInfo], @escaping MessageSink) async -> Void,
                orphanRemoved: @escaping @Sendable (String, String) async -> Void,
                adopted: @escaping @Sendable (String, String, String?) async -> Void = { _, _, _ in }) {
        self.blocksChanged = blocksChanged; self.admitted = admitted; self.orphanRemoved = orphanRemoved; self.adopted = adopted
    }
}

/// The directory of meetings (settings, hosts, lock, waiting room, removals, reports) and
/// participants, and the fan-out of events to every participant of a meeting. One actor, so every
/// decision sees one state. Alone (`parley serve`) it is the whole truth; in a cluster each
/// signaling node's hub is a replica: admission is decided atomically in the `LiveMeetingStore`,
/// every change and message is published on the meeting's channel, and each node delivers to
/// the connections it holds.
public actor MeetingHub {
    typealias Participant = LiveParticipant

    struct Meeting {
        var settings = MeetingSettings()
        var passwordHash: String?
        var locked = false
        /// Made through the API (kept when empty) rather than on a first join.
        var persistent = false
        var hostSubjects: Set<String> = []
        var coHostSubjects: Set<String> = []
        /// Credential keys of removed participants → their participant id (for allow-rejoin).
        var removed: [String: String] = [:]
        var reports: [ParticipantReport] = []
        var participants: [String: Participant] = [:]
        var waiting: [String: LiveWaiting] = [:]
        /// The connections this node holds (participants and waiting), by participant id.
        var sinks: [String: MessageSink] = [:]
        /// Which connection holds each participant here (a resumed participant's old socket may
        /// close later: it must not take the participant out).
        var holders: [String: String] = [:]
        /// Receiving the meeting's events from other nodes (cluster).
        var following = false
        /// While the first snapshot loads: ids that events removed meanwhile (not to bring back).
        var leftWhileLoading: Set<String>?
        /// Entries whose node died, since when (they are dropped after the reconnect grace).
        var orphanedSince: [String: ContinuousClock.Instant] = [:]
        /// Joins under way here (the meeting stays while they wait for the store).
        var admitting = 0
    }

    private var meetings: [String: Meeting] = [:]

    public let maximumParticipants: Int
    /// Meetings nobody created are made, open, on first join (`make run`'s default).
    public let adhocMeetings: Bool
    public static let maximumReports = 1000
    /// Where created meetings' records outlive this process (Redis), if anywhere.
    private let store: (any MeetingRecordStore)?
    /// Where the live state is shared with other signaling nodes, if anywhere.
    private let live: (any LiveMeetingStore)?
    /// How long a participant whose node died keeps its place for its client to reconnect.
    public let reconnectGrace: Duration
    /// This node's name in participants' entries.
    public nonisolated let nodeID: String
    /// Shutting down in a cluster: connections that close now reconnect elsewhere; nobody leaves.
    private var draining = false
    private var callbacks: HubCallbacks?
    private struct Write: Sendable {
        var id: String
        var record: MeetingRecord
        /// Resumed once this write (and every earlier one) is stored.
        var stored: CheckedContinuation<Void, Never>?
    }
    private let writes: AsyncStream<Write>.Continuation?

    public init(maximumParticipants: Int = 500, adhocMeetings: Bool = true, store: (any MeetingRecordStore)? = nil,
                live: (any LiveMeetingStore)? = nil, reconnectGrace: Duration = .seconds(10)) {
        self.maximumParticipants = maximumParticipants
        self.adhocMeetings = adhocMeetings
        self.store = store
        self.live = live
        self.reconnectGrace = reconnectGrace
        self.nodeID = live?.nodeID ?? "local"
        if let store {
            // One writer, so a meeting's records reach the store in the order they changed.
            let (stream, continuation) = AsyncStream<Write>.makeStream()
            writes = continuation
            Task {
                for await write in stream {
                    await store.save(write.id, write.record)
                    write.stored?.resume()
                }
            }
        } else {
            writes = nil
        }
    }

    /// The writer task ends with the hub (it would wait on its stream for ever otherwise).
    deinit { writes?.finish() }

    /// A created meeting this process has not seen yet (it restarted, or another node made it).
    private func ensureLoaded(_ id: String) async {
        guard meetings[id] == nil, let store, let record = await store.load(id), meetings[id] == nil else { return }
        var meeting = Meeting()
        meeting.apply(record)
        meetings[id] = meeting
    }

    /// Follows what other processes do: record changes (lock, settings, hosts, removals), and in
    /// a cluster the live events of the meetings this node holds connections for, and nodes that
    /// die. Runs until the process ends.
    public func follow(_ callbacks: HubCallbacks) async {
        self.callbacks = callbacks
        if let store {
            let changes = await store.changes()
            Task {
                for await id in changes {
                    if let blocks = await self.reload(id) { await callbacks.blocksChanged(id, blocks) }
                }
            }
        }
        if let live {
            let events = await live.events()
            Task {
                for await event in events { await self.apply(event) }
            }
            Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    await self.dropOrphans()
                }
            }
        }
    }

    private func reload(_ id: String) async -> [String: Set<BlockedMedia>]? {
        guard meetings[id] != nil, let store, let record = await store.load(id), meetings[id] != nil else { return nil }
        guard meetings[id]!.record != record else { return nil }
        meetings[id]!.apply(record)
        // Every node derives the roles from the record and tells its own connections.
        for participantID in meetings[id]!.participants.keys {
            let role = role(of: meetings[id]!.participants[participantID]!.subject, in: id)
            guard meetings[id]!.participants[participantID]!.info.role != role else { continue }
            meetings[id]!.participants[participantID]!.info.role = role
            deliverLocally(id, to: .everyone(except: nil), OutgoingMessage(.participantUpdated(meetings[id]!.participants[participantID]!.info)))
        }
        broadcastState(id)
        return effectiveBlocks(id)
    }

    /// Writes a created meeting's record through to the store.
    private func persist(_ id: String) {
        guard let writes, let meeting = meetings[id], meeting.persistent else { return }
        writes.yield(Write(id: id, record: meeting.record, stored: nil))
    }

    /// The same, returning once it is stored: the API answers only then, since the next request
    /// may reach another node.
    private func persistAndWait(_ id: String) async {
        guard let writes, let meeting = meetings[id], meeting.persistent else { return }
        await withCheckedContinuation { continuation in
            writes.yield(Write(id: id, record: meeting.record, stored: continuation))
        }
    }

    // MARK: Meetings

    public func create(id: String, settings: MeetingSettings, passwordHash: String?, hostSubject: String) async throws(SignalingError) {
        await ensureLoaded(id)
        guard meetings[id] == nil else { throw .badRequest("meeting \(id) exists") }
        var meeting = Meeting()
        meeting.settings = settings
        meeting.passwordHash = passwordHash
        meeting.locked = settings.lockOnStart
        meeting.persistent = true
        meeting.hostSubjects = [hostSubject]
        meetings[id] = meeting
        await persistAndWait(id)
    }

    public func exists(_ id: String) async -> Bool {
        await ensureLoaded(id)
        return meetings[id] != nil
    }

    public func view(_ id: String) async -> MeetingView? {
        await ensureLoaded(id)
        guard let meeting = meetings[id] else { return nil }
        var counts = (participants: meeting.participants.count, waiting: meeting.waiting.count)
        if let live, !meeting.following, let snapshot = await live.snapshot(id) {
            // Nobody here is in it: the counts come from the shared state.
            counts = (snapshot.participants.count, snapshot.waiting.count)
        }
        return MeetingView(id: id, settings: meeting.settings, hasPassword: meeting.passwordHash != nil, locked: meeting.locked,
                           participants: counts.participants, waiting: counts.waiting)
    }

    /// What the credential checks need before a join; nil when the meeting does not exist (an
    /// ad hoc one would be open).
    public func access(_ id: String) async -> (settings: MeetingSettings, passwordHash: String?)? {
        await ensureLoaded(id)
        return meetings[id].map { ($0.settings, $0.passwordHash) }
    }

    /// Applies a settings change; returns participants whose blocked media changed.
    public func update(_ id: String, patch: MeetingSettingsPatch, passwordHash: String??) async throws(SignalingError) -> [String: Set<BlockedMedia>] {
        await ensureLoaded(id)
        guard var meeting = meetings[id] else { throw .meetingNotFound }
        patch.apply(to: &meeting.settings)
        if let passwordHash { meeting.passwordHash = passwordHash }
        if let locked = patch.locked { meeting.locked = locked }
        meetings[id] = meeting
        await persistAndWait(id)
        broadcastState(id)
        return effectiveBlocks(id)
    }

    public func isHost(meeting id: String, subject: String) async -> Bool {
        await ensureLoaded(id)
        guard let meeting = meetings[id] else { return false }
        return meeting.hostSubjects.contains(subject) || meeting.coHostSubjects.contains(subject)
    }

    // MARK: Joining

    /// Lets someone in, or into the waiting room, or refuses: the meeting's state (lock,
    /// removals, capacity, waiting room) decided in one step. `resume` is the participant id a
    /// reconnecting client had: with the same identity it takes that participant back.
    public func admit(meeting id: String, identity: JoinIdentity, sink: MessageSink?, resume: String? = nil,
                      connection: String = RandomToken.make(length: 12)) async throws(SignalingError) -> JoinOutcome {
        await ensureLoaded(id)
        if meetings[id] == nil {
            guard adhocMeetings else { throw .meetingNotFound }
            meetings[id] = Meeting()
        }
        meetings[id]!.admitting += 1
        do {
            let outcome = try await admitHere(meeting: id, identity: identity, sink: sink, resume: resume, holder: connection)
            meetings[id]?.admitting -= 1
            return outcome
        } catch {
            meetings[id]?.admitting -= 1
            releaseIfUnused(id)
            throw error
        }
    }

    private func admitHere(meeting id: String, identity: JoinIdentity, sink: MessageSink?, resume: String?,
                           holder: String) async throws(SignalingError) -> JoinOutcome {
        await startFollowing(id)
        guard let meeting = meetings[id] else { throw .meetingNotFound }
        let isHost = identity.isHost || meeting.hostSubjects.contains(identity.subject)
        let isCoHost = meeting.coHostSubjects.contains(identity.subject)
        let connection = sink ?? { _ in }
        if let resume, let existing = meeting.participants[resume], existing.subject == identity.subject, live == nil {
            meetings[id]!.sinks[resume] = connection
            meetings[id]!.holders[resume] = holder
            return .resumed(participantID: resume, transportID: existing.transportID, others: participants(in: id).filter { $0.id != resume })
        }
        if live == nil {
            if !isHost {
                if !identity.credentialKeys.isDisjoint(with: meeting.removed.keys) { throw .removed }
                if meeting.locked { throw .locked }
            }
            guard meeting.participants.count < maximumParticipants else { throw .meetingFull }
        }
        let participantID = RandomToken.make(length: 10)
        let now = Date().timeIntervalSince1970
        let waits = meeting.settings.waitingRoom && !isHost && !isCoHost && !identity.admitted
        let waiting = LiveWaiting(entry: WaitingParticipant(id: participantID, name: identity.name, email: identity.email), identity: identity,
                                  node: nodeID, since: now)
        let entry = Participant(info: ParticipantInfo(id: participantID, name: identity.name, client: identity.client,
                                                      role: isHost ? .host : isCoHost ? .cohost : .participant,
                                                      audioMuted: false, videoMuted: false, tracks: []),
                                subject: identity.subject, email: identity.email, credentialKeys: identity.credentialKeys,
                                node: nodeID, joinedAt: now)
        if let live {
            let request = AdmissionRequest(meeting: id, subject: identity.subject, credentialKeys: identity.credentialKeys, moderator: isHost || isCoHost,
                                           maximumParticipants: maximumParticipants, resume: resume,
                                           participant: waits ? nil : entry, waiting: waits ? waiting : nil)
            let outcome = try await live.admit(request)
            guard meetings[id] != nil else { throw .meetingNotFound }
            if case .resumed(var existing) = outcome {
                existing.node = nodeID
                meetings[id]!.participants[existing.info.id] = existing
                meetings[id]!.sinks[existing.info.id] = connection
                meetings[id]!.holders[existing.info.id] = holder
                meetings[id]!.orphanedSince[existing.info.id] = nil
                publish(id, change: .participant(existing))
                return .resumed(participantID: existing.info.id, transportID: existing.transportID,
                                others: participants(in: id).filter { $0.id != existing.info.id })
            }
        }
        if waits {
            meetings[id]!.waiting[participantID] = waiting
            meetings[id]!.sinks[participantID] = connection
            meetings[id]!.holders[participantID] = holder
            publish(id, change: .waiting(waiting))
            sendWaitingList(id)
            return .waiting(participantID: participantID)
        }
        if isHost, meetings[id]!.hostSubjects.insert(identity.subject).inserted { persist(id) }
        meetings[id]!.sinks[participantID] = connection
        meetings[id]!.holders[participantID] = holder
        return .joined(participantID: participantID, others: add(entry, meeting: id))
    }

    /// The same rules for a WHEP player, who watches without becoming a participant.
    /// `waitingRoomApplies` false for issuing tokens: a token does not skip the waiting room anyway.
    public func checkViewer(meeting id: String, identity: JoinIdentity, waitingRoomApplies: Bool = true) async throws(SignalingError) {
        await ensureLoaded(id)
        if meetings[id] == nil {
            guard adhocMeetings else { throw .meetingNotFound }
            return
        }
        guard let meeting = meetings[id] else { throw .meetingNotFound }
        if identity.isHost || meeting.hostSubjects.contains(identity.subject) || meeting.coHostSubjects.contains(identity.subject) { return }
        if !identity.credentialKeys.isDisjoint(with: meeting.removed.keys) { throw .removed }
        if meeting.locked { throw .locked }
        if waitingRoomApplies && meeting.settings.waitingRoom && !identity.admitted {
            throw .forbidden("this meeting has a waiting room: a host must issue the player an admitted token (POST /api/meetings/\(id)/tokens)")
        }
    }

    /// The plain join of an open meeting (tests, tools): a fresh identity, no credentials.
    public func join(meeting: String, name: String, client: String, sink: MessageSink?) async throws(SignalingError) -> (String, [ParticipantInfo]) {
        let identity = JoinIdentity(subject: RandomToken.make(length: 16), name: name, client: client, admitted: true)
        guard case .joined(let id, let others) = try await admit(meeting: meeting, identity: identity, sink: sink) else { throw .locked }
        return (id, others)
    }

    /// Puts a participant in and tells everyone else; returns who was there before.
    private func add(_ entry: Participant, meeting id: String) -> [ParticipantInfo] {
        let existing = participants(in: id)
        meetings[id]!.participants[entry.info.id] = entry
        announce(id, change: .participant(entry), .participantJoined(entry.info), to: .everyone(except: entry.info.id))
        return existing
    }

    private func role(of subject: String, in id: String) -> ParticipantRole {
        guard let meeting = meetings[id] else { return .participant }
        if meeting.hostSubjects.contains(subject) { return .host }
        if meeting.coHostSubjects.contains(subject) { return .cohost }
        return .participant
    }

    /// The connection of a participant (or someone waiting) closed or left. Returns whether they
    /// left the meeting: not when another connection or node holds them now (they reconnected),
    /// nor while this node shuts down in a cluster (they reconnect elsewhere and keep their place).
    /// `connection` names the closing connection (nil: whoever holds the participant).
    @discardableResult
    public func leave(meeting id: String, participantID: String, connection: String? = nil) -> Bool {
        guard meetings[id] != nil else { return false }
        if let connection, let holder = meetings[id]!.holders[participantID], holder != connection { return false }
        meetings[id]!.sinks[participantID] = nil
        meetings[id]!.holders[participantID] = nil
        defer { releaseIfUnused(id) }
        if draining && live != nil { return false }
        if let waiting = meetings[id]!.waiting[participantID] {
            guard waiting.node == nodeID else { return false }
            meetings[id]!.waiting[participantID] = nil
            publish(id, change: .waitingLeft(participantID))
            sendWaitingList(id)
            return true
        }
        guard let participant = meetings[id]!.participants[participantID], participant.node == nodeID else { return false }
        removeParticipant(participant, meeting: id)
        return true
    }

    /// Ends a participant wherever its connection is: a WHIP session's `DELETE`, which any
    /// signaling node may receive.
    @discardableResult
    public func end(meeting id: String, participantID: String) async -> Bool {
        if leave(meeting: id, participantID: participantID) { return true }
        guard live != nil, !draining else { return false }
        await ensureLoaded(id)
        if meetings[id] == nil { meetings[id] = Meeting() }
        meetings[id]!.admitting += 1
        await startFollowing(id)
        meetings[id]?.admitting -= 1
        defer { releaseIfUnused(id) }
        guard let participant = meetings[id]?.participants[participantID] else { return false }
        removeParticipant(participant, meeting: id)
        return true
    }

    /// Takes a participant out wherever its connection is, and tells everyone.
    private func removeParticipant(_ participant: Participant, meeting id: String) {
        meetings[id]!.participants[participant.info.id] = nil
        announce(id, change: .participantLeft(participant.info.id, node: participant.node), .participantLeft(participantID: participant.info.id),
                 to: .everyone(except: nil))
    }

    /// A meeting without connections here: stop following it (cluster), and forget an ad hoc one.
    private func releaseIfUnused(_ id: String) {
        guard let meeting = meetings[id], meeting.sinks.isEmpty, meeting.admitting == 0 else { return }
        if meeting.following, let live {
            meetings[id]!.following = false
            meetings[id]!.participants = [:]
            meetings[id]!.waiting = [:]
            meetings[id]!.orphanedSince = [:]
            Task { await live.unfollow(id) }
        }
        // Ad hoc meetings go when the last person leaves; created ones stay.
        if !meeting.persistent, meetings[id]!.participants.isEmpty, meetings[id]!.waiting.isEmpty { meetings[id] = nil }
    }

    // MARK: Waiting room

    public enum WaitingDecision: Sendable { case admit, deny }

    /// A host's decision on one person (or everyone, `participantID` nil); returns who was let in
    /// through this node, with what they must be told (the caller sends `joined`). People waiting
    /// on other nodes are told by their node.
    public func decide(meeting id: String, participantID: String?, _ decision: WaitingDecision) throws(SignalingError)
        -> [(participantID: String, identity: JoinIdentity, others: [ParticipantInfo], sink: MessageSink?)] {
        guard let meeting = meetings[id] else { throw .meetingNotFound }
        let chosen = participantID.map { [$0] } ?? waitingList(id).map(\.id)
        if let participantID, meeting.waiting[participantID] == nil { throw .badRequest("\(participantID) is not waiting") }
        var admitted: [(String, JoinIdentity, [ParticipantInfo], MessageSink?)] = []
        for waitingID in chosen {
            guard let waiting = meetings[id]?.waiting.removeValue(forKey: waitingID) else { continue }
            publish(id, change: .waitingLeft(waitingID))
            switch decision {
            case .admit:
                let identity = waiting.identity
                let entry = Participant(info: ParticipantInfo(id: waitingID, name: identity.name, client: identity.client, role: role(of: identity.subject, in: id),
                                                              audioMuted: false, videoMuted: false, tracks: []),
                                        subject: identity.subject, email: identity.email, credentialKeys: identity.credentialKeys,
                                        node: waiting.node, joinedAt: Date().timeIntervalSince1970)
                let others = add(entry, meeting: id)
                if waiting.node == nodeID {
                    admitted.append((waitingID, identity, others, meetings[id]!.sinks[waitingID]))
                } else {
                    publish(id, change: .admitted(waitingID))
                }
            case .deny:
                send(meeting: id, participantID: waitingID, .error(code: SignalingError.denied.code, message: SignalingError.denied.description))
            }
        }
        sendWaitingList(id)
        return admitted
    }

    public func waitingList(_ id: String) -> [WaitingParticipant] {
        guard let meeting = meetings[id] else { return [] }
        return meeting.waiting.values.sorted { ($0.since, $0.entry.id) < ($1.since, $1.entry.id) }.map(\.entry)
    }

    private func sendWaitingList(_ id: String) {
        deliver(id, to: .moderators, .waitingRoom(waitingList(id)))
    }

    /// The rules every participant's client shows.
    public func state(_ id: String) -> MeetingStateView {
        let meeting = meetings[id]
        return MeetingStateView(locked: meeting?.locked ?? false, hostsOnlyScreenShare: meeting?.settings.hostsOnlyScreenShare ?? false,
                                waitingRoom: meeting?.settings.waitingRoom ?? false)
    }

    /// Tells this node's connections the meeting's rules (other nodes do the same when they
    /// reload the record).
    private func broadcastState(_ id: String) {
        guard meetings[id] != nil else { return }
        let state = state(id)
        deliverLocally(id, to: .everyone(except: nil), OutgoingMessage(.meetingState(locked: state.locked, hostsOnlyScreenShare: state.hostsOnlyScreenShare,
                                                                                      waitingRoom: state.waitingRoom)))
    }

    // MARK: Host controls

    public func participant(meeting: String, id: String) -> (info: ParticipantInfo, subject: String, email: String?)? {
        meetings[meeting]?.participants[id].map { ($0.info, $0.subject, $0.email) }
    }

    /// Whether this participant may use host controls.
    public func isModerator(meeting: String, participantID: String) -> Bool {
        guard let role = meetings[meeting]?.participants[participantID]?.info.role else { return false }
        return role != .participant
    }

    public func setLocked(_ id: String, _ locked: Bool) {
        guard meetings[id] != nil else { return }
        meetings[id]!.locked = locked
        persist(id)
        broadcastState(id)
    }

    public func setHostsOnlyScreenShare(_ id: String, _ value: Bool) -> [String: Set<BlockedMedia>] {
        guard meetings[id] != nil else { return [:] }
        meetings[id]!.settings.hostsOnlyScreenShare = value
        persist(id)
        broadcastState(id)
        return effectiveBlocks(id)
    }

    /// A host mutes or stops someone's media (participantID nil: everyone but the hosts). Returns
    /// the participants whose blocked media changed, for the SFU.
    public func block(meeting id: String, participantID: String?, _ media: BlockedMedia, by host: String) -> [String: Set<BlockedMedia>] {
        guard let meeting = meetings[id] else { return [:] }
        let targets = participantID.map { [$0] } ?? participants(in: id).filter { $0.role == .participant }.map(\.id)
        for target in targets where meeting.participants[target] != nil {
            send(meeting: id, participantID: target, .moderated(action: media == .audio ? "mute-audio" : "stop-video", by: host))
            modify(meeting: id, participantID: target) { entry in
                entry.hostBlocked.insert(media)
                if media == .audio { entry.info.audioMuted = true } else { entry.info.videoMuted = true }
            }
        }
        return effectiveBlocks(id)
    }

    /// The participant's own mute switch. Unmuting lifts a host's block only if the meeting allows it.
    public func setOwnMute(meeting id: String, participantID: String, kind: MediaKind, muted: Bool) throws(SignalingError) -> [String: Set<BlockedMedia>] {
        guard let participant = meetings[id]?.participants[participantID] else { throw .notJoined }
        let media: BlockedMedia = kind == .audio ? .audio : .video
        let liftsBlock = !muted && participant.hostBlocked.contains(media)
        if liftsBlock, !meetings[id]!.settings.allowSelfUnmute { throw .forbidden("a host muted you; ask a host to unmute you") }
        modify(meeting: id, participantID: participantID) { entry in
            if liftsBlock { entry.hostBlocked.remove(media) }
            if kind == .audio { entry.info.audioMuted = muted } else { entry.info.videoMuted = muted }
        }
        return effectiveBlocks(id)
    }

    /// A host lifts a block it set.
    public func unblock(meeting id: String, participantID: String, _ media: BlockedMedia) -> [String: Set<BlockedMedia>] {
        guard meetings[id]?.participants[participantID] != nil else { return [:] }
        modify(meeting: id, participantID: participantID) { $0.hostBlocked.remove(media) }
        send(meeting: id, participantID: participantID, .moderated(action: media == .audio ? "unmute-audio-allowed" : "start-video-allowed", by: ""))
        return effectiveBlocks(id)
    }

    /// What the SFU must drop for each participant: host blocks, and screen shares of
    /// non-hosts when the meeting allows only hosts to share.
    public func effectiveBlocks(_ id: String) -> [String: Set<BlockedMedia>] {
        guard let meeting = meetings[id] else { return [:] }
        var blocks: [String: Set<BlockedMedia>] = [:]
        for (participantID, participant) in meeting.participants {
            var blocked = participant.hostBlocked
            if meeting.settings.hostsOnlyScreenShare && participant.info.role == .participant { blocked.insert(.screen) }
            blocks[participantID] = blocked
        }
        return blocks
    }

    public func setCoHost(meeting id: String, participantID: String, _ isCoHost: Bool) throws(SignalingError) {
        guard let participant = meetings[id]?.participants[participantID] else { throw .badRequest("no participant \(participantID)") }
        guard participant.info.role != .host else { throw .badRequest("\(participant.info.name) is a host") }
        if isCoHost { meetings[id]!.coHostSubjects.insert(participant.subject) } else { meetings[id]!.coHostSubjects.remove(participant.subject) }
        persist(id)
        modify(meeting: id, participantID: participantID) { $0.info.role = isCoHost ? .cohost : .participant }
        if isCoHost { send(meeting: id, participantID: participantID, .waitingRoom(waitingList(id))) }
    }

    /// Takes someone out of the meeting, wherever their connection is, and tells them (their
    /// socket closes); their credentials cannot bring them back until a host allows it.
    public func remove(meeting id: String, participantID: String, by host: String) throws(SignalingError) {
        guard let participant = meetings[id]?.participants[participantID] else { throw .badRequest("no participant \(participantID)") }
        guard participant.info.role != .host else { throw .forbidden("a host cannot be removed") }
        for key in participant.credentialKeys { meetings[id]!.removed[key] = participantID }
        persist(id)
        send(meeting: id, participantID: participantID, .moderated(action: "removed", by: host))
        send(meeting: id, participantID: participantID, .meetingEnded(reason: "a host removed you from this meeting"))
        removeParticipant(participant, meeting: id)
    }

    /// Lets a removed participant (by the id they had) come back.
    public func allowRejoin(meeting id: String, participantID: String) throws(SignalingError) {
        guard let meeting = meetings[id], meeting.removed.values.contains(participantID) else {
            throw .badRequest("\(participantID) was not removed from this meeting")
        }
        meetings[id]!.removed = meeting.removed.filter { $0.value != participantID }
        persist(id)
    }

    // MARK: Reports

    public func report(meeting id: String, reporterID: String, reportedID: String, reason: String) throws(SignalingError) {
        guard let meeting = meetings[id], let reporter = meeting.participants[reporterID] else { throw .notJoined }
        guard let reported = meeting.participants[reportedID] else { throw .badRequest("no participant \(reportedID)") }
        guard reporterID != reportedID else { throw .badRequest("you cannot report yourself") }
        let report = ParticipantReport(meeting: id, reporterID: reporterID, reporterName: reporter.info.name, reportedID: reportedID,
                                       reportedName: reported.info.name, reason: reason, at: Date())
        meetings[id]!.reports.append(report)
        if meetings[id]!.reports.count > Self.maximumReports { meetings[id]!.reports.removeFirst() }
        persist(id)
        deliver(id, to: .moderators, .reported(report))
    }

    public func reports(meeting id: String) async -> [ParticipantReport] {
        await ensureLoaded(id)
        return meetings[id]?.reports ?? []
    }

    public func allReports() -> [ParticipantReport] {
        meetings.values.flatMap(\.reports).sorted { $0.at < $1.at }
    }

    // MARK: Participants and fan-out

    /// Everyone in the meeting, in the order they joined.
    public func participants(in meeting: String) -> [ParticipantInfo] {
        guard let meeting = meetings[meeting] else { return [] }
        return meeting.participants.values.sorted { ($0.joinedAt, $0.info.id) < ($1.joinedAt, $1.info.id) }.map(\.info)
    }

    /// Whether this node knows that `participantID` was removed from the meeting (and is kept out).
    public func hasRemoved(meeting: String, participantID: String) -> Bool {
        meetings[meeting]?.removed.values.contains(participantID) ?? false
    }

    /// Whether this participant is in the meeting through this node (and through this
    /// connection, when one is named).
    public func contains(meeting: String, participantID: String, connection: String? = nil) -> Bool {
        guard meetings[meeting]?.participants[participantID]?.node == nodeID else { return false }
        guard let connection, let holder = meetings[meeting]?.holders[participantID] else { return true }
        return holder == connection
    }

    /// Applies a change to what every client sees of a participant, and tells everyone if it changed anything.
    public func update(meeting: String, participantID: String, _ change: @Sendable (inout ParticipantInfo) -> Void) {
        modify(meeting: meeting, participantID: participantID) { change(&$0.info) }
    }

    /// Remembers a participant's media transport (a reconnect through another node keeps it).
    public func setTransport(meeting: String, participantID: String, _ transportID: String?) {
        modify(meeting: meeting, participantID: participantID) { $0.transportID = transportID }
    }

    /// Changes a participant's entry; other nodes get the new entry, and every client the new
    /// info if what clients see changed.
    private func modify(meeting id: String, participantID: String, _ change: (inout Participant) -> Void) {
        guard var participant = meetings[id]?.participants[participantID] else { return }
        let before = participant
        change(&participant)
        guard participant != before else { return }
        meetings[id]!.participants[participantID] = participant
        if participant.info != before.info {
            announce(id, change: .participant(participant), .participantUpdated(participant.info), to: .everyone(except: nil))
        } else {
            publish(id, change: .participant(participant))
        }
    }

    /// A message for one participant (or someone waiting), wherever their connection is.
    public func send(meeting: String, participantID: String, _ message: ServerMessage) {
        deliver(meeting, to: .participant(participantID), message)
    }

    /// A message for this node's connection of a participant only (the SFU's events reach every node).
    public func sendLocally(meeting: String, participantID: String, _ message: ServerMessage) {
        deliverLocally(meeting, to: .participant(participantID), OutgoingMessage(message))
    }

    /// Who speaks now in each meeting (the SFU says when it changes; joiners are told at once).
    private var activeSpeakers: [String: String] = [:]

    public func setActiveSpeaker(meeting: String, participantID: String) {
        activeSpeakers[meeting] = participantID
        broadcastLocally(meeting: meeting, .activeSpeaker(participantID: participantID))
    }

    public func activeSpeaker(meeting: String) -> String? {
        guard let speaker = activeSpeakers[meeting], meetings[meeting]?.participants[speaker] != nil else { return nil }
        return speaker
    }

    /// A message for this node's connections in a meeting only (the SFU's events reach every node).
    public func broadcastLocally(meeting: String, _ message: ServerMessage) {
        deliverLocally(meeting, to: .everyone(except: nil), OutgoingMessage(message))
    }

    public func broadcast(meeting: String, _ message: ServerMessage, except: String?) {
        deliver(meeting, to: .everyone(except: except), message)
    }

    /// Delivers to the connections here and, in a cluster, through the meeting's channel to the
    /// other nodes' (unless the one recipient is here).
    private func deliver(_ id: String, to recipients: MeetingEvent.Recipients, _ message: ServerMessage) {
        guard let meeting = meetings[id] else { return }
        let outgoing = OutgoingMessage(message)
        deliverLocally(id, to: recipients, outgoing)
        if case .participant(let target) = recipients, meeting.sinks[target] != nil { return }
        publish(id, delivery: MeetingEvent.Delivery(to: recipients, json: outgoing.json, endsMeeting: outgoing.endsMeeting))
    }

    /// A change and the message that tells clients about it, here and on the other nodes, as one event.
    private func announce(_ id: String, change: MeetingEvent.Change, _ message: ServerMessage, to recipients: MeetingEvent.Recipients) {
        let outgoing = OutgoingMessage(message)
        deliverLocally(id, to: recipients, outgoing)
        publish(id, change: change, delivery: MeetingEvent.Delivery(to: recipients, json: outgoing.json, endsMeeting: outgoing.endsMeeting))
    }

    private func deliverLocally(_ id: String, to recipients: MeetingEvent.Recipients, _ outgoing: OutgoingMessage) {
        guard let meeting = meetings[id] else { return }
        switch recipients {
        case .participant(let target):
            meeting.sinks[target]?(outgoing)
        case .everyone(let except):
            for (participantID, sink) in meeting.sinks where participantID != except && meeting.participants[participantID] != nil { sink(outgoing) }
        case .moderators:
            for (participantID, sink) in meeting.sinks where (meeting.participants[participantID]?.info.role ?? .participant) != .participant {
                sink(outgoing)
            }
        }
    }

    private func publish(_ id: String, change: MeetingEvent.Change? = nil, delivery: MeetingEvent.Delivery? = nil) {
        guard let live, meetings[id]?.following == true else { return }
        live.publish(MeetingEvent(origin: nodeID, meeting: id, change: change, delivery: delivery))
    }

    /// Tells every participant of every meeting that it ended (shutdown). In a cluster the
    /// meetings go on: connections close, clients reconnect through another node and keep their place.
    public func endAll(reason: String) {
        if live != nil {
            draining = true
            return
        }
        for id in meetings.keys {
            deliverLocally(id, to: .everyone(except: nil), OutgoingMessage(.meetingEnded(reason: reason)))
            for waitingID in meetings[id]!.waiting.keys { deliverLocally(id, to: .participant(waitingID), OutgoingMessage(.meetingEnded(reason: reason))) }
        }
    }

    public var meetingCount: Int { meetings.count }
    public var participantCount: Int { meetings.values.reduce(0) { $0 + $1.participants.count } }
    public var connectionCount: Int { meetings.values.reduce(0) { $0 + $1.sinks.count } }

    // MARK: Cluster replica

    /// Starts receiving a meeting's events and loads who is in it (before this node admits anyone).
    private func startFollowing(_ id: String) async {
        guard let live, meetings[id]?.following == false else { return }
        meetings[id]!.following = true
        meetings[id]!.leftWhileLoading = []
        await live.follow(id)
        let snapshot = await live.snapshot(id)
        guard meetings[id] != nil else { return }
        let skip = meetings[id]!.leftWhileLoading ?? []
        meetings[id]!.leftWhileLoading = nil
        guard let snapshot else { return }
        // Entries events brought meanwhile are newer than the snapshot.
        for participant in snapshot.participants where meetings[id]!.participants[participant.info.id] == nil && !skip.contains(participant.info.id) {
            meetings[id]!.participants[participant.info.id] = participant
        }
        for waiting in snapshot.waiting where meetings[id]!.waiting[waiting.entry.id] == nil && !skip.contains(waiting.entry.id) {
            meetings[id]!.waiting[waiting.entry.id] = waiting
        }
    }

    /// Another node's event: its change to the replica, then its message to the connections here.
    private func apply(_ storeEvent: LiveStoreEvent) async {
        guard case .meeting(let event) = storeEvent else {
            await resynchronize()
            return
        }
        let id = event.meeting
        guard meetings[id]?.following == true else { return }
        switch event.change {
        case .participant(let entry)?:
            let previous = meetings[id]!.participants[entry.info.id]
            meetings[id]!.participants[entry.info.id] = entry
            meetings[id]!.orphanedSince[entry.info.id] = nil
            // It reconnected through another node: the connection here is stale.
            if previous?.node == nodeID && entry.node != nodeID {
                meetings[id]!.sinks[entry.info.id] = nil
                meetings[id]!.holders[entry.info.id] = nil
            }
        case .participantLeft(let participantID, let node)?:
            if meetings[id]!.participants[participantID]?.node == node { meetings[id]!.participants[participantID] = nil }
            meetings[id]!.leftWhileLoading?.insert(participantID)
        case .waiting(let waiting)?:
            meetings[id]!.waiting[waiting.entry.id] = waiting
        case .waitingLeft(let participantID)?:
            meetings[id]!.waiting[participantID] = nil
            meetings[id]!.leftWhileLoading?.insert(participantID)
        case .admitted(let participantID)?:
            if let entry = meetings[id]!.participants[participantID], entry.node == nodeID, let sink = meetings[id]!.sinks[participantID] {
                let identity = JoinIdentity(subject: entry.subject, name: entry.info.name, email: entry.email, client: entry.info.client,
                                            admitted: true, credentialKeys: entry.credentialKeys)
                let others = participants(in: id).filter { $0.id != participantID }
                await callbacks?.admitted(id, participantID, identity, others, sink)
            }
        case nil:
            break
        }
        if let delivery = event.delivery, meetings[id] != nil {
            deliverLocally(id, to: delivery.to, OutgoingMessage(json: delivery.json, endsMeeting: delivery.endsMeeting))
        }
    }

    /// The store's subscription came back after a break (a Redis restart): this node writes back
    /// what it holds — its own participants, its waiting people, the records — in case Redis lost
    /// its data, then reloads everyone else.
    private func resynchronize() async {
        guard let live else { return }
        for id in meetings.keys { persist(id) }
        for id in meetings.keys where meetings[id]?.following == true {
            let mine = meetings[id]!.participants.values.filter { $0.node == nodeID }
            let mineWaiting = meetings[id]!.waiting.values.filter { $0.node == nodeID }
            for participant in mine { publish(id, change: .participant(participant)) }
            for waiting in mineWaiting { publish(id, change: .waiting(waiting)) }
            guard let snapshot = await live.snapshot(id), meetings[id]?.following == true else { continue }
            var participants = Dictionary(snapshot.participants.map { ($0.info.id, $0) }, uniquingKeysWith: { _, last in last })
            var waiting = Dictionary(snapshot.waiting.map { ($0.entry.id, $0) }, uniquingKeysWith: { _, last in last })
            for participant in mine where participants[participant.info.id]?.node ?? nodeID == nodeID { participants[participant.info.id] = participant }
            for entry in mineWaiting { waiting[entry.entry.id] = entry }
            meetings[id]!.participants = participants
            meetings[id]!.waiting = waiting
        }
    }

    /// Participants and waiting people whose signaling node died (or who this node holds no
    /// connection for) and who did not reconnect within the grace: every node takes them out of
    /// its replica and tells its own connections; the store entry goes once.
    private func dropOrphans() async {
        guard let live, let alive = await live.liveNodes() else { return }
        let now = ContinuousClock.now
        for id in Array(meetings.keys) where meetings[id]?.following == true {
            let meeting = meetings[id]!
            func orphaned(_ participantID: String, node: String) -> Bool {
                node == nodeID ? meeting.sinks[participantID] == nil && !draining : !alive.contains(node)
            }
            let candidates = meeting.participants.values.filter { orphaned($0.info.id, node: $0.node) }.map { ($0.info.id, $0.node, false) }
                + meeting.waiting.values.filter { orphaned($0.entry.id, node: $0.node) }.map { ($0.entry.id, $0.node, true) }
            meetings[id]!.orphanedSince = meeting.orphanedSince.filter { entry in candidates.contains { $0.0 == entry.key } }
            for (participantID, node, isWaiting) in candidates {
                guard let since = meetings[id]!.orphanedSince[participantID] else {
                    meetings[id]!.orphanedSince[participantID] = now
                    continue
                }
                guard now - since >= reconnectGrace else { continue }
                meetings[id]!.orphanedSince[participantID] = nil
                if !isWaiting, node != nodeID, meetings[id]!.participants[participantID]?.info.client == "whip" {
                    // A WHIP publisher has no client to reconnect, and its media still flows: one
                    // live node takes it over (the others hear of it) rather than ending it.
                    guard await live.adopt(meeting: id, participantID: participantID, from: node),
                          var adopted = meetings[id]?.participants[participantID], adopted.node == node else { continue }
                    adopted.node = nodeID
                    meetings[id]!.participants[participantID] = adopted
                    meetings[id]!.sinks[participantID] = { _ in }
                    publish(id, change: .participant(adopted))
                    await callbacks?.adopted(id, participantID, adopted.transportID)
                    continue
                }
                live.removeOrphan(meeting: id, participantID: participantID, node: node)
                if isWaiting {
                    meetings[id]!.waiting[participantID] = nil
                    deliverLocally(id, to: .moderators, OutgoingMessage(.waitingRoom(waitingList(id))))
                } else {
                    meetings[id]!.participants[participantID] = nil
                    deliverLocally(id, to: .everyone(except: nil), OutgoingMessage(.participantLeft(participantID: participantID)))
                    await callbacks?.orphanRemoved(id, participantID)
                }
            }
        }
    }
}

/// What of a created meeting outlives the process: settings, password hash, lock, hosts,
/// removals and reports (participants and the waiting room are live connections).
public struct MeetingRecord: Codable, Sendable, Equatable {
    public var settings: MeetingSettings
    public var passwordHash: String?
    public var locked: Bool
    public var hostSubjects: Set<String>
    public var coHostSubjects: Set<String>
    public var removed: [String: String]
    public var reports: [ParticipantReport]
}

/// Keeps created meetings' records (Redis in a cluster).
public protocol MeetingRecordStore: Sendable {
    func load(_ id: String) async -> MeetingRecord?
    func save(_ id: String, _ record: MeetingRecord) async
    /// Ids of meetings that other processes changed (a host locked it through another node).
    func changes() async -> AsyncStream<String>
}

extension MeetingHub.Meeting {
    var record: MeetingRecord {
        MeetingRecord(settings: settings, passwordHash: passwordHash, locked: locked, hostSubjects: hostSubjects, coHostSubjects: coHostSubjects,
                      removed: removed, reports: reports)
    }

    mutating func apply(_ record: MeetingRecord) {
        settings = record.settings
        passwordHash = record.passwordHash
        locked = record.locked
        persistent = true
        hostSubjects = record.hostSubjects
        coHostSubjects = record.coHostSubjects
        removed = record.removed
        reports = record.reports
    }
}
