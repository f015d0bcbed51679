/// The meeting's side of admission, in one place: the Swift rules here are what
/// `LocalLiveMeetingStore` runs, and the Redis Lua script (`RedisLiveMeetingStore.admission`)
/// is the same rules over Redis keys; one table of cases (Tests/ParleyClusterTests/AdmissionTable.swift)
/// runs against both, so they cannot drift.
public enum AdmissionRules {
    /// What a refused admission is told; the raw values are the Lua script's replies.
    public enum Refusal: String, Sendable, Equatable {
        case removed
        case locked
        case meetingFull = "meeting-full"

        public var error: SignalingError {
            switch self {
            case .removed: .removed
            case .locked: .locked
            case .meetingFull: .meetingFull
            }
        }
    }

    public enum Verdict: Sendable, Equatable {
        case admitted
        /// A reconnect by the same subject: the participant it had.
        case resumed(LiveParticipant)
        case refused(Refusal)
    }

    /// The lock and the removals, which moderators (hosts and co-hosts) pass; removals first.
    public static func gate(locked: Bool, removedKeys: some Collection<String>, credentialKeys: Set<String>, moderator: Bool) -> Refusal? {
        guard !moderator else { return nil }
        if removedKeys.contains(where: credentialKeys.contains) { return .removed }
        if locked { return .locked }
        return nil
    }

    /// A join: a resume by the same subject wins over every rule (they are in already); then
    /// the gate; then capacity, which binds everyone and counts participants (not the waiting room).
    public static func decide(_ request: AdmissionRequest, locked: Bool, removedKeys: some Collection<String>,
                              participants: [String: LiveParticipant]) -> Verdict {
        if let resume = request.resume, let existing = participants[resume], existing.subject == request.subject {
            return .resumed(existing)
        }
        if let refusal = gate(locked: locked, removedKeys: removedKeys, credentialKeys: request.credentialKeys, moderator: request.moderator) {
            return .refused(refusal)
        }
        guard participants.count < request.maximumParticipants else { return .refused(.meetingFull) }
        return .admitted
    }

    /// A WHEP player (or a token being issued): the gate, and a waiting room it cannot sit in
    /// (only a host-issued admitted token passes one). No capacity: players are not participants.
    public static func viewer(meeting id: String, locked: Bool, removedKeys: some Collection<String>, identity: JoinIdentity, moderator: Bool,
                              waitingRoom: Bool) throws(SignalingError) {
        if let refusal = gate(locked: locked, removedKeys: removedKeys, credentialKeys: identity.credentialKeys, moderator: moderator) {
            throw refusal.error
        }
        if !moderator && waitingRoom && !identity.admitted {
            throw .forbidden("this meeting has a waiting room: a host must issue the player an admitted token (POST /api/meetings/\(id)/tokens)")
        }
    }
}
