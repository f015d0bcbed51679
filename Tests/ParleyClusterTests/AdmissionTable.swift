import Foundation
import Logging
import Testing
@testable import ParleyCluster
@testable import ParleyControl
import ParleyRedis
import ParleyTestSupport

/// One table of admission cases, decided by the Swift rules (`AdmissionRules`, what
/// `LocalLiveMeetingStore` runs for `parley serve`) and by the Redis Lua script (`parley signal`):
/// the two cannot drift apart without a row failing on one side.
struct AdmissionCase: Sendable {
    enum Expected: Equatable, Sendable {
        case admitted
        case resumed(String)
        case refused(AdmissionRules.Refusal)
    }

    var name: String
    /// The meeting's record (its lock and removals); nil: an ad hoc meeting, which has none.
    var record: MeetingRecord?
    /// Participant id → subject, already in.
    var present: [String: String] = [:]
    var waitingPresent: [String: String] = [:]
    var subject = "ada"
    var keys: Set<String> = []
    var moderator = false
    var capacity = 3
    var resume: String?
    /// Into the waiting room rather than in.
    var waits = false
    var expected: Expected

    static let newcomerID = "newcomer"

    static func participant(_ id: String, subject: String) -> LiveParticipant {
        LiveParticipant(info: ParticipantInfo(id: id, name: subject, client: "web", role: .participant, audioMuted: false, videoMuted: false, tracks: []),
                        subject: subject, email: nil, credentialKeys: ["sub:" + subject], node: "signal-a", joinedAt: 1)
    }

    static func waiting(_ id: String, subject: String) -> LiveWaiting {
        LiveWaiting(entry: WaitingParticipant(id: id, name: subject, email: nil), identity: JoinIdentity(subject: subject, name: subject),
                    node: "signal-a", since: 1)
    }

    func request(meeting: String) -> AdmissionRequest {
        AdmissionRequest(meeting: meeting, subject: subject, credentialKeys: keys.union(["sub:" + subject]), moderator: moderator,
                         maximumParticipants: capacity, resume: resume,
                         participant: waits ? nil : Self.participant(Self.newcomerID, subject: subject),
                         waiting: waits ? Self.waiting(Self.newcomerID, subject: subject) : nil,
                         locked: record?.locked ?? false, removedKeys: Set(record?.removed.keys ?? [:].keys))
    }

    /// Who is in and waiting after the decision: the newcomer added on `admitted` only.
    var expectedAfter: (participants: Set<String>, waiting: Set<String>) {
        var participants = Set(present.keys), waiting = Set(waitingPresent.keys)
        if expected == .admitted {
            if waits { waiting.insert(Self.newcomerID) } else { participants.insert(Self.newcomerID) }
        }
        return (participants, waiting)
    }
}

enum AdmissionTable {
    static let locked = MeetingRecord(locked: true)
    static func removing(_ keys: String..., locked: Bool = false) -> MeetingRecord {
        MeetingRecord(locked: locked, removed: Dictionary(uniqueKeysWithValues: keys.map { ($0, "old-id") }))
    }
    static func full(_ count: Int) -> [String: String] {
        Dictionary(uniqueKeysWithValues: (0..<count).map { ("p\($0)", "someone-\($0)") })
    }

    static let cases: [AdmissionCase] = {
        var lockOnStartOnly = MeetingRecord()
        lockOnStartOnly.settings.lockOnStart = true
        var waitingRoomOn = MeetingRecord()
        waitingRoomOn.settings.waitingRoom = true
        return [
            AdmissionCase(name: "an open ad hoc meeting admits", expected: .admitted),
            AdmissionCase(name: "into the waiting room", waits: true, expected: .admitted),
            AdmissionCase(name: "a locked meeting refuses", record: locked, present: ["p0": "host"], expected: .refused(.locked)),
            AdmissionCase(name: "a moderator passes the lock", record: locked, present: ["p0": "host"], moderator: true, expected: .admitted),
            AdmissionCase(name: "a removed subject is refused", record: removing("sub:eve"), subject: "eve", expected: .refused(.removed)),
            AdmissionCase(name: "a removed invite link is refused whoever brings it", record: removing("invite:abc"), subject: "mallory",
                          keys: ["invite:abc"], expected: .refused(.removed)),
            AdmissionCase(name: "removals are checked before the lock", record: removing("sub:eve", locked: true), subject: "eve",
                          expected: .refused(.removed)),
            AdmissionCase(name: "a moderator passes the removals", record: removing("sub:eve"), subject: "eve", moderator: true, expected: .admitted),
            AdmissionCase(name: "someone else is not removed", record: removing("sub:eve"), subject: "ada", expected: .admitted),
            AdmissionCase(name: "a full meeting refuses", present: full(3), expected: .refused(.meetingFull)),
            AdmissionCase(name: "capacity binds moderators too", present: full(3), moderator: true, expected: .refused(.meetingFull)),
            AdmissionCase(name: "capacity binds the waiting room too", present: full(3), waits: true, expected: .refused(.meetingFull)),
            AdmissionCase(name: "the last place is taken", present: full(2), expected: .admitted),
            AdmissionCase(name: "people waiting do not count", present: full(3), waitingPresent: ["w0": "x", "w1": "y"], capacity: 4, expected: .admitted),
            AdmissionCase(name: "a resume by the same subject beats every rule", record: removing("sub:ada", locked: true),
                          present: full(2).merging(["p1": "ada"]) { $1 }.merging(["p9": "z"]) { $1 }, resume: "p1", expected: .resumed("p1")),
            AdmissionCase(name: "a resume by another subject is a new join", present: ["p1": "ada"], subject: "mallory", resume: "p1", expected: .admitted),
            AdmissionCase(name: "a resume of an unknown id is a new join", resume: "nobody", expected: .admitted),
            AdmissionCase(name: "a resume looks at participants only", waitingPresent: ["w1": "ada"], resume: "w1", expected: .admitted),
            AdmissionCase(name: "the lock read is `locked`, not `lockOnStart`", record: lockOnStartOnly, expected: .admitted),
            AdmissionCase(name: "the waiting room is not the store's rule", record: waitingRoomOn, expected: .admitted),
            AdmissionCase(name: "a moderator may still be put in the waiting room", record: locked, moderator: true, waits: true, expected: .admitted),
            AdmissionCase(name: "an empty removal map removes nobody", record: MeetingRecord(removed: [:]), expected: .admitted),
        ]
    }()
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct AdmissionTableTests {
    func verdict(_ store: any LiveMeetingStore, _ request: AdmissionRequest) async -> AdmissionCase.Expected? {
        do {
            switch try await store.admit(request) {
            case .admitted: return .admitted
            case .resumed(let participant): return .resumed(participant.info.id)
            }
        } catch {
            for refusal in [AdmissionRules.Refusal.removed, .locked, .meetingFull] where refusal.error == error { return .refused(refusal) }
            return nil
        }
    }

    func check(_ row: AdmissionCase, _ got: AdmissionCase.Expected?, store: any LiveMeetingStore, meeting: String, side: String) async {
        #expect(got == row.expected, "\(side): \(row.name)")
        let after = await store.snapshot(meeting)
        let expected = row.expectedAfter
        #expect(Set(after?.participants.map(\.info.id) ?? []) == expected.participants, "\(side), who is in: \(row.name)")
        #expect(Set(after?.waiting.map(\.entry.id) ?? []) == expected.waiting, "\(side), who waits: \(row.name)")
    }

    @Test func theRulesAloneDecideEveryRow() {
        for row in AdmissionTable.cases {
            let participants = Dictionary(uniqueKeysWithValues: row.present.map { ($0.key, AdmissionCase.participant($0.key, subject: $0.value)) })
            let verdict = AdmissionRules.decide(row.request(meeting: "m"), locked: row.record?.locked ?? false,
                                                removedKeys: row.record?.removed.keys ?? [:].keys, participants: participants)
            let got: AdmissionCase.Expected = switch verdict {
            case .admitted: .admitted
            case .resumed(let participant): .resumed(participant.info.id)
            case .refused(let refusal): .refused(refusal)
            }
            #expect(got == row.expected, "\(row.name)")
        }
    }

    @Test func theLocalStoreDecidesEveryRow() async {
        for (index, row) in AdmissionTable.cases.enumerated() {
            let store = LocalLiveMeetingStore()
            let meeting = "table-\(index)"
            for (id, subject) in row.present { store.publish(MeetingEvent(origin: "signal-a", meeting: meeting, change: .participant(AdmissionCase.participant(id, subject: subject)))) }
            for (id, subject) in row.waitingPresent { store.publish(MeetingEvent(origin: "signal-a", meeting: meeting, change: .waiting(AdmissionCase.waiting(id, subject: subject)))) }
            let got = await verdict(store, row.request(meeting: meeting))
            await check(row, got, store: store, meeting: meeting, side: "Swift")
        }
    }

    /// The state is written the way production writes it (the record through
    /// `RedisMeetingRecordStore`, entries as `LiveParticipant` JSON), so a renamed Swift field
    /// that the script reads fails a row here.
    @Test func theLuaScriptDecidesEveryRow() async throws {
        let server = try RedisServer()
        let logger = Logger(label: "admission-table")
        let redis = try await RedisClient.connect(server.configuration)
        let records = RedisMeetingRecordStore(redis: redis, logger: logger)
        let store = try await RedisLiveMeetingStore(redis: redis, configuration: server.configuration, nodeID: "signal-a", logger: logger)
        defer { store.stop(); redis.close() }
        let encoder = JSONEncoder()
        for (index, row) in AdmissionTable.cases.enumerated() {
            let meeting = "table-\(index)"
            if let record = row.record { await records.save(meeting, record) }
            for (id, subject) in row.present {
                let json = String(decoding: try encoder.encode(AdmissionCase.participant(id, subject: subject)), as: UTF8.self)
                _ = try await redis.send(["HSET", RedisLiveMeetingStore.participantsKey(meeting), id, json])
            }
            for (id, subject) in row.waitingPresent {
                let json = String(decoding: try encoder.encode(AdmissionCase.waiting(id, subject: subject)), as: UTF8.self)
                _ = try await redis.send(["HSET", RedisLiveMeetingStore.waitingKey(meeting), id, json])
            }
            // Redis reads its own record; the request's copy must not matter.
            var request = row.request(meeting: meeting)
            request.locked = false
            request.removedKeys = []
            let got = await verdict(store, request)
            await check(row, got, store: store, meeting: meeting, side: "Lua")
        }
    }

    /// Only Redis can hold an entry that does not decode: the script's `pcall` makes it a new join.
    @Test func aCorruptEntryToResumeIsANewJoinInRedis() async throws {
        let server = try RedisServer()
        let logger = Logger(label: "admission-table")
        let redis = try await RedisClient.connect(server.configuration)
        let store = try await RedisLiveMeetingStore(redis: redis, configuration: server.configuration, nodeID: "signal-a", logger: logger)
        defer { store.stop(); redis.close() }
        _ = try await redis.send(["HSET", RedisLiveMeetingStore.participantsKey("m"), "p1", "{not json"])
        let row = AdmissionCase(name: "corrupt", present: [:], capacity: 3, resume: "p1", expected: .admitted)
        #expect(await verdict(store, row.request(meeting: "m")) == .admitted)
    }
}
