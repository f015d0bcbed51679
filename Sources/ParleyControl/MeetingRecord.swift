/// What of a created meeting outlives the process: settings, password hash, lock, hosts,
/// removals and reports (participants and the waiting room are live connections).
public struct MeetingRecord: Codable, Sendable, Equatable {
    public var settings: MeetingSettings
    public var passwordHash: String?
    public var locked: Bool
    public var hostSubjects: Set<String>
    public var coHostSubjects: Set<String>
    /// Credential keys of removed participants → their participant id (for allow-rejoin).
    public var removed: [String: String]
    public var reports: [ParticipantReport]

    public init(settings: MeetingSettings = MeetingSettings(), passwordHash: String? = nil, locked: Bool = false, hostSubjects: Set<String> = [],
                coHostSubjects: Set<String> = [], removed: [String: String] = [:], reports: [ParticipantReport] = []) {
        self.settings = settings; self.passwordHash = passwordHash; self.locked = locked; self.hostSubjects = hostSubjects
        self.coHostSubjects = coHostSubjects; self.removed = removed; self.reports = reports
    }
}

/// Keeps created meetings' records (Redis in a cluster, `LocalMeetingRecordStore` alone).
public protocol MeetingRecordStore: Sendable {
    func load(_ id: String) async -> MeetingRecord?
    func save(_ id: String, _ record: MeetingRecord) async
    /// Ids of meetings that other processes changed (a host locked it through another node).
    func changes() async -> AsyncStream<String>
}
