import Foundation
import Logging
import Testing
@testable import ParleyCluster
import ParleyControl
import ParleyMediaAPI
import ParleyRedis
import ParleyTestSupport
import ParleyBase
import Synchronization

/// Two (or three) signaling nodes' hubs sharing one real redis-server, as `parley signal` runs them.
@Suite(.serialized, .timeLimit(.minutes(3))) struct LiveStateAcrossNodesTests {
    final class Node: Sendable {
        let hub: MeetingHub
        let live: RedisLiveMeetingStore
        let admitted = Mutex<[String]>([])
        init(hub: MeetingHub, live: RedisLiveMeetingStore) { self.hub = hub; self.live = live }
    }

    func node(_ id: String, _ server: RedisServer, maximum: Int = 500, grace: Duration = .seconds(10),
              clock: any ServiceClock = SystemServiceClock()) async throws -> Node {
        let logger = Logger(label: id)
        let redis = try await RedisClient.connect(server.configuration)
        let live = try await RedisLiveMeetingStore(redis: redis, configuration: server.configuration, nodeID: id, logger: logger)
        let hub = MeetingHub(maximumParticipants: maximum, adhocMeetings: true, store: RedisMeetingRecordStore(redis: redis, logger: logger),
                             live: live, reconnectGrace: grace, clock: clock)
        let node = Node(hub: hub, live: live)
        await hub.follow(HubCallbacks(blocksChanged: { _, _ in },
                                      admitted: { _, participantID, _, _, sink in
                                          node.admitted.withLock { $0.append(participantID) }
                                          sink(OutgoingMessage(.waiting(participantID: "admitted-\(participantID)")))
                                      },
                                      orphanRemoved: { _, _ in }))
        return node
    }

    @Test func participantsOnDifferentNodesSeeEachOthersEventsAndHostActions() async throws {
        let server = try RedisServer()
        let a = try await node("signal-a", server)
        let b = try await node("signal-b", server)
        defer { a.live.stop(); b.live.stop() }
        var settings = MeetingSettings()
        settings.waitingRoom = true
        settings.allowSelfUnmute = false
        try await a.hub.create(id: "board", settings: settings, passwordHash: nil, hostSubject: "host")
        let host = Inbox(), ada = Inbox(), eve = Inbox()
        guard case .joined(let hostID, _) = try await a.hub.admit(meeting: "board", identity: JoinIdentity(subject: "host", name: "Hostess", isHost: true),
                                                               sink: host.sink) else { Issue.record("host not in"); return }
        // Ada knocks on node B: the host on node A sees her waiting and lets her in.
        guard case .waiting(let adaID) = try await b.hub.admit(meeting: "board", identity: JoinIdentity(subject: "ada", name: "Ada"), sink: ada.sink) else {
            Issue.record("Ada did not wait"); return
        }
        #expect(await host.waitFor(#""waiting-room""#, adaID))
        let local = try await a.hub.decide(meeting: "board", participantID: adaID, .admit)
        #expect(local.isEmpty, "Ada's connection is on node B, which tells her")
        #expect(await ada.waitFor("admitted-\(adaID)"))
        #expect(b.admitted.withLock { $0 } == [adaID])
        #expect(await b.hub.contains(meeting: "board", participantID: adaID))
        #expect(await host.waitFor(#""participant-joined""#, adaID))
        #expect(await b.hub.participants(in: "board").map(\.id) == [hostID, adaID])

        // Chat and mutes cross in both directions.
        await b.hub.broadcast(meeting: "board", .chat(from: adaID, name: "Ada", text: "hello from B", at: 0), except: nil)
        #expect(await host.waitFor("hello from B"))
        await a.hub.broadcast(meeting: "board", .chat(from: hostID, name: "Hostess", text: "hello from A", at: 0), except: nil)
        #expect(await ada.waitFor("hello from A"))
        _ = try await b.hub.setOwnMute(meeting: "board", participantID: adaID, kind: .video, muted: true)
        #expect(await host.waitFor(#""participant-updated""#, #""videoMuted":true"#))

        // Host controls from node A reach Ada on node B, and her entry carries the block.
        let blocks = await a.hub.block(meeting: "board", participantID: adaID, .audio, by: "Hostess")
        #expect(blocks[adaID] == [.audio])
        #expect(await ada.waitFor(#""moderated""#, "mute-audio"))
        // Once Ada's entry with the block reached node B, her own unmute is refused there.
        #expect(await ada.waitFor(#""participant-updated""#, #""audioMuted":true"#))
        await #expect(throws: SignalingError.self) {
            _ = try await b.hub.setOwnMute(meeting: "board", participantID: adaID, kind: .audio, muted: false)
        }
        try await a.hub.setCoHost(meeting: "board", participantID: adaID, true)
        #expect(await ada.waitFor(#""participant-updated""#, #""role":"cohost""#))

        // Locked on A: a newcomer on B is refused by the shared admission, even before B reloads the record.
        await a.hub.setLocked("board", true)
        await a.hub.flush()
        await #expect(throws: SignalingError.locked) {
            try await b.hub.admit(meeting: "board", identity: JoinIdentity(subject: "eve", name: "Eve", admitted: true), sink: eve.sink)
        }

        // Removal from A: Ada's connection on B is told and she is out everywhere.
        try await a.hub.setCoHost(meeting: "board", participantID: adaID, false)
        try await a.hub.remove(meeting: "board", participantID: adaID, by: "Hostess")
        #expect(await ada.waitFor(#""meeting-ended""#))
        #expect(await host.waitFor(#""participant-left""#, adaID))
        await eventually { await !b.hub.contains(meeting: "board", participantID: adaID) }
        // The removal reaches B's copy of the meeting record a moment after the departure (slower under ThreadSanitizer).
        await eventually { await b.hub.hasRemoved(meeting: "board", participantID: adaID) }
        await #expect(throws: SignalingError.removed) {
            try await b.hub.admit(meeting: "board", identity: JoinIdentity(subject: "ada", name: "Ada", admitted: true), sink: nil)
        }
    }

    @Test func concurrentJoinsOnTwoNodesNeverPassTheCapacity() async throws {
        let server = try RedisServer()
        let a = try await node("signal-a", server, maximum: 3)
        let b = try await node("signal-b", server, maximum: 3)
        defer { a.live.stop(); b.live.stop() }
        let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<10 {
                let hub = index.isMultiple(of: 2) ? a.hub : b.hub
                group.addTask {
                    do {
                        _ = try await hub.admit(meeting: "crowd", identity: JoinIdentity(subject: "p\(index)", name: "P\(index)"), sink: { _ in })
                        return true
                    } catch SignalingError.meetingFull {
                        return false
                    }
                }
            }
            var admitted = 0
            for try await joined in group where joined { admitted += 1 }
            return admitted
        }
        #expect(outcomes == 3)
        #expect(await a.live.snapshot("crowd")?.participants.count == 3)
    }

    @Test func aClientOfADeadNodeResumesThroughAnotherAndOthersAreDroppedAfterTheGrace() async throws {
        let server = try RedisServer()
        let clock = ManualServiceClock()
        let a = try await node("signal-a", server, grace: .seconds(1), clock: clock)
        let b = try await node("signal-b", server, grace: .seconds(1), clock: ManualServiceClock())
        let watcher = Inbox()
        guard case .joined(let watcherID, _) = try await a.hub.admit(meeting: "m", identity: JoinIdentity(subject: "w", name: "Watcher"),
                                                                  sink: watcher.sink),
              case .joined(let adaID, _) = try await b.hub.admit(meeting: "m", identity: JoinIdentity(subject: "ada", name: "Ada"), sink: { _ in }),
              case .joined(let bobID, _) = try await b.hub.admit(meeting: "m", identity: JoinIdentity(subject: "bob", name: "Bob"), sink: { _ in }) else {
            Issue.record("not in"); return
        }
        await b.hub.setTransport(meeting: "m", participantID: adaID, "transport-1")
        #expect(await watcher.waitFor(#""participant-joined""#, bobID))
        // Node B dies (no more heartbeats, no more events; its heartbeat key goes at once rather
        // than after its TTL); a third node takes Ada back.
        await b.live.leave()
        let c = try await node("signal-c", server, grace: .seconds(1), clock: ManualServiceClock())
        defer { a.live.stop(); c.live.stop() }
        // Someone else naming Ada's participant id only joins as themselves.
        guard case .joined(let malloryID, _) = try await c.hub.admit(meeting: "m", identity: JoinIdentity(subject: "mallory", name: "Ada"),
                                                                  sink: { _ in }, resume: adaID) else {
            Issue.record("another identity took Ada's place"); return
        }
        #expect(malloryID != adaID)
        let ada = Inbox()
        guard case .resumed(let resumedID, let transportID, let others) = try await c.hub.admit(
            meeting: "m", identity: JoinIdentity(subject: "ada", name: "Ada", admitted: true), sink: ada.sink, resume: adaID) else {
            Issue.record("Ada was not resumed"); return
        }
        #expect(resumedID == adaID && transportID == "transport-1")
        #expect(Set(others.map(\.id)).isSuperset(of: [watcherID, bobID]))
        // Node A has Ada's entry from node C once C's next event arrives (events leave in order).
        await c.hub.broadcast(meeting: "m", .chat(from: adaID, name: "Ada", text: "I am back", at: 0), except: nil)
        #expect(await watcher.waitFor("I am back"))
        // Bob never comes back: node A's sweep marks him, keeps him through the grace, then drops him.
        await clock.waitForSleepers()
        clock.advance(by: .seconds(1))
        await clock.waitForSleepers()
        #expect(!watcher.contains(#""participant-left""#, bobID), "dropped before the grace was over")
        clock.advance(by: .seconds(1))
        #expect(await watcher.waitFor(#""participant-left""#, bobID))
        #expect(!watcher.contains(#""participant-left""#, adaID), "Ada resumed and must not leave")
        #expect(await a.hub.participants(in: "m").map(\.id).sorted() == [watcherID, adaID, malloryID].sorted())
        await a.hub.broadcast(meeting: "m", .chat(from: watcherID, name: "Watcher", text: "after the failover", at: 0), except: nil)
        #expect(await ada.waitFor("after the failover"))
    }

    @Test func aDeadNodesWHIPPublisherIsTakenOverAndAnyNodeCanEndIt() async throws {
        let server = try RedisServer()
        let clock = ManualServiceClock()
        let a = try await node("signal-a", server, grace: .milliseconds(500), clock: clock)
        let b = try await node("signal-b", server, grace: .milliseconds(500), clock: ManualServiceClock())
        let watcher = Inbox()
        guard case .joined = try await a.hub.admit(meeting: "cast", identity: JoinIdentity(subject: "w", name: "Watcher"), sink: watcher.sink),
              case .joined(let whipID, _) = try await b.hub.admit(meeting: "cast", identity: JoinIdentity(subject: "obs", name: "OBS", client: "whip"),
                                                                 sink: nil) else {
            Issue.record("not in"); return
        }
        #expect(await watcher.waitFor(#""participant-joined""#, whipID))
        await b.live.leave()
        // Node A takes the publisher over, after the grace, rather than ending its media.
        await clock.waitForSleepers()
        clock.advance(by: .seconds(1))
        await clock.waitForSleepers()
        #expect(await !a.hub.contains(meeting: "cast", participantID: whipID), "taken over before the grace was over")
        clock.advance(by: .seconds(1))
        await clock.waitForSleepers()
        #expect(await a.hub.contains(meeting: "cast", participantID: whipID), "no live node took the WHIP publisher over")
        #expect(!watcher.contains(#""participant-left""#, whipID))
        // A DELETE reaching a node that holds no connection of this meeting ends it everywhere.
        let c = try await node("signal-c", server)
        defer { a.live.stop(); c.live.stop() }
        #expect(await c.hub.end(meeting: "cast", participantID: whipID))
        #expect(await watcher.waitFor(#""participant-left""#, whipID))
        #expect(await a.live.snapshot("cast")?.participants.map(\.info.name) == ["Watcher"])
    }
}
