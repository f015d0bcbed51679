import Foundation
import Logging
import ParleyMediaAPI
import Testing
@testable import ParleyCluster
import ParleyControl
import Synchronization
import ParleyRedis
import ParleyTestSupport

@Suite struct HashRingTests {
    @Test func keysSpreadEvenlyAndANodeLeavingMovesOnlyItsKeys() {
        var ring = HashRing(nodes: ["sfu-a", "sfu-b", "sfu-c"])
        let keys = (0..<3000).map { "meeting-\($0)" }
        var counts: [String: Int] = [:]
        let before = Dictionary(uniqueKeysWithValues: keys.map { ($0, ring.candidates(for: $0, count: 1)[0]) })
        for owner in before.values { counts[owner, default: 0] += 1 }
        #expect(counts.values.allSatisfy { (800...1200).contains($0) }, "\(counts)")
        ring.remove("sfu-b")
        for key in keys where before[key] != "sfu-b" { #expect(ring.candidates(for: key, count: 1)[0] == before[key]) }
        #expect(ring.candidates(for: "x", count: 5).count == 2)
        #expect(Set(ring.candidates(for: "x", count: 2)) == ["sfu-a", "sfu-c"])
        #expect(HashRing().candidates(for: "x", count: 1).isEmpty)
    }
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct RoomServiceTests {
    func node(_ id: String, capacity: Int = 1000, participants: Int = 0) -> SFUNode {
        SFUNode(id: id, announceAddress: "127.0.0.1", ports: [40000], controlURL: "http://127.0.0.1:1/\(id)", capacity: capacity, participants: participants)
    }

    /// Heartbeats as live SFU nodes send them, until cancelled.
    func keepBeating(_ rooms: RoomService, _ ids: [String]) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                for id in ids { try? await rooms.heartbeat(self.node(id)) }
                try? await Task.sleep(for: RoomService.heartbeatInterval)
            }
        }
    }

    @Test func concurrentFirstJoinsOnDifferentNodesAgreeOnOneSFU() async throws {
        let server = try RedisServer()
        let redis = try await RedisClient.connect(server.configuration)
        let rooms = RoomService(redis: redis)
        // The race is about the compare-and-set, not liveness: the nodes' heartbeats never expire
        // here, so a slow run (a sanitizer build: 27 s for this test) cannot let one look dead
        // and be replaced, which would be right, but is not what this test checks.
        for id in ["a", "b", "c"] {
            try await rooms.heartbeat(node(id))
            _ = try await redis.send(["PERSIST", "sfu:\(id)"])
        }
        // Ten "signaling nodes", each with its own connection, race for the same new meetings.
        var services: [RoomService] = []
        for _ in 0..<10 { services.append(RoomService(redis: try await RedisClient.connect(server.configuration))) }
        for meeting in 0..<20 {
            let chosen = try await withThrowingTaskGroup(of: String.self) { group in
                for service in services { group.addTask { try await service.assign(meeting: "race-\(meeting)").id } }
                var ids: Set<String> = []
                for try await id in group { ids.insert(id) }
                return ids
            }
            #expect(chosen.count == 1, "meeting race-\(meeting) went to \(chosen)")
            #expect(try await rooms.current(meeting: "race-\(meeting)") == chosen.first)
        }
    }

    @Test func oneHundredMeetingsSpreadOverThreeSFUsWithinTenPercentOfEven() async throws {
        let server = try RedisServer()
        let rooms = RoomService(redis: try await RedisClient.connect(server.configuration))
        for id in ["sfu-1", "sfu-2", "sfu-3"] { try await rooms.heartbeat(node(id)) }
        let beating = keepBeating(rooms, ["sfu-1", "sfu-2", "sfu-3"])
        defer { beating.cancel() }
        var counts: [String: Int] = [:]
        for meeting in 0..<100 { counts[try await rooms.assign(meeting: "m\(meeting)").id, default: 0] += 1 }
        let even = 100.0 / 3
        #expect(counts.count == 3 && counts.values.allSatisfy { abs(Double($0) - even) <= even * 0.1 }, "\(counts)")
    }

    @Test func aDeadSFUIsSeenWithinTwoSecondsAndItsMeetingsMove() async throws {
        let server = try RedisServer()
        let rooms = RoomService(redis: try await RedisClient.connect(server.configuration))
        try await rooms.heartbeat(node("doomed"))
        try await rooms.heartbeat(node("survivor"))
        // Keep the survivor beating; the doomed one stops (a kill -9).
        let beating = keepBeating(rooms, ["survivor"])
        defer { beating.cancel() }
        var meetingOnDoomed: String?
        for index in 0..<20 where meetingOnDoomed == nil {
            if try await rooms.assign(meeting: "m\(index)").id == "doomed" { meetingOnDoomed = "m\(index)" }
        }
        let meeting = try #require(meetingOnDoomed)
        let clock = ContinuousClock()
        let stopped = clock.now
        while try await rooms.liveNodes().contains(where: { $0.id == "doomed" }) { try await Task.sleep(for: .milliseconds(50)) }
        #expect(clock.now - stopped < .seconds(2))
        #expect(try await rooms.assign(meeting: meeting).id == "survivor")
        #expect(try await rooms.current(meeting: meeting) == "survivor")
    }

    @Test func fullSFUsTakeNoNewMeetingsAndNoSFUIsAClearError() async throws {
        let server = try RedisServer()
        let rooms = RoomService(redis: try await RedisClient.connect(server.configuration))
        await #expect(throws: RedisError.self) { try await rooms.assign(meeting: "lonely") }
        try await rooms.heartbeat(node("full", capacity: 10, participants: 10))
        try await rooms.heartbeat(node("roomy", capacity: 10, participants: 3))
        for index in 0..<10 { #expect(try await rooms.assign(meeting: "m\(index)").id == "roomy") }
        try await rooms.heartbeat(node("roomy", capacity: 10, participants: 10))
        do {
            _ = try await rooms.assign(meeting: "one-more")
            Issue.record("assigned to a full SFU")
        } catch {
            #expect(error.description.contains("capacity"))
        }
        try await rooms.leave("full")
        #expect(try await rooms.liveNodes().map(\.id) == ["roomy"])
    }
}

/// Cascading placement against a real redis-server: a meeting grows past one SFU.
@Suite(.serialized, .timeLimit(.minutes(3))) struct CascadePlacementTests {
    /// One heartbeat that does not expire (this is about placement, not liveness: a slow
    /// sanitizer build must not see a node die between two steps).
    func beat(_ rooms: RoomService, _ id: String, capacity: Int = 2, participants: Int = 0) async throws {
        try await rooms.heartbeat(SFUNode(id: id, announceAddress: "127.0.0.1", ports: [40000], controlURL: "http://127.0.0.1:1/\(id)",
                                          capacity: capacity, participants: participants))
        _ = try await rooms.redis.send(["PERSIST", "sfu:\(id)"])
    }

    @Test func aFullSFUSpillsTheMeetingToAnotherNewcomersGoToTheLeastLoadedMemberAndADeadPrimaryIsReplacedByAMember() async throws {
        let server = try RedisServer()
        let rooms = RoomService(redis: try await RedisClient.connect(server.configuration))
        for id in ["a", "b", "c"] { try await beat(rooms, id) }
        let primary = try await rooms.place(meeting: "big")
        #expect(try await rooms.members(of: "big") == [primary.id])
        // Under capacity: the primary again.
        try await beat(rooms, primary.id, participants: 1)
        #expect(try await rooms.place(meeting: "big").id == primary.id)
        // Full: a second SFU joins the meeting's set.
        try await beat(rooms, primary.id, participants: 2)
        let second = try await rooms.place(meeting: "big")
        #expect(second.id != primary.id)
        #expect(Set(try await rooms.members(of: "big")) == [primary.id, second.id])
        #expect(try await rooms.current(meeting: "big") == primary.id, "the primary stays")
        // A member with room is preferred to a third SFU; the least loaded of the members wins.
        try await beat(rooms, second.id, participants: 1)
        #expect(try await rooms.place(meeting: "big").id == second.id)
        try await beat(rooms, primary.id, participants: 0)
        #expect(try await rooms.place(meeting: "big").id == primary.id)
        // One answered full though its heartbeat says otherwise: placed elsewhere.
        #expect(try await rooms.place(meeting: "big", excluding: [primary.id]).id == second.id)
        // The primary dies: a live member takes over, not the third SFU.
        try await rooms.leave(primary.id)
        #expect(try await rooms.place(meeting: "big").id == second.id)
        #expect(try await rooms.current(meeting: "big") == second.id)
        // An SFU leaves the meeting; the meeting ends: its keys go.
        try await rooms.leave(meeting: "big", node: primary.id)
        #expect(try await rooms.members(of: "big") == [second.id])
        try await rooms.release(meeting: "big")
        #expect(try await rooms.members(of: "big").isEmpty)
        #expect(try await rooms.current(meeting: "big") == nil)
    }

    @Test func anSFUPastItsPacketOrCPULimitOrDrainingTakesNoNewcomersAndADrainingPrimaryHandsTheMeetingOver() async throws {
        let server = try RedisServer()
        let rooms = RoomService(redis: try await RedisClient.connect(server.configuration))
        func beat(_ id: String, packets: Int = 0, cpu: Double = 0, draining: Bool = false) async throws {
            try await rooms.heartbeat(SFUNode(id: id, announceAddress: "127.0.0.1", ports: [40000], controlURL: "http://127.0.0.1:1/\(id)",
                                              capacity: 100, participants: 1, packetsPerSecond: packets, cpuPercent: cpu,
                                              maxPacketsPerSecond: 10_000, maxCPUPercent: 80, draining: draining))
            _ = try await rooms.redis.send(["PERSIST", "sfu:\(id)"])
        }
        for id in ["a", "b"] { try await beat(id) }
        let primary = try await rooms.place(meeting: "m").id
        let other = primary == "a" ? "b" : "a"
        // Few participants, but past its packet rate: the meeting spreads to the other SFU.
        try await beat(primary, packets: 12_000)
        #expect(try await rooms.place(meeting: "m").id == other)
        // Packets fine, CPU past its limit: still the other; both fine: the less loaded, by packets.
        try await beat(primary, packets: 100, cpu: 95)
        #expect(try await rooms.place(meeting: "m").id == other)
        try await beat(primary, packets: 100, cpu: 10)
        try await beat(other, packets: 9_000)
        #expect(try await rooms.place(meeting: "m").id == primary)
        // The primary drains: newcomers go to the other, which becomes the primary.
        try await beat(other)
        try await beat(primary, draining: true)
        #expect(try await rooms.place(meeting: "m").id == other)
        #expect(try await rooms.handOver(meeting: "m", from: primary) == other)
        #expect(try await rooms.current(meeting: "m") == other)
        #expect(try await rooms.handOver(meeting: "m", from: primary) == nil, "no longer the primary")
        // Both draining: nobody can take the newcomer.
        try await beat(other, draining: true)
        await #expect(throws: RedisError.self) { try await rooms.place(meeting: "m") }
    }

    @Test func anUnreachablePrimaryIsReplacedBeforeItsHeartbeatExpires() async throws {
        let server = try RedisServer()
        let rooms = RoomService(redis: try await RedisClient.connect(server.configuration))
        for id in ["a", "b"] { try await beat(rooms, id) }
        let primary = try await rooms.place(meeting: "m").id
        let other = primary == "a" ? "b" : "a"
        // Its control API refused the connection: it is dead to this placement, and the meeting's
        // primary moves, though its heartbeat is still in Redis.
        #expect(try await rooms.place(meeting: "m", unreachable: [primary]).id == other)
        #expect(try await rooms.current(meeting: "m") == other)
        await #expect(throws: RedisError.self) { try await rooms.place(meeting: "m", unreachable: ["a", "b"]) }
    }

    @Test func whenEverySFUIsFullTheNewcomerIsRefusedWithAClearError() async throws {
        let server = try RedisServer()
        let rooms = RoomService(redis: try await RedisClient.connect(server.configuration))
        try await beat(rooms, "a")
        _ = try await rooms.place(meeting: "m")
        try await beat(rooms, "a", participants: 2)
        do {
            _ = try await rooms.place(meeting: "m")
            Issue.record("placed on a full SFU")
        } catch {
            #expect(error.description.contains("capacity"))
        }
    }
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct MeetingRecordStoreTests {
    @Test func createdMeetingsOutliveTheHubThatMadeThem() async throws {
        let server = try RedisServer()
        let redis = try await RedisClient.connect(server.configuration)
        let store = RedisMeetingRecordStore(redis: redis, logger: Logger(label: "test"))
        let first = MeetingHub(adhocMeetings: false, store: store)
        var settings = MeetingSettings()
        settings.waitingRoom = true
        try await first.create(id: "board", settings: settings, passwordHash: "$2b$10$hash", hostSubject: "host-1")
        guard case .joined(let adaID, _) = try await first.admit(meeting: "board", identity: JoinIdentity(subject: "ada", name: "Ada", admitted: true), sink: nil),
              case .joined(let eveID, _) = try await first.admit(meeting: "board", identity: JoinIdentity(subject: "eve", name: "Eve", admitted: true), sink: nil) else {
            Issue.record("not in"); return
        }
        try await first.report(meeting: "board", reporterID: adaID, reportedID: eveID, reason: "spam")
        try await first.remove(meeting: "board", participantID: eveID, by: "Host")
        await first.setLocked("board", true)
        // Another process (a restarted signaling node) reads it all back from Redis.
        let second = MeetingHub(adhocMeetings: false, store: store)
        await first.flush()
        let view = await second.view("board")
        #expect(view?.locked == true && view?.hasPassword == true && view?.settings.waitingRoom == true)
        #expect(await second.access("board")?.passwordHash == "$2b$10$hash")
        #expect(await second.isHost(meeting: "board", subject: "host-1"))
        #expect(await second.reports(meeting: "board").map(\.reason) == ["spam"])
        await #expect(throws: SignalingError.removed) {
            try await second.admit(meeting: "board", identity: JoinIdentity(subject: "eve", name: "Eve"), sink: nil)
        }
        await #expect(throws: SignalingError.self) {
            try await second.create(id: "board", settings: MeetingSettings(), passwordHash: nil, hostSubject: "intruder")
        }
        await #expect(throws: SignalingError.meetingNotFound) {
            try await second.admit(meeting: "never-made", identity: JoinIdentity(subject: "x", name: "X"), sink: nil)
        }
    }
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct MeetingChangesAcrossNodesTests {
    @Test func aLockSetOnOneNodeHoldsOnTheOther() async throws {
        let server = try RedisServer()
        let logger = Logger(label: "test")
        let nodeA = MeetingHub(adhocMeetings: false, store: RedisMeetingRecordStore(redis: try await RedisClient.connect(server.configuration), logger: logger))
        let nodeB = MeetingHub(adhocMeetings: false, store: RedisMeetingRecordStore(redis: try await RedisClient.connect(server.configuration), logger: logger))
        await nodeA.follow(HubCallbacks(blocksChanged: { _, _ in }, admitted: { _, _, _, _, _ in }, orphanRemoved: { _, _ in }))
        let screenRules = Mutex<[String: Set<BlockedMedia>]>([:])
        await nodeB.follow(HubCallbacks(blocksChanged: { _, blocks in screenRules.withLock { $0 = blocks } }, admitted: { _, _, _, _, _ in },
                                        orphanRemoved: { _, _ in }))
        try await nodeA.create(id: "board", settings: MeetingSettings(), passwordHash: nil, hostSubject: "host")
        let bob = Inbox()
        guard case .joined(let bobID, _) = try await nodeB.admit(meeting: "board", identity: JoinIdentity(subject: "bob", name: "Bob"), sink: bob.sink) else {
            Issue.record("not in"); return
        }
        await nodeA.setLocked("board", true)
        _ = await nodeA.setHostsOnlyScreenShare("board", true)
        // Node B reloads the record and tells Bob; the SFU hears of the screen rule.
        await bob.waitFor(#""meeting-state""#, #""locked":true"#, #""hostsOnlyScreenShare":true"#)
        await eventually { screenRules.withLock { $0[bobID] == [.screen] } }
        #expect(await nodeB.view("board")?.locked == true)
        await #expect(throws: SignalingError.locked) {
            try await nodeB.admit(meeting: "board", identity: JoinIdentity(subject: "eve", name: "Eve"), sink: nil)
        }
    }
}
