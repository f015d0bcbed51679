import Foundation
import ParleyMediaAPI

/// What every rule reads besides the meeting: this node, its limits, the clock's readings now.
struct MeetingContext: Sendable {
    var nodeID: String
    var maximumParticipants: Int
    /// Seconds since 1970: when someone joined or started waiting, when a report was made.
    var wallNow: Double
    /// Monotonic: orphan marks and the reconnect grace.
    var uptime: Duration
    /// Shutting down in a cluster: connections that close now reconnect elsewhere.
    var draining: Bool
    var reconnectGrace: Duration
}

/// One meeting as this node knows it: its record (settings, hosts, lock, removals, reports), who
/// is in and waiting (in a cluster, a replica of the live store's), and the connections this node
/// holds. Its rules change the value and return what must happen because of it
/// (`MeetingEffect`); `MeetingHub` applies that. Nothing here sends, stores, awaits or reads a clock.
struct Meeting: Sendable {
    var record: MeetingRecord
    /// Made through the API (kept when empty) rather than on a first join.
    var persistent: Bool
    var participants: [String: LiveParticipant] = [:]
    var waiting: [String: LiveWaiting] = [:]
    /// This node's connections (participants and waiting people), by participant id.
    var connections: [String: Connection] = [:]
    /// Receiving the meeting's events from the live store (while someone here is in it).
    var following = Following.no
    /// Entries whose node died (or whose connection here is gone), since when.
    var orphanedSince: [String: Duration] = [:]
    /// Joins under way here (the meeting stays while they wait for the store).
    var admitting = 0
    /// Who speaks now, as the SFU said (joiners are told at once).
    var activeSpeaker: String?

    struct Connection: Sendable {
        var sink: MessageSink
        /// Which socket holds the participant (a resumed participant's old socket may close later:
        /// it must not take the participant out); nil for a WHIP publisher taken over from a dead node.
        var holder: String?
    }

    enum Following: Sendable, Equatable {
        case no
        /// The first snapshot is loading: ids that events removed meanwhile are not brought back.
        case loading(leftMeanwhile: Set<String>)
        case yes

        var isOn: Bool { self != .no }
    }

    init(record: MeetingRecord = MeetingRecord(), persistent: Bool = false) {
        self.record = record
        self.persistent = persistent
    }
}

// MARK: Reads

extension Meeting {
    /// Everyone in the meeting, in the order they joined.
    func participantsInOrder() -> [ParticipantInfo] {
        participants.values.sorted { ($0.joinedAt, $0.info.id) < ($1.joinedAt, $1.info.id) }.map(\.info)
    }

    func role(of subject: String) -> ParticipantRole {
        if record.hostSubjects.contains(subject) { return .host }
        if record.coHostSubjects.contains(subject) { return .cohost }
        return .participant
    }

    var state: MeetingStateView {
        MeetingStateView(locked: record.locked, hostsOnlyScreenShare: record.settings.hostsOnlyScreenShare, waitingRoom: record.settings.waitingRoom)
    }

    func waitingList() -> [WaitingParticipant] {
        waiting.values.sorted { ($0.since, $0.entry.id) < ($1.since, $1.entry.id) }.map(\.entry)
    }

    /// What the SFU must drop for each participant: host blocks, and screen shares of
    /// non-hosts when the meeting allows only hosts to share.
    func effectiveBlocks() -> [String: Set<BlockedMedia>] {
        var blocks: [String: Set<BlockedMedia>] = [:]
        for (participantID, participant) in participants {
            var blocked = participant.hostBlocked
            if record.settings.hostsOnlyScreenShare && participant.info.role == .participant { blocked.insert(.screen) }
            blocks[participantID] = blocked
        }
        return blocks
    }

    /// The connections here that a message for `recipients` reaches (sorted, so effects compare).
    func localRecipients(_ recipients: MeetingEvent.Recipients) -> [String] {
        switch recipients {
        case .participant(let target):
            return connections[target] == nil ? [] : [target]
        case .everyone(let except):
            return connections.keys.filter { $0 != except && participants[$0] != nil }.sorted()
        case .moderators:
            return connections.keys.filter { (participants[$0]?.info.role ?? .participant) != .participant }.sorted()
        }
    }

    /// The gate of a WHEP player (or of a token being issued), which watches without joining.
    func checkViewer(meeting id: String, identity: JoinIdentity, waitingRoomApplies: Bool) throws(SignalingError) {
        let moderator = identity.isHost || role(of: identity.subject) != .participant
        try AdmissionRules.viewer(meeting: id, locked: record.locked, removedKeys: record.removed.keys, identity: identity, moderator: moderator,
                                  waitingRoom: waitingRoomApplies && record.settings.waitingRoom)
    }
}

// MARK: Effects the rules share

extension Meeting {
    func deliverLocally(to recipients: MeetingEvent.Recipients, _ message: OutgoingMessage) -> [MeetingEffect] {
        let ids = localRecipients(recipients)
        return ids.isEmpty ? [] : [.deliver(to: ids, message)]
    }

    /// For the other nodes (while this one follows the meeting; the local store keeps its copy too).
    func publish(_ change: MeetingEvent.Change?, _ delivery: MeetingEvent.Delivery? = nil) -> [MeetingEffect] {
        following.isOn ? [.publish(change, delivery)] : []
    }

    /// To the connections here and, through the store, the other nodes' (unless the one recipient is here).
    func deliver(to recipients: MeetingEvent.Recipients, _ message: ServerMessage) -> [MeetingEffect] {
        let outgoing = OutgoingMessage(message)
        let here = deliverLocally(to: recipients, outgoing)
        if case .participant(let target) = recipients, connections[target] != nil { return here }
        return here + publish(nil, MeetingEvent.Delivery(to: recipients, outgoing))
    }

    /// A change and the message that tells clients about it, here and on the other nodes, as one event.
    func announce(_ change: MeetingEvent.Change, _ message: ServerMessage, to recipients: MeetingEvent.Recipients) -> [MeetingEffect] {
        let outgoing = OutgoingMessage(message)
        return deliverLocally(to: recipients, outgoing) + publish(change, MeetingEvent.Delivery(to: recipients, outgoing))
    }

    /// A created meeting's record is written through; an ad hoc one has none.
    var persist: [MeetingEffect] { persistent ? [.persist(record)] : [] }

    /// The rules every client shows, to this node's connections (other nodes do the same when
    /// they reload the record).
    func broadcastState() -> [MeetingEffect] {
        let state = state
        return deliverLocally(to: .everyone(except: nil), OutgoingMessage(.meetingState(locked: state.locked, hostsOnlyScreenShare: state.hostsOnlyScreenShare,
                                                                                        waitingRoom: state.waitingRoom)))
    }

    func sendWaitingList() -> [MeetingEffect] {
        deliver(to: .moderators, .waitingRoom(waitingList()))
    }
}

// MARK: Joining and leaving

/// A join worked out before the store decides: where the person goes and what is asked.
struct JoinPlan: Sendable {
    var isHost: Bool
    var waits: Bool
    var entry: LiveParticipant
    var waitingEntry: LiveWaiting
    var request: AdmissionRequest
}

extension Meeting {
    /// Hosts (by token or by subject) and co-hosts are moderators: neither lock nor removals
    /// apply to them, nor the waiting room, nor does a host-issued admitted token wait.
    func planJoin(meeting id: String, identity: JoinIdentity, resume: String?, participantID: String, context: MeetingContext) -> JoinPlan {
        let isHost = identity.isHost || record.hostSubjects.contains(identity.subject)
        let isCoHost = record.coHostSubjects.contains(identity.subject)
        let waits = record.settings.waitingRoom && !isHost && !isCoHost && !identity.admitted
        let waiting = LiveWaiting(entry: WaitingParticipant(id: participantID, name: identity.name, email: identity.email), identity: identity,
                                  node: context.nodeID, since: context.wallNow)
        let entry = LiveParticipant(info: ParticipantInfo(id: participantID, name: identity.name, client: identity.client,
                                                          role: isHost ? .host : isCoHost ? .cohost : .participant,
                                                          audioMuted: false, videoMuted: false, tracks: []),
                                    subject: identity.subject, email: identity.email, credentialKeys: identity.credentialKeys,
                                    node: context.nodeID, joinedAt: context.wallNow)
        let request = AdmissionRequest(meeting: id, subject: identity.subject, credentialKeys: identity.credentialKeys, moderator: isHost || isCoHost,
                                       maximumParticipants: context.maximumParticipants, resume: resume,
                                       participant: waits ? nil : entry, waiting: waits ? waiting : nil,
                                       locked: record.locked, removedKeys: Set(record.removed.keys))
        return JoinPlan(isHost: isHost, waits: waits, entry: entry, waitingEntry: waiting, request: request)
    }

    /// What the store decided, applied here: resumed, waiting, or in.
    mutating func completeJoin(_ plan: JoinPlan, _ outcome: AdmissionOutcome, connection: Connection,
                               context: MeetingContext) -> (JoinOutcome, [MeetingEffect]) {
        if case .resumed(var existing) = outcome {
            let id = existing.info.id
            existing.node = context.nodeID
            participants[id] = existing
            connections[id] = connection
            orphanedSince[id] = nil
            return (.resumed(participantID: id, transportID: existing.transportID, others: participantsInOrder().filter { $0.id != id }),
                    publish(.participant(existing)))
        }
        let id = plan.entry.info.id
        connections[id] = connection
        if plan.waits {
            waiting[id] = plan.waitingEntry
            return (.waiting(participantID: id), publish(.waiting(plan.waitingEntry)) + sendWaitingList())
        }
        var effects: [MeetingEffect] = []
        if plan.isHost, record.hostSubjects.insert(plan.entry.subject).inserted { effects += persist }
        let (others, added) = add(plan.entry)
        return (.joined(participantID: id, others: others), effects + added)
    }

    /// Puts a participant in and tells everyone else; returns who was there before.
    mutating func add(_ entry: LiveParticipant) -> ([ParticipantInfo], [MeetingEffect]) {
        let existing = participantsInOrder()
        participants[entry.info.id] = entry
        return (existing, announce(.participant(entry), .participantJoined(entry.info), to: .everyone(except: entry.info.id)))
    }

    /// A connection closed or left. Whether the person left: not when another connection or node
    /// holds them now (they reconnected), nor while this node drains (they reconnect elsewhere).
    mutating func leave(participantID: String, connection: String?, context: MeetingContext) -> (Bool, [MeetingEffect]) {
        if let connection, let holder = connections[participantID]?.holder, holder != connection { return (false, []) }
        connections[participantID] = nil
        if context.draining { return (false, []) }
        if let entry = waiting[participantID] {
            guard entry.node == context.nodeID else { return (false, []) }
            waiting[participantID] = nil
            return (true, publish(.waitingLeft(participantID)) + sendWaitingList())
        }
        guard let participant = participants[participantID], participant.node == context.nodeID else { return (false, []) }
        return (true, removeParticipant(participant))
    }

    /// Takes a participant out wherever its connection is, and tells everyone.
    mutating func removeParticipant(_ participant: LiveParticipant) -> [MeetingEffect] {
        participants[participant.info.id] = nil
        return announce(.participantLeft(participant.info.id, node: participant.node), .participantLeft(participantID: participant.info.id),
                        to: .everyone(except: nil))
    }

    /// Without connections here: stop following (and forget the replica); `forget` when an ad
    /// hoc meeting is empty (created ones stay).
    mutating func release() -> (forget: Bool, effects: [MeetingEffect]) {
        guard connections.isEmpty, admitting == 0 else { return (false, []) }
        var effects: [MeetingEffect] = []
        if following.isOn {
            following = .no
            participants = [:]
            waiting = [:]
            orphanedSince = [:]
            effects.append(.unfollow)
        }
        return (!persistent && participants.isEmpty && waiting.isEmpty, effects)
    }

    /// Tells this node's connections, waiting people too, that the meeting ended (a shutdown of `parley serve`).
    func endAll(reason: String) -> [MeetingEffect] {
        let ended = OutgoingMessage(.meetingEnded(reason: reason))
        return deliverLocally(to: .everyone(except: nil), ended) + waiting.keys.sorted().flatMap { deliverLocally(to: .participant($0), ended) }
    }
}

// MARK: The waiting room

extension Meeting {
    /// A host's decision on one person (or everyone): who was let in through this node, with
    /// what they must be told (the hub sends `joined`). People waiting on other nodes are told
    /// by their node (`.admitted`). Capacity is not checked (the host chose).
    mutating func decide(participantID: String?, _ decision: MeetingHub.WaitingDecision,
                         context: MeetingContext) throws(SignalingError) -> ([(participantID: String, identity: JoinIdentity, others: [ParticipantInfo])], [MeetingEffect]) {
        if let participantID, waiting[participantID] == nil { throw .badRequest("\(participantID) is not waiting") }
        let chosen = participantID.map { [$0] } ?? waitingList().map(\.id)
        var admitted: [(String, JoinIdentity, [ParticipantInfo])] = []
        var effects: [MeetingEffect] = []
        for waitingID in chosen {
            guard let entry = waiting.removeValue(forKey: waitingID) else { continue }
            effects += publish(.waitingLeft(waitingID))
            switch decision {
            case .admit:
                let identity = entry.identity
                let participant = LiveParticipant(info: ParticipantInfo(id: waitingID, name: identity.name, client: identity.client, role: role(of: identity.subject),
                                                                        audioMuted: false, videoMuted: false, tracks: []),
                                                  subject: identity.subject, email: identity.email, credentialKeys: identity.credentialKeys,
                                                  node: entry.node, joinedAt: context.wallNow)
                let (others, added) = add(participant)
                effects += added
                if entry.node == context.nodeID {
                    admitted.append((waitingID, identity, others))
                } else {
                    effects += publish(.admitted(waitingID))
                }
            case .deny:
                effects += deliver(to: .participant(waitingID), .error(code: SignalingError.denied.code, message: SignalingError.denied.description))
            }
        }
        return (admitted, effects + sendWaitingList())
    }
}

// MARK: Settings and host controls

extension Meeting {
    mutating func update(patch: MeetingSettingsPatch, passwordHash: String??) {
        patch.apply(to: &record.settings)
        if let passwordHash { record.passwordHash = passwordHash }
        if let locked = patch.locked { record.locked = locked }
    }

    mutating func setLocked(_ locked: Bool) -> [MeetingEffect] {
        record.locked = locked
        return persist + broadcastState()
    }

    mutating func setHostsOnlyScreenShare(_ value: Bool) -> [MeetingEffect] {
        record.settings.hostsOnlyScreenShare = value
        return persist + broadcastState()
    }

    /// Changes a participant's entry; other nodes get the new entry, and every client the new
    /// info if what clients see changed. Nothing happens when nothing changed.
    mutating func modify(participantID: String, _ change: (inout LiveParticipant) -> Void) -> [MeetingEffect] {
        guard var participant = participants[participantID] else { return [] }
        let before = participant
        change(&participant)
        guard participant != before else { return [] }
        participants[participantID] = participant
        if participant.info != before.info {
            return announce(.participant(participant), .participantUpdated(participant.info), to: .everyone(except: nil))
        }
        return publish(.participant(participant))
    }

    /// A host mutes or stops someone's media (nil: everyone but the hosts and co-hosts).
    mutating func block(participantID: String?, _ media: BlockedMedia, by host: String) -> [MeetingEffect] {
        let targets = participantID.map { [$0] } ?? participantsInOrder().filter { $0.role == .participant }.map(\.id)
        var effects: [MeetingEffect] = []
        for target in targets where participants[target] != nil {
            effects += deliver(to: .participant(target), .moderated(action: media == .audio ? "mute-audio" : "stop-video", by: host))
            effects += modify(participantID: target) { entry in
                entry.hostBlocked.insert(media)
                if media == .audio { entry.info.audioMuted = true } else { entry.info.videoMuted = true }
            }
        }
        return effects
    }

    /// The participant's own mute switch. Unmuting lifts a host's block only if the meeting allows it.
    mutating func setOwnMute(participantID: String, kind: MediaKind, muted: Bool) throws(SignalingError) -> [MeetingEffect] {
        guard let participant = participants[participantID] else { throw .notJoined }
        let media: BlockedMedia = kind == .audio ? .audio : .video
        let liftsBlock = !muted && participant.hostBlocked.contains(media)
        if liftsBlock, !record.settings.allowSelfUnmute { throw .forbidden("a host muted you; ask a host to unmute you") }
        return modify(participantID: participantID) { entry in
            if liftsBlock { entry.hostBlocked.remove(media) }
            if kind == .audio { entry.info.audioMuted = muted } else { entry.info.videoMuted = muted }
        }
    }

    /// A host lifts a block it set.
    mutating func unblock(participantID: String, _ media: BlockedMedia) -> [MeetingEffect] {
        guard participants[participantID] != nil else { return [] }
        return modify(participantID: participantID) { $0.hostBlocked.remove(media) }
            + deliver(to: .participant(participantID), .moderated(action: media == .audio ? "unmute-audio-allowed" : "start-video-allowed", by: ""))
    }

    mutating func setCoHost(participantID: String, _ isCoHost: Bool) throws(SignalingError) -> [MeetingEffect] {
        guard let participant = participants[participantID] else { throw .badRequest("no participant \(participantID)") }
        guard participant.info.role != .host else { throw .badRequest("\(participant.info.name) is a host") }
        if isCoHost { record.coHostSubjects.insert(participant.subject) } else { record.coHostSubjects.remove(participant.subject) }
        var effects = persist + modify(participantID: participantID) { $0.info.role = isCoHost ? .cohost : .participant }
        if isCoHost { effects += deliver(to: .participant(participantID), .waitingRoom(waitingList())) }
        return effects
    }

    /// Takes someone out, wherever their connection is, and tells them (their socket closes).
    /// Their credentials cannot bring them back until a host allows it; a co-host stops being
    /// one (moderators pass the removals, so a removed co-host would walk straight back in).
    mutating func remove(participantID: String, by host: String) throws(SignalingError) -> [MeetingEffect] {
        guard let participant = participants[participantID] else { throw .badRequest("no participant \(participantID)") }
        guard participant.info.role != .host else { throw .forbidden("a host cannot be removed") }
        for key in participant.credentialKeys { record.removed[key] = participantID }
        record.coHostSubjects.remove(participant.subject)
        return persist
            + deliver(to: .participant(participantID), .moderated(action: "removed", by: host))
            + deliver(to: .participant(participantID), .meetingEnded(reason: "a host removed you from this meeting"))
            + removeParticipant(participant)
    }

    /// Lets a removed participant (by the id they had) come back.
    mutating func allowRejoin(participantID: String) throws(SignalingError) -> [MeetingEffect] {
        guard record.removed.values.contains(participantID) else { throw .badRequest("\(participantID) was not removed from this meeting") }
        record.removed = record.removed.filter { $0.value != participantID }
        return persist
    }

    mutating func report(meeting id: String, reporterID: String, reportedID: String, reason: String,
                         context: MeetingContext) throws(SignalingError) -> [MeetingEffect] {
        guard let reporter = participants[reporterID] else { throw .notJoined }
        guard let reported = participants[reportedID] else { throw .badRequest("no participant \(reportedID)") }
        guard reporterID != reportedID else { throw .badRequest("you cannot report yourself") }
        let report = ParticipantReport(meeting: id, reporterID: reporterID, reporterName: reporter.info.name, reportedID: reportedID,
                                       reportedName: reported.info.name, reason: reason, at: Date(timeIntervalSince1970: context.wallNow))
        record.reports.append(report)
        if record.reports.count > MeetingHub.maximumReports { record.reports.removeFirst() }
        return persist + deliver(to: .moderators, .reported(report))
    }
}
