import Foundation
import ParleyBase
import ParleyMediaAPI

/// Where a participant's messages go: a web client's WebSocket queue, or nowhere (WHIP).
public typealias MessageSink = @Sendable (OutgoingMessage) -> Void

/// A server message with its JSON text, encoded once however many participants receive it
/// (encoding per recipient was most of the signaling CPU when 200 people joined one meeting).
public struct OutgoingMessage: Sendable, Equatable {
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

/// The directory of meetings and the fan-out of their events: the actor that holds each
/// `Meeting` value, runs its rules and applies the effects they return (deliveries to this node's
/// connections, events for the live store, record writes, the signaling layer's hooks). The same
/// code runs alone (`parley serve`: `LocalLiveMeetingStore`, `LocalMeetingRecordStore`) and in a
/// cluster (Redis stores: admission decided atomically there, every change published on the
/// meeting's channel, each node delivering to the connections it holds). Rules never await; the
/// awaits sit between them here, and each re-reads the meeting after it.
public actor MeetingHub {
    private var meetings: [String: Meeting] = [:]

    public let maximumParticipants: Int
    /// Meetings nobody created are made, open, on first join (`make run`'s default).
    public let adhocMeetings: Bool
    public static let maximumReports = 1000
    /// Where created meetings' records are kept (Redis in a cluster, nowhere alone).
    private let store: any MeetingRecordStore
    /// Where the live state is (Redis, shared with the other signaling nodes, or this process).
    private let live: any LiveMeetingStore
    /// How long a participant whose node died keeps its place for its client to reconnect.
    public let reconnectGrace: Duration
    /// This node's name in participants' entries.
    public nonisolated let nodeID: String
    /// The control plane's time: wall time for people, monotonic for graces and the sweep.
    public nonisolated let clock: any ServiceClock
    /// Shutting down in a cluster: connections that close now reconnect elsewhere; nobody leaves.
    private var draining = false
    private var callbacks: HubCallbacks?
    private struct Write: Sendable {
        var id: String
        /// Nil: nothing to store, only a mark that everything before it is stored (`flush`).
        var record: MeetingRecord?
        /// Resumed once this write (and every earlier one) is stored.
        var stored: CheckedContinuation<Void, Never>?
    }
    private let writes: AsyncStream<Write>.Continuation

    public init(maximumParticipants: Int = 500, adhocMeetings: Bool = true, store: (any MeetingRecordStore)? = nil,
                live: (any LiveMeetingStore)? = nil, reconnectGrace: Duration = .seconds(10), clock: any ServiceClock = SystemServiceClock()) {
        self.maximumParticipants = maximumParticipants
        self.adhocMeetings = adhocMeetings
        let store = store ?? LocalMeetingRecordStore()
        self.store = store
        self.live = live ?? LocalLiveMeetingStore()
        self.reconnectGrace = reconnectGrace
        self.nodeID = self.live.nodeID
        self.clock = clock
        // One writer, so a meeting's records reach the store in the order they changed.
        let (stream, continuation) = AsyncStream<Write>.makeStream()
        writes = continuation
        Task {
            for await write in stream {
                if let record = write.record { await store.save(write.id, record) }
                write.stored?.resume()
            }
        }
    }

    /// The writer task ends with the hub (it would wait on its stream for ever otherwise).
    deinit { writes.finish() }

    private var context: MeetingContext {
        MeetingContext(nodeID: nodeID, maximumParticipants: maximumParticipants, wallNow: clock.wallNow(), uptime: clock.uptime(),
                       draining: draining, reconnectGrace: reconnectGrace)
    }

    /// Runs a rule on a meeting (nil when there is none) and applies the effects it returns.
    /// A rule that throws changed nothing: the value is written back only after it returns.
    @discardableResult
    private func change<Result, Failure: Error>(_ id: String, _ rule: (inout Meeting) throws(Failure) -> (Result, [MeetingEffect])) throws(Failure) -> Result? {
        guard var meeting = meetings[id] else { return nil }
        let (result, effects) = try rule(&meeting)
        meetings[id] = meeting
        let hooks = apply(effects, meeting: id)
        assert(hooks.isEmpty, "a synchronous rule asked for the signaling layer's hooks")
        return result
    }

    private func change<Failure: Error>(_ id: String, _ rule: (inout Meeting) throws(Failure) -> [MeetingEffect]) throws(Failure) {
        try change(id) { (meeting: inout Meeting) throws(Failure) in ((), try rule(&meeting)) }
    }

    /// Applies effects in order; returns the hooks into the signaling layer, which are awaited (`perform`).
    private func apply(_ effects: [MeetingEffect], meeting id: String) -> [MeetingEffect] {
        var hooks: [MeetingEffect] = []
        for effect in effects {
            switch effect {
            case .deliver(let recipients, let message):
                guard let connections = meetings[id]?.connections else { continue }
                for participantID in recipients { connections[participantID]?.sink(message) }
            case .publish(let change, let delivery):
                live.publish(MeetingEvent(origin: nodeID, meeting: id, change: change, delivery: delivery))
            case .persist(let record):
                writes.yield(Write(id: id, record: record, stored: nil))
            case .removeOrphan(let participantID, let node):
                live.removeOrphan(meeting: id, participantID: participantID, node: node)
            case .unfollow:
                Task { [live] in await live.unfollow(id) }
            case .sendJoined, .stopMedia, .watchAdopted:
                hooks.append(effect)
            }
        }
        return hooks
    }

    /// `apply`, then the hooks it left, awaited in order.
    private func perform(_ effects: [MeetingEffect], meeting id: String) async {
        for hook in apply(effects, meeting: id) {
            guard let callbacks else { continue }
            switch hook {
            case .sendJoined(let participantID, let identity, let others):
                guard let sink = meetings[id]?.connections[participantID]?.sink else { continue }
                await callbacks.admitted(id, participantID, identity, others, sink)
            case .stopMedia(let participantID):
                await callbacks.orphanRemoved(id, participantID)
            case .watchAdopted(let participantID, let transportID):
                await callbacks.adopted(id, participantID, transportID)
            default:
                break
            }
        }
    }

    /// A created meeting this process has not seen yet (it restarted, or another node made it).
    private func ensureLoaded(_ id: String) async {
        guard meetings[id] == nil, let record = await store.load(id), meetings[id] == nil else { return }
        meetings[id] = Meeting(record: record, persistent: true)
    }

    /// Follows what other processes do: record changes (lock, settings, hosts, removals), the
    /// live events of the meetings this node holds connections for, and nodes that die (the
    /// orphan sweep, once a second). Runs until the process ends.
    public func follow(_ callbacks: HubCallbacks) async {
        self.callbacks = callbacks
        let changes = await store.changes()
        Task {
            for await id in changes {
                if let blocks = await self.reload(id) { await callbacks.blocksChanged(id, blocks) }
            }
        }
        let events = await live.events()
        Task {
            for await event in events { await self.apply(event) }
        }
        Task { [clock] in
            while !Task.isCancelled {
                try? await clock.sleep(for: .seconds(1))
                await self.sweepOrphans()
            }
        }
    }

    private func reload(_ id: String) async -> [String: Set<BlockedMedia>]? {
        guard meetings[id] != nil, let record = await store.load(id), var meeting = meetings[id] else { return nil }
        guard let effects = meeting.reload(record) else { return nil }
        meetings[id] = meeting
        await perform(effects, meeting: id)
        return meetings[id]?.effectiveBlocks()
    }

    /// Writes a created meeting's record through and returns once it is stored: the API
    /// answers only then, since the next request may reach another node.
    private func persistAndWait(_ id: String) async {
        guard let meeting = meetings[id], meeting.persistent else { return }
        await withCheckedContinuation { continuation in
            writes.yield(Write(id: id, record: meeting.record, stored: continuation))
        }
    }

    /// Returns once every record written so far is stored.
    public func flush() async {
        await withCheckedContinuation { continuation in
            writes.yield(Write(id: "", record: nil, stored: continuation))
        }
    }

    // MARK: Meetings

    public func create(id: String, settings: MeetingSettings, passwordHash: String?, hostSubject: String) async throws(SignalingError) {
        await ensureLoaded(id)
        guard meetings[id] == nil else { throw .badRequest("meeting \(id) exists") }
        meetings[id] = Meeting(record: MeetingRecord(settings: settings, passwordHash: passwordHash, locked: settings.lockOnStart, hostSubjects: [hostSubject]),
                               persistent: true)
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
        if !meeting.following.isOn, let snapshot = await live.snapshot(id) {
            // Nobody here is in it: the counts come from the shared state.
            counts = (snapshot.participants.count, snapshot.waiting.count)
        }
        guard let meeting = meetings[id] else { return nil }
        return MeetingView(id: id, settings: meeting.record.settings, hasPassword: meeting.record.passwordHash != nil, locked: meeting.record.locked,
                           participants: counts.participants, waiting: counts.waiting)
    }

    /// What the credential checks need before a join; nil when the meeting does not exist (an
    /// ad hoc one would be open).
    public func access(_ id: String) async -> (settings: MeetingSettings, passwordHash: String?)? {
        await ensureLoaded(id)
        return meetings[id].map { ($0.record.settings, $0.record.passwordHash) }
    }

    /// Applies a settings change; returns participants whose blocked media changed.
    public func update(_ id: String, patch: MeetingSettingsPatch, passwordHash: String??) async throws(SignalingError) -> [String: Set<BlockedMedia>] {
        await ensureLoaded(id)
        guard meetings[id] != nil else { throw .meetingNotFound }
        change(id) { $0.update(patch: patch, passwordHash: passwordHash); return [] }
        await persistAndWait(id)
        change(id) { $0.broadcastState() }
        return effectiveBlocks(id)
    }

    public func isHost(meeting id: String, subject: String) async -> Bool {
        await ensureLoaded(id)
        return (meetings[id]?.role(of: subject) ?? .participant) != .participant
    }

    // MARK: Joining

    /// Lets someone in, or into the waiting room, or refuses: the meeting's state (lock,
    /// removals, capacity, waiting room) decided in one step by the live store. `resume` is the
    /// participant id a reconnecting client had: with the same identity it takes that participant back.
    public func admit(meeting id: String, identity: JoinIdentity, sink: MessageSink?, resume: String? = nil,
                      connection: String = RandomToken.make(length: 12)) async throws(SignalingError) -> JoinOutcome {
        await ensureLoaded(id)
        if meetings[id] == nil {
            guard adhocMeetings else { throw .meetingNotFound }
            meetings[id] = Meeting()
        }
        meetings[id]?.admitting += 1
        defer {
            meetings[id]?.admitting -= 1
            releaseIfUnused(id)
        }
        await startFollowing(id)
        guard let meeting = meetings[id] else { throw .meetingNotFound }
        let plan = meeting.planJoin(meeting: id, identity: identity, resume: resume, participantID: RandomToken.make(length: 10), context: context)
        let outcome = try await live.admit(plan.request)
        let context = context
        let joined = change(id) { $0.completeJoin(plan, outcome, connection: Meeting.Connection(sink: sink ?? { _ in }, holder: connection), context: context) }
        guard let joined else { throw .meetingNotFound }
        return joined
    }

    /// The same rules for a WHEP player, who watches without becoming a participant.
    /// `waitingRoomApplies` false for issuing tokens: a token does not skip the waiting room anyway.
    public func checkViewer(meeting id: String, identity: JoinIdentity, waitingRoomApplies: Bool = true) async throws(SignalingError) {
        await ensureLoaded(id)
        guard let meeting = meetings[id] else {
            guard adhocMeetings else { throw .meetingNotFound }
            return
        }
        try meeting.checkViewer(meeting: id, identity: identity, waitingRoomApplies: waitingRoomApplies)
    }

    /// The plain join of an open meeting (tests, tools): a fresh identity, no credentials.
    public func join(meeting: String, name: String, client: String, sink: MessageSink?) async throws(SignalingError) -> (String, [ParticipantInfo]) {
        let identity = JoinIdentity(subject: RandomToken.make(length: 16), name: name, client: client, admitted: true)
        guard case .joined(let id, let others) = try await admit(meeting: meeting, identity: identity, sink: sink) else { throw .locked }
        return (id, others)
    }

    /// The connection of a participant (or someone waiting) closed or left. Returns whether they
    /// left the meeting: not when another connection or node holds them now (they reconnected),
    /// nor while this node shuts down in a cluster (they reconnect elsewhere and keep their place).
    /// `connection` names the closing connection (nil: whoever holds the participant).
    @discardableResult
    public func leave(meeting id: String, participantID: String, connection: String? = nil) -> Bool {
        let context = context
        defer { releaseIfUnused(id) }
        return change(id) { $0.leave(participantID: participantID, connection: connection, context: context) } ?? false
    }

    /// Ends a participant wherever its connection is: a WHIP session's `DELETE`, which any
    /// signaling node may receive.
    @discardableResult
    public func end(meeting id: String, participantID: String) async -> Bool {
        if leave(meeting: id, participantID: participantID) { return true }
        guard !draining else { return false }
        await ensureLoaded(id)
        if meetings[id] == nil { meetings[id] = Meeting() }
        meetings[id]?.admitting += 1
        await startFollowing(id)
        meetings[id]?.admitting -= 1
        defer { releaseIfUnused(id) }
        return change(id) { meeting in
            guard let participant = meeting.participants[participantID] else { return (false, []) }
            return (true, meeting.removeParticipant(participant))
        } ?? false
    }

    /// A meeting without connections here: stop following it, and forget an ad hoc one.
    private func releaseIfUnused(_ id: String) {
        guard var meeting = meetings[id] else { return }
        let (forget, effects) = meeting.release()
        meetings[id] = forget ? nil : meeting
        _ = apply(effects, meeting: id)
    }

    // MARK: Waiting room

    public enum WaitingDecision: Sendable { case admit, deny }

    /// A host's decision on one person (or everyone, `participantID` nil); returns who was let in
    /// through this node, with what they must be told (the caller sends `joined`). People waiting
    /// on other nodes are told by their node.
    public func decide(meeting id: String, participantID: String?, _ decision: WaitingDecision) throws(SignalingError)
        -> [(participantID: String, identity: JoinIdentity, others: [ParticipantInfo], sink: MessageSink?)] {
        let context = context
        guard let admitted = try change(id, { (meeting: inout Meeting) throws(SignalingError) in
            try meeting.decide(participantID: participantID, decision, context: context)
        }) else { throw .meetingNotFound }
        return admitted.map { ($0.participantID, $0.identity, $0.others, meetings[id]?.connections[$0.participantID]?.sink) }
    }

    public func waitingList(_ id: String) -> [WaitingParticipant] {
        meetings[id]?.waitingList() ?? []
    }

    /// The rules every participant's client shows.
    public func state(_ id: String) -> MeetingStateView {
        meetings[id]?.state ?? Meeting().state
    }

    // MARK: Host controls

    public func participant(meeting: String, id: String) -> (info: ParticipantInfo, subject: String, email: String?)? {
        meetings[meeting]?.participants[id].map { ($0.info, $0.subject, $0.email) }
    }

    /// The transport a participant's media is on now, as its last negotiation left it.
    public func transport(meeting: String, participantID: String) -> String? {
        meetings[meeting]?.participants[participantID]?.transportID
    }

    /// Whether this participant may use host controls.
    public func isModerator(meeting: String, participantID: String) -> Bool {
        guard let role = meetings[meeting]?.participants[participantID]?.info.role else { return false }
        return role != .participant
    }

    public func setLocked(_ id: String, _ locked: Bool) {
        change(id) { $0.setLocked(locked) }
    }

    public func setHostsOnlyScreenShare(_ id: String, _ value: Bool) -> [String: Set<BlockedMedia>] {
        change(id) { $0.setHostsOnlyScreenShare(value) }
        return effectiveBlocks(id)
    }

    /// A host mutes or stops someone's media (participantID nil: everyone but the hosts). Returns
    /// the participants whose blocked media changed, for the SFU.
    public func block(meeting id: String, participantID: String?, _ media: BlockedMedia, by host: String) -> [String: Set<BlockedMedia>] {
        change(id) { $0.block(participantID: participantID, media, by: host) }
        return effectiveBlocks(id)
    }

    /// The participant's own mute switch. Unmuting lifts a host's block only if the meeting allows it.
    public func setOwnMute(meeting id: String, participantID: String, kind: MediaKind, muted: Bool) throws(SignalingError) -> [String: Set<BlockedMedia>] {
        guard meetings[id] != nil else { throw .notJoined }
        try change(id) { (meeting: inout Meeting) throws(SignalingError) in try meeting.setOwnMute(participantID: participantID, kind: kind, muted: muted) }
        return effectiveBlocks(id)
    }

    /// A host lifts a block it set.
    public func unblock(meeting id: String, participantID: String, _ media: BlockedMedia) -> [String: Set<BlockedMedia>] {
        change(id) { $0.unblock(participantID: participantID, media) }
        return effectiveBlocks(id)
    }

    /// What the SFU must drop for each participant: host blocks, and screen shares of
    /// non-hosts when the meeting allows only hosts to share.
    public func effectiveBlocks(_ id: String) -> [String: Set<BlockedMedia>] {
        meetings[id]?.effectiveBlocks() ?? [:]
    }

    public func setCoHost(meeting id: String, participantID: String, _ isCoHost: Bool) throws(SignalingError) {
        guard meetings[id] != nil else { throw .badRequest("no participant \(participantID)") }
        try change(id) { (meeting: inout Meeting) throws(SignalingError) in try meeting.setCoHost(participantID: participantID, isCoHost) }
    }

    /// Takes someone out of the meeting, wherever their connection is, and tells them (their
    /// socket closes); their credentials cannot bring them back until a host allows it.
    public func remove(meeting id: String, participantID: String, by host: String) throws(SignalingError) {
        guard meetings[id] != nil else { throw .badRequest("no participant \(participantID)") }
        try change(id) { (meeting: inout Meeting) throws(SignalingError) in try meeting.remove(participantID: participantID, by: host) }
    }

    /// Lets a removed participant (by the id they had) come back.
    public func allowRejoin(meeting id: String, participantID: String) throws(SignalingError) {
        guard meetings[id] != nil else { throw .badRequest("\(participantID) was not removed from this meeting") }
        try change(id) { (meeting: inout Meeting) throws(SignalingError) in try meeting.allowRejoin(participantID: participantID) }
    }

    // MARK: Reports

    public func report(meeting id: String, reporterID: String, reportedID: String, reason: String) throws(SignalingError) {
        guard meetings[id] != nil else { throw .notJoined }
        let context = context
        try change(id) { (meeting: inout Meeting) throws(SignalingError) in
            try meeting.report(meeting: id, reporterID: reporterID, reportedID: reportedID, reason: reason, context: context)
        }
    }

    public func reports(meeting id: String) async -> [ParticipantReport] {
        await ensureLoaded(id)
        return meetings[id]?.record.reports ?? []
    }

    public func allReports() -> [ParticipantReport] {
        meetings.values.flatMap(\.record.reports).sorted { $0.at < $1.at }
    }

    // MARK: Participants and fan-out

    /// Everyone in the meeting, in the order they joined.
    public func participants(in meeting: String) -> [ParticipantInfo] {
        meetings[meeting]?.participantsInOrder() ?? []
    }

    /// Whether this node knows that `participantID` was removed from the meeting (and is kept out).
    public func hasRemoved(meeting: String, participantID: String) -> Bool {
        meetings[meeting]?.record.removed.values.contains(participantID) ?? false
    }

    /// Whether this participant is in the meeting through this node (and through this
    /// connection, when one is named).
    public func contains(meeting: String, participantID: String, connection: String? = nil) -> Bool {
        guard meetings[meeting]?.participants[participantID]?.node == nodeID else { return false }
        guard let connection, let holder = meetings[meeting]?.connections[participantID]?.holder else { return true }
        return holder == connection
    }

    /// Applies a change to what every client sees of a participant, and tells everyone if it changed anything.
    public func update(meeting: String, participantID: String, _ change: @Sendable (inout ParticipantInfo) -> Void) {
        self.change(meeting) { $0.modify(participantID: participantID) { change(&$0.info) } }
    }

    /// Remembers a participant's media transport (a reconnect through another node keeps it).
    public func setTransport(meeting: String, participantID: String, _ transportID: String?) {
        change(meeting) { $0.modify(participantID: participantID) { $0.transportID = transportID } }
    }

    /// A message for one participant (or someone waiting), wherever their connection is.
    public func send(meeting: String, participantID: String, _ message: ServerMessage) {
        change(meeting) { $0.deliver(to: .participant(participantID), message) }
    }

    /// A message for this node's connection of a participant only (the SFU's events reach every node).
    public func sendLocally(meeting: String, participantID: String, _ message: ServerMessage) {
        change(meeting) { $0.deliverLocally(to: .participant(participantID), OutgoingMessage(message)) }
    }

    public func setActiveSpeaker(meeting: String, participantID: String) {
        change(meeting) { meeting in
            meeting.activeSpeaker = participantID
            return meeting.deliverLocally(to: .everyone(except: nil), OutgoingMessage(.activeSpeaker(participantID: participantID)))
        }
    }

    public func activeSpeaker(meeting: String) -> String? {
        guard let meeting = meetings[meeting], let speaker = meeting.activeSpeaker, meeting.participants[speaker] != nil else { return nil }
        return speaker
    }

    /// A message for this node's connections in a meeting only (the SFU's events reach every node).
    public func broadcastLocally(meeting: String, _ message: ServerMessage) {
        change(meeting) { $0.deliverLocally(to: .everyone(except: nil), OutgoingMessage(message)) }
    }

    public func broadcast(meeting: String, _ message: ServerMessage, except: String?) {
        change(meeting) { $0.deliver(to: .everyone(except: except), message) }
    }

    /// Tells every participant of every meeting that it ended (shutdown). In a cluster the
    /// meetings go on: connections close, clients reconnect through another node and keep their place.
    public func endAll(reason: String) {
        if live.isShared {
            draining = true
            return
        }
        for id in meetings.keys { change(id) { $0.endAll(reason: reason) } }
    }

    public var meetingCount: Int { meetings.count }
    public var participantCount: Int { meetings.values.reduce(0) { $0 + $1.participants.count } }
    public var connectionCount: Int { meetings.values.reduce(0) { $0 + $1.connections.count } }

    // MARK: The replica

    /// Starts receiving a meeting's events and loads who is in it (before this node admits anyone).
    private func startFollowing(_ id: String) async {
        guard meetings[id]?.beginFollowing() == true else { return }
        await live.follow(id)
        let snapshot = await live.snapshot(id)
        meetings[id]?.merge(snapshot: snapshot)
    }

    /// Another node's event: its change to the replica, then its message to the connections here.
    private func apply(_ storeEvent: LiveStoreEvent) async {
        guard case .meeting(let event) = storeEvent else {
            await resynchronize()
            return
        }
        guard var meeting = meetings[event.meeting] else { return }
        let effects = meeting.apply(event, context: context)
        meetings[event.meeting] = meeting
        await perform(effects, meeting: event.meeting)
    }

    /// The store's subscription came back after a break (a Redis restart): this node writes back
    /// what it holds — its own participants, its waiting people, the records — in case Redis lost
    /// its data, then reloads everyone else.
    private func resynchronize() async {
        for id in meetings.keys { change(id) { $0.persist } }
        for id in meetings.keys where meetings[id]?.following.isOn == true {
            guard let own = meetings[id]?.ownEntries(nodeID: nodeID) else { continue }
            change(id) { meeting in
                own.participants.flatMap { meeting.publish(MeetingEvent.Change.participant($0)) } + own.waiting.flatMap { meeting.publish(MeetingEvent.Change.waiting($0)) }
            }
            guard let snapshot = await live.snapshot(id), meetings[id]?.following.isOn == true else { continue }
            meetings[id]?.replaceReplica(with: snapshot, keeping: own, nodeID: nodeID)
        }
    }

    /// Participants and waiting people whose signaling node died (or who this node holds no
    /// connection for) and who did not reconnect within the grace: every node takes them out of
    /// its replica and tells its own connections; the store entry goes once. A dead node's WHIP
    /// publisher is taken over by one live node instead.
    func sweepOrphans() async {
        guard let alive = await live.liveNodes() else { return }
        for id in Array(meetings.keys) {
            guard var meeting = meetings[id], meeting.following.isOn else { continue }
            let (effects, adoptions) = meeting.sweepOrphans(alive: alive, context: context)
            meetings[id] = meeting
            await perform(effects, meeting: id)
            for adoption in adoptions {
                guard await live.adopt(meeting: id, participantID: adoption.participantID, from: adoption.node),
                      var meeting = meetings[id] else { continue }
                let effects = meeting.adopted(adoption, context: context)
                meetings[id] = meeting
                await perform(effects, meeting: id)
            }
        }
    }
}
