/// The replica side of a meeting: what other nodes' events, the store's snapshots, a record
/// another node wrote and dead nodes do to this node's copy. Rules as in Meeting.swift: they
/// change the value and return effects.
extension Meeting {
    /// Starts following, unless already; the snapshot is merged when it arrives.
    mutating func beginFollowing() -> Bool {
        guard following == .no else { return false }
        following = .loading(leftMeanwhile: [])
        return true
    }

    /// The store's snapshot, taken after this node subscribed: entries events brought meanwhile
    /// are newer, and ids that events removed meanwhile stay out.
    mutating func merge(snapshot: (participants: [LiveParticipant], waiting: [LiveWaiting])?) {
        guard case .loading(let leftMeanwhile) = following else { return }
        following = .yes
        guard let snapshot else { return }
        for participant in snapshot.participants where participants[participant.info.id] == nil && !leftMeanwhile.contains(participant.info.id) {
            participants[participant.info.id] = participant
        }
        for entry in snapshot.waiting where waiting[entry.entry.id] == nil && !leftMeanwhile.contains(entry.entry.id) {
            waiting[entry.entry.id] = entry
        }
    }

    private mutating func noteLeftWhileLoading(_ participantID: String) {
        if case .loading(var left) = following {
            left.insert(participantID)
            following = .loading(leftMeanwhile: left)
        }
    }

    /// Another node's event: its change to the replica, then its message to the connections here.
    mutating func apply(_ event: MeetingEvent, context: MeetingContext) -> [MeetingEffect] {
        guard following.isOn else { return [] }
        var effects: [MeetingEffect] = []
        switch event.change {
        case .participant(let entry)?:
            let previous = participants[entry.info.id]
            participants[entry.info.id] = entry
            orphanedSince[entry.info.id] = nil
            // It reconnected through another node: the connection here is stale.
            if previous?.node == context.nodeID && entry.node != context.nodeID { connections[entry.info.id] = nil }
        case .participantLeft(let participantID, let node)?:
            if participants[participantID]?.node == node { participants[participantID] = nil }
            noteLeftWhileLoading(participantID)
        case .waiting(let entry)?:
            waiting[entry.entry.id] = entry
        case .waitingLeft(let participantID)?:
            waiting[participantID] = nil
            noteLeftWhileLoading(participantID)
        case .admitted(let participantID)?:
            if let entry = participants[participantID], entry.node == context.nodeID, connections[participantID] != nil {
                let identity = JoinIdentity(subject: entry.subject, name: entry.info.name, email: entry.email, client: entry.info.client,
                                            admitted: true, credentialKeys: entry.credentialKeys)
                effects.append(.sendJoined(participantID: participantID, identity: identity,
                                           others: participantsInOrder().filter { $0.id != participantID }))
            }
        case nil:
            break
        }
        if let delivery = event.delivery { effects += deliverLocally(to: delivery.to, delivery.message) }
        return effects
    }

    /// A record another node wrote: nil when nothing changed. Every node derives the roles from
    /// the record and tells its own connections.
    mutating func reload(_ newRecord: MeetingRecord) -> [MeetingEffect]? {
        guard record != newRecord else { return nil }
        record = newRecord
        persistent = true
        var effects: [MeetingEffect] = []
        for participantID in participants.keys.sorted() {
            guard var participant = participants[participantID] else { continue }
            let role = role(of: participant.subject)
            guard participant.info.role != role else { continue }
            participant.info.role = role
            participants[participantID] = participant
            effects += deliverLocally(to: .everyone(except: nil), OutgoingMessage(.participantUpdated(participant.info)))
        }
        return effects + broadcastState()
    }

    /// What this node holds, for writing back after the store lost its data.
    func ownEntries(nodeID: String) -> (participants: [LiveParticipant], waiting: [LiveWaiting]) {
        (participants.values.filter { $0.node == nodeID }, waiting.values.filter { $0.node == nodeID })
    }

    /// The store's state after a break, with this node's own entries kept.
    mutating func replaceReplica(with snapshot: (participants: [LiveParticipant], waiting: [LiveWaiting]),
                                 keeping own: (participants: [LiveParticipant], waiting: [LiveWaiting]), nodeID: String) {
        var merged = Dictionary(snapshot.participants.map { ($0.info.id, $0) }, uniquingKeysWith: { _, last in last })
        var mergedWaiting = Dictionary(snapshot.waiting.map { ($0.entry.id, $0) }, uniquingKeysWith: { _, last in last })
        for participant in own.participants where merged[participant.info.id]?.node ?? nodeID == nodeID { merged[participant.info.id] = participant }
        for entry in own.waiting { mergedWaiting[entry.entry.id] = entry }
        participants = merged
        waiting = mergedWaiting
    }

    /// A dead node's WHIP publisher that this node may take over (its media goes on).
    struct Adoption: Sendable, Equatable {
        var participantID: String
        var node: String
    }

    /// Participants and waiting people whose node died (or whose connection here is gone) are
    /// marked; once marked for the reconnect grace they are taken out here (and from the store),
    /// except WHIP publishers of dead nodes, which have no client to reconnect: those are
    /// returned for adoption.
    mutating func sweepOrphans(alive: Set<String>, context: MeetingContext) -> ([MeetingEffect], [Adoption]) {
        func orphaned(_ participantID: String, node: String) -> Bool {
            node == context.nodeID ? connections[participantID] == nil && !context.draining : !alive.contains(node)
        }
        let candidates = participants.values.filter { orphaned($0.info.id, node: $0.node) }.map { ($0.info.id, $0.node, false) }
            + waiting.values.filter { orphaned($0.entry.id, node: $0.node) }.map { ($0.entry.id, $0.node, true) }
        let candidateIDs = Set(candidates.map(\.0))
        orphanedSince = orphanedSince.filter { candidateIDs.contains($0.key) }
        var effects: [MeetingEffect] = []
        var adoptions: [Adoption] = []
        for (participantID, node, isWaiting) in candidates.sorted(by: { $0.0 < $1.0 }) {
            guard let since = orphanedSince[participantID] else {
                orphanedSince[participantID] = context.uptime
                continue
            }
            guard context.uptime - since >= context.reconnectGrace else { continue }
            orphanedSince[participantID] = nil
            if !isWaiting, node != context.nodeID, participants[participantID]?.info.client == "whip" {
                adoptions.append(Adoption(participantID: participantID, node: node))
                continue
            }
            effects.append(.removeOrphan(participantID: participantID, node: node))
            if isWaiting {
                waiting[participantID] = nil
                effects += deliverLocally(to: .moderators, OutgoingMessage(.waitingRoom(waitingList())))
            } else {
                participants[participantID] = nil
                effects += deliverLocally(to: .everyone(except: nil), OutgoingMessage(.participantLeft(participantID: participantID)))
                effects.append(.stopMedia(participantID: participantID))
            }
        }
        return (effects, adoptions)
    }

    /// This node won the claim on a dead node's WHIP publisher (if it is still that node's).
    mutating func adopted(_ adoption: Adoption, context: MeetingContext) -> [MeetingEffect] {
        guard var participant = participants[adoption.participantID], participant.node == adoption.node else { return [] }
        participant.node = context.nodeID
        participants[adoption.participantID] = participant
        connections[adoption.participantID] = Connection(sink: { _ in }, holder: nil)
        return publish(.participant(participant)) + [.watchAdopted(participantID: adoption.participantID, transportID: participant.transportID)]
    }
}
