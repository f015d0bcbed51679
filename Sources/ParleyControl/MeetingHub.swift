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

/// Who is asking to join, after their credentials were checked (SignalingService, the API).
public struct JoinIdentity: Sendable, Equatable {
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
}

/// The embedded, in-memory directory of meetings (settings, hosts, lock, waiting room, removals,
/// reports) and participants, and the fan-out of events to every participant of a meeting. One
/// actor, so every admission decision sees one state (the Redis-backed store comes with issue 5).
public actor MeetingHub {
    struct Participant {
        var info: ParticipantInfo
        var sink: MessageSink?
        var subject: String
        var email: String?
        var credentialKeys: Set<String>
        /// What a host stopped (mute, stop video); the screen rule comes from the settings.
        var hostBlocked: Set<BlockedMedia> = []
    }

    struct Waiting {
        var entry: WaitingParticipant
        var identity: JoinIdentity
        var sink: MessageSink?
    }

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
        var order: [String] = []
        var waiting: [String: Waiting] = [:]
        var waitingOrder: [String] = []
    }

    private var meetings: [String: Meeting] = [:]

    public let maximumParticipants: Int
    /// Meetings nobody created are made, open, on first join (`make run`'s default).
    public let adhocMeetings: Bool
    public static let maximumReports = 1000
    /// Where created meetings' records outlive this process (Redis), if anywhere.
    private let store: (any MeetingRecordStore)?
    private struct Write: Sendable {
        var id: String
        var record: MeetingRecord
        /// Resumed once this write (and every earlier one) is stored.
        var stored: CheckedContinuation<Void, Never>?
    }
    private let writes: AsyncStream<Write>.Continuation?

    public init(maximumParticipants: Int = 500, adhocMeetings: Bool = true, store: (any MeetingRecordStore)? = nil) {
        self.maximumParticipants = maximumParticipants
        self.adhocMeetings = adhocMeetings
        self.store = store
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

    /// A created meeting this process has not seen yet (it restarted, or another node made it).
    private func ensureLoaded(_ id: String) async {
        guard meetings[id] == nil, let store, let record = await store.load(id), meetings[id] == nil else { return }
        var meeting = Meeting()
        meeting.apply(record)
        meetings[id] = meeting
    }

    /// Follows changes other processes make to meetings this one holds (lock, settings, hosts,
    /// removals): the local copy is reloaded, clients are told, and `onBlocksChanged` hears of
    /// screen-sharing rules to enforce.
    public func followChanges(onBlocksChanged: @escaping @Sendable (String, [String: Set<BlockedMedia>]) async -> Void) async {
        guard let store else { return }
        let changes = await store.changes()
        Task {
            for await id in changes {
                if let blocks = await self.reload(id) { await onBlocksChanged(id, blocks) }
            }
        }
    }

    private func reload(_ id: String) async -> [String: Set<BlockedMedia>]? {
        guard meetings[id] != nil, let store, let record = await store.load(id), meetings[id] != nil else { return nil }
        guard meetings[id]!.record != record else { return nil }
        meetings[id]!.apply(record)
        for participantID in meetings[id]!.order {
            let role = role(of: meetings[id]!.participants[participantID]!.subject, in: id)
            update(meeting: id, participantID: participantID) { $0.role = role }
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
        return MeetingView(id: id, settings: meeting.settings, hasPassword: meeting.passwordHash != nil, locked: meeting.locked,
                           participants: meeting.participants.count, waiting: meeting.waiting.count)
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
    /// removals, capacity, waiting room) decided in one step.
    public func admit(meeting id: String, identity: JoinIdentity, sink: MessageSink?) async throws(SignalingError) -> JoinOutcome {
        await ensureLoaded(id)
        if meetings[id] == nil {
            guard adhocMeetings else { throw .meetingNotFound }
            meetings[id] = Meeting()
        }
        guard let meeting = meetings[id] else { throw .meetingNotFound }
        let isHost = identity.isHost || meeting.hostSubjects.contains(identity.subject)
        let isCoHost = meeting.coHostSubjects.contains(identity.subject)
        if !isHost {
            if !identity.credentialKeys.isDisjoint(with: meeting.removed.keys) { throw .removed }
            if meeting.locked { throw .locked }
        }
        guard meeting.participants.count < maximumParticipants else { throw .meetingFull }
        let participantID = RandomToken.make(length: 10)
        if meeting.settings.waitingRoom && !isHost && !isCoHost && !identity.admitted {
            let entry = WaitingParticipant(id: participantID, name: identity.name, email: identity.email)
            meetings[id]!.waiting[participantID] = Waiting(entry: entry, identity: identity, sink: sink)
            meetings[id]!.waitingOrder.append(participantID)
            sendWaitingList(id)
            return .waiting(participantID: participantID)
        }
        if isHost, meetings[id]!.hostSubjects.insert(identity.subject).inserted { persist(id) }
        return .joined(participantID: participantID, others: add(participantID, identity: identity, sink: sink, meeting: id))
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

    private func add(_ participantID: String, identity: JoinIdentity, sink: MessageSink?, meeting id: String) -> [ParticipantInfo] {
        let existing = participants(in: id)
        let info = ParticipantInfo(id: participantID, name: identity.name, client: identity.client, role: role(of: identity.subject, in: id),
                                   audioMuted: false, videoMuted: false, tracks: [])
        meetings[id]!.participants[participantID] = Participant(info: info, sink: sink, subject: identity.subject, email: identity.email,
                                                                credentialKeys: identity.credentialKeys)
        meetings[id]!.order.append(participantID)
        broadcast(meeting: id, .participantJoined(info), except: participantID)
        return existing
    }

    private func role(of subject: String, in id: String) -> ParticipantRole {
        guard let meeting = meetings[id] else { return .participant }
        if meeting.hostSubjects.contains(subject) { return .host }
        if meeting.coHostSubjects.contains(subject) { return .cohost }
        return .participant
    }

    public func leave(meeting id: String, participantID: String) {
        if meetings[id]?.waiting.removeValue(forKey: participantID) != nil {
            meetings[id]?.waitingOrder.removeAll { $0 == participantID }
            sendWaitingList(id)
            dropIfIdle(id)
            return
        }
        guard meetings[id]?.participants.removeValue(forKey: participantID) != nil else { return }
        meetings[id]?.order.removeAll { $0 == participantID }
        broadcast(meeting: id, .participantLeft(participantID: participantID), except: nil)
        dropIfIdle(id)
    }

    /// Ad hoc meetings go when the last person leaves; created ones stay.
    private func dropIfIdle(_ id: String) {
        guard let meeting = meetings[id], !meeting.persistent, meeting.participants.isEmpty, meeting.waiting.isEmpty else { return }
        meetings[id] = nil
    }

    // MARK: Waiting room

    public enum WaitingDecision: Sendable { case admit, deny }

    /// A host's decision on one person (or everyone, `participantID` nil); returns who was let in,
    /// with what they must be told (the caller sends `joined`).
    public func decide(meeting id: String, participantID: String?, _ decision: WaitingDecision) throws(SignalingError)
        -> [(participantID: String, identity: JoinIdentity, others: [ParticipantInfo], sink: MessageSink?)] {
        guard let meeting = meetings[id] else { throw .meetingNotFound }
        let chosen = participantID.map { [$0] } ?? meeting.waitingOrder
        if let participantID, meeting.waiting[participantID] == nil { throw .badRequest("\(participantID) is not waiting") }
        var admitted: [(String, JoinIdentity, [ParticipantInfo], MessageSink?)] = []
        for waitingID in chosen {
            guard let waiting = meetings[id]?.waiting.removeValue(forKey: waitingID) else { continue }
            meetings[id]!.waitingOrder.removeAll { $0 == waitingID }
            switch decision {
            case .admit:
                let others = add(waitingID, identity: waiting.identity, sink: waiting.sink, meeting: id)
                admitted.append((waitingID, waiting.identity, others, waiting.sink))
            case .deny:
                waiting.sink?(OutgoingMessage(.error(code: SignalingError.denied.code, message: SignalingError.denied.description)))
            }
        }
        sendWaitingList(id)
        return admitted
    }

    public func waitingList(_ id: String) -> [WaitingParticipant] {
        guard let meeting = meetings[id] else { return [] }
        return meeting.waitingOrder.compactMap { meeting.waiting[$0]?.entry }
    }

    private func sendWaitingList(_ id: String) {
        let list = waitingList(id)
        sendToHosts(id, .waitingRoom(list))
    }

    private func sendToHosts(_ id: String, _ message: ServerMessage) {
        guard let meeting = meetings[id] else { return }
        let outgoing = OutgoingMessage(message)
        for participant in meeting.participants.values where participant.info.role != .participant { participant.sink?(outgoing) }
    }

    /// The rules every participant's client shows.
    public func state(_ id: String) -> MeetingStateView {
        let meeting = meetings[id]
        return MeetingStateView(locked: meeting?.locked ?? false, hostsOnlyScreenShare: meeting?.settings.hostsOnlyScreenShare ?? false,
                                waitingRoom: meeting?.settings.waitingRoom ?? false)
    }

    private func broadcastState(_ id: String) {
        guard meetings[id] != nil else { return }
        let state = state(id)
        broadcast(meeting: id, .meetingState(locked: state.locked, hostsOnlyScreenShare: state.hostsOnlyScreenShare,
                                             waitingRoom: state.waitingRoom), except: nil)
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
        let targets = participantID.map { [$0] } ?? meeting.order.filter { meeting.participants[$0]?.info.role == .participant }
        for target in targets where meetings[id]!.participants[target] != nil {
            meetings[id]!.participants[target]!.hostBlocked.insert(media)
            meetings[id]!.participants[target]!.sink?(OutgoingMessage(.moderated(action: media == .audio ? "mute-audio" : "stop-video", by: host)))
            update(meeting: id, participantID: target) { info in
                if media == .audio { info.audioMuted = true } else { info.videoMuted = true }
            }
        }
        return effectiveBlocks(id)
    }

    /// The participant's own mute switch. Unmuting lifts a host's block only if the meeting allows it.
    public func setOwnMute(meeting id: String, participantID: String, kind: MediaKind, muted: Bool) throws(SignalingError) -> [String: Set<BlockedMedia>] {
        guard let participant = meetings[id]?.participants[participantID] else { throw .notJoined }
        let media: BlockedMedia = kind == .audio ? .audio : .video
        if !muted, participant.hostBlocked.contains(media) {
            guard meetings[id]!.settings.allowSelfUnmute else { throw .forbidden("a host muted you; ask a host to unmute you") }
            meetings[id]!.participants[participantID]!.hostBlocked.remove(media)
        }
        update(meeting: id, participantID: participantID) { info in
            if kind == .audio { info.audioMuted = muted } else { info.videoMuted = muted }
        }
        return effectiveBlocks(id)
    }

    /// A host lifts a block it set.
    public func unblock(meeting id: String, participantID: String, _ media: BlockedMedia) -> [String: Set<BlockedMedia>] {
        guard meetings[id]?.participants[participantID] != nil else { return [:] }
        meetings[id]!.participants[participantID]!.hostBlocked.remove(media)
        meetings[id]!.participants[participantID]!.sink?(OutgoingMessage(.moderated(action: media == .audio ? "unmute-audio-allowed" : "start-video-allowed", by: "")))
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
        update(meeting: id, participantID: participantID) { $0.role = isCoHost ? .cohost : .participant }
        if isCoHost { meetings[id]!.participants[participantID]!.sink?(OutgoingMessage(.waitingRoom(waitingList(id)))) }
    }

    /// Takes someone out of the meeting; their credentials cannot bring them back until a host
    /// allows it. Returns their sink so the caller can close the connection.
    public func remove(meeting id: String, participantID: String, by host: String) throws(SignalingError) -> MessageSink? {
        guard let participant = meetings[id]?.participants[participantID] else { throw .badRequest("no participant \(participantID)") }
        guard participant.info.role != .host else { throw .forbidden("a host cannot be removed") }
        for key in participant.credentialKeys { meetings[id]!.removed[key] = participantID }
        persist(id)
        participant.sink?(OutgoingMessage(.moderated(action: "removed", by: host)))
        leave(meeting: id, participantID: participantID)
        return participant.sink
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
        sendToHosts(id, .reported(report))
    }

    public func reports(meeting id: String) async -> [ParticipantReport] {
        await ensureLoaded(id)
        return meetings[id]?.reports ?? []
    }

    public func allReports() -> [ParticipantReport] {
        meetings.values.flatMap(\.reports).sorted { $0.at < $1.at }
    }

    // MARK: Participants and fan-out

    public func participants(in meeting: String) -> [ParticipantInfo] {
        guard let meeting = meetings[meeting] else { return [] }
        return meeting.order.compactMap { meeting.participants[$0]?.info }
    }

    public func contains(meeting: String, participantID: String) -> Bool {
        meetings[meeting]?.participants[participantID] != nil
    }

    /// Applies a change to a participant and tells everyone if it changed anything.
    public func update(meeting: String, participantID: String, _ change: @Sendable (inout ParticipantInfo) -> Void) {
        guard var participant = meetings[meeting]?.participants[participantID] else { return }
        let before = participant.info
        change(&participant.info)
        guard participant.info != before else { return }
        meetings[meeting]?.participants[participantID] = participant
        broadcast(meeting: meeting, .participantUpdated(participant.info), except: nil)
    }

    public func send(meeting: String, participantID: String, _ message: ServerMessage) {
        guard let sink = meetings[meeting]?.participants[participantID]?.sink ?? meetings[meeting]?.waiting[participantID]?.sink else { return }
        sink(OutgoingMessage(message))
    }

    public func broadcast(meeting: String, _ message: ServerMessage, except: String?) {
        guard let participants = meetings[meeting]?.participants,
              participants.contains(where: { $0.key != except && $0.value.sink != nil }) else { return }
        let outgoing = OutgoingMessage(message)
        for (id, participant) in participants where id != except {
            participant.sink?(outgoing)
        }
    }

    /// Tells every participant of every meeting that it ended (shutdown).
    public func endAll(reason: String) {
        for (id, meeting) in meetings {
            broadcast(meeting: id, .meetingEnded(reason: reason), except: nil)
            for waiting in meeting.waiting.values { waiting.sink?(OutgoingMessage(.meetingEnded(reason: reason))) }
        }
    }

    public var meetingCount: Int { meetings.count }
    public var participantCount: Int { meetings.values.reduce(0) { $0 + $1.participants.count } }
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
