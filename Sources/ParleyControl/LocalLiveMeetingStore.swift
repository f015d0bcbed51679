import Synchronization

/// The live state of `parley serve`'s meetings, in this process: the same contract as Redis
/// (admission decided atomically by `AdmissionRules`, changes stored as they are published), with
/// no other node to tell. The hub runs the same code path alone as in a cluster.
public final class LocalLiveMeetingStore: LiveMeetingStore {
    public let nodeID = "local"
    public var isShared: Bool { false }

    private struct Live {
        var participants: [String: LiveParticipant] = [:]
        var waiting: [String: LiveWaiting] = [:]
        var isEmpty: Bool { participants.isEmpty && waiting.isEmpty }
    }
    private let meetings = Mutex<[String: Live]>([:])

    public init() {}

    public func admit(_ request: AdmissionRequest) async throws(SignalingError) -> AdmissionOutcome {
        guard request.participant != nil || request.waiting != nil else { throw .badRequest("nothing to admit") }
        // Check and insert under one lock, as the Lua script does in one EVAL.
        let verdict: AdmissionRules.Verdict = meetings.withLock { meetings in
            var live = meetings[request.meeting] ?? Live()
            let verdict = AdmissionRules.decide(request, locked: request.locked, removedKeys: request.removedKeys, participants: live.participants)
            if case .admitted = verdict {
                if let participant = request.participant { live.participants[participant.info.id] = participant }
                if let waiting = request.waiting { live.waiting[waiting.entry.id] = waiting }
                meetings[request.meeting] = live
            }
            return verdict
        }
        switch verdict {
        case .admitted: return .admitted
        case .resumed(let participant): return .resumed(participant)
        case .refused(let refusal): throw refusal.error
        }
    }

    public func snapshot(_ meeting: String) async -> (participants: [LiveParticipant], waiting: [LiveWaiting])? {
        meetings.withLock { meetings in
            let live = meetings[meeting] ?? Live()
            return (Array(live.participants.values), Array(live.waiting.values))
        }
    }

    public func follow(_ meeting: String) async {}
    public func unfollow(_ meeting: String) async {}

    public func publish(_ event: MeetingEvent) {
        guard let change = event.change else { return }
        meetings.withLock { meetings in
            var live = meetings[event.meeting] ?? Live()
            switch change {
            case .participant(let entry): live.participants[entry.info.id] = entry
            // Only from the node that holds it (the same rule as the Redis removal script).
            case .participantLeft(let id, let node): if live.participants[id]?.node == node { live.participants[id] = nil }
            case .waiting(let entry): live.waiting[entry.entry.id] = entry
            case .waitingLeft(let id): live.waiting[id] = nil
            case .admitted: break
            }
            meetings[event.meeting] = live.isEmpty ? nil : live
        }
    }

    public func removeOrphan(meeting: String, participantID: String, node: String) {
        meetings.withLock { meetings in
            guard var live = meetings[meeting] else { return }
            if live.participants[participantID]?.node == node { live.participants[participantID] = nil }
            if live.waiting[participantID]?.node == node { live.waiting[participantID] = nil }
            meetings[meeting] = live.isEmpty ? nil : live
        }
    }

    /// No other node can die here.
    public func adopt(meeting: String, participantID: String, from node: String) async -> Bool { false }

    /// Nobody else publishes: a stream that has ended.
    public func events() async -> AsyncStream<LiveStoreEvent> { AsyncStream { $0.finish() } }

    public func liveNodes() async -> Set<String>? { [nodeID] }
}

/// `parley serve` keeps created meetings' records in the hub only: nothing outlives the process.
public struct LocalMeetingRecordStore: MeetingRecordStore {
    public init() {}
    public func load(_ id: String) async -> MeetingRecord? { nil }
    public func save(_ id: String, _ record: MeetingRecord) async {}
    public func changes() async -> AsyncStream<String> { AsyncStream { $0.finish() } }
}
