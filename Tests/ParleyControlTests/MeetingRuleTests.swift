import Foundation
import ParleyBase
import ParleyMediaAPI
import ParleyTestSupport
import Synchronization
import Testing
@testable import ParleyAccess
@testable import ParleyControl

/// The meeting's rules on plain values: what each returns (`MeetingEffect`s) is asserted, with no
/// actor, store or clock in between.
@Suite struct MeetingRuleTests {
    let context = MeetingContext(nodeID: "signal-a", maximumParticipants: 10, wallNow: 1_000, uptime: .seconds(5), draining: false,
                                 reconnectGrace: .seconds(10))

    func entry(_ id: String, subject: String? = nil, node: String = "signal-a", client: String = "web", role: ParticipantRole = .participant) -> LiveParticipant {
        LiveParticipant(info: ParticipantInfo(id: id, name: id.capitalized, client: client, role: role, audioMuted: false, videoMuted: false, tracks: []),
                        subject: subject ?? "sub-\(id)", email: nil, credentialKeys: ["sub:" + (subject ?? "sub-\(id)")], node: node, joinedAt: 1)
    }

    /// A meeting this node follows, with these participants connected here.
    func meeting(_ participants: [LiveParticipant], record: MeetingRecord = MeetingRecord(), persistent: Bool = true) -> Meeting {
        var meeting = Meeting(record: record, persistent: persistent)
        meeting.following = .yes
        for participant in participants {
            meeting.participants[participant.info.id] = participant
            if participant.node == context.nodeID { meeting.connections[participant.info.id] = Meeting.Connection(sink: { _ in }, holder: "socket-\(participant.info.id)") }
        }
        return meeting
    }

    @Test func aJoinIsAnnouncedToEveryoneElseHereAndPublishedAsOneEvent() {
        var meeting = meeting([entry("ada"), entry("bob", node: "signal-b")])
        let grace = entry("grace")
        meeting.connections["grace"] = Meeting.Connection(sink: { _ in }, holder: "socket-grace")
        let (before, effects) = meeting.add(grace)
        #expect(Set(before.map(\.id)) == ["ada", "bob"])
        let joined = OutgoingMessage(.participantJoined(grace.info))
        #expect(effects == [.deliver(to: ["ada"], joined),
                            .publish(.participant(grace), MeetingEvent.Delivery(to: .everyone(except: "grace"), joined))])
    }

    @Test func aChangeThatChangesNothingDoesNothing() {
        var meeting = meeting([entry("ada")])
        #expect(meeting.modify(participantID: "ada") { $0.info.audioMuted = false }.isEmpty)
        // What clients do not see (the transport) goes to the other nodes only.
        let effects = meeting.modify(participantID: "ada") { $0.transportID = "t1" }
        #expect(effects.count == 1)
        guard case .publish(.participant(let changed)?, nil) = effects.first else { Issue.record("\(effects)"); return }
        #expect(changed.transportID == "t1")
    }

    @Test func aRemovalIsStoredToldAndAnnouncedAndTakesCoHostStatusAway() throws {
        var record = MeetingRecord(hostSubjects: ["sub-host"])
        record.coHostSubjects = ["sub-ada"]
        var meeting = meeting([entry("host", role: .host), entry("ada", role: .cohost)], record: record)
        let effects = try meeting.remove(participantID: "ada", by: "Host")
        #expect(meeting.participants["ada"] == nil)
        #expect(meeting.record.removed == ["sub:sub-ada": "ada"])
        #expect(meeting.record.coHostSubjects.isEmpty)
        let left = OutgoingMessage(.participantLeft(participantID: "ada"))
        #expect(effects == [.persist(meeting.record),
                            .deliver(to: ["ada"], OutgoingMessage(.moderated(action: "removed", by: "Host"))),
                            .deliver(to: ["ada"], OutgoingMessage(.meetingEnded(reason: "a host removed you from this meeting"))),
                            .deliver(to: ["host"], left),
                            .publish(.participantLeft("ada", node: "signal-a"), MeetingEvent.Delivery(to: .everyone(except: nil), left))])
        #expect(throws: SignalingError.forbidden("a host cannot be removed")) { try meeting.remove(participantID: "host", by: "Host") }
    }

    @Test func admittingSomeoneWaitingOnAnotherNodeTellsThatNode() throws {
        var record = MeetingRecord(hostSubjects: ["sub-host"])
        record.settings.waitingRoom = true
        var meeting = meeting([entry("host", role: .host)], record: record)
        meeting.waiting["eve"] = LiveWaiting(entry: WaitingParticipant(id: "eve", name: "Eve", email: nil), identity: JoinIdentity(subject: "eve", name: "Eve"),
                                             node: "signal-b", since: 2)
        let (here, effects) = try meeting.decide(participantID: "eve", .admit, context: context)
        #expect(here.isEmpty, "Eve's connection is on node B")
        #expect(effects.contains(.publish(.admitted("eve"), nil)))
        #expect(effects.first == .publish(.waitingLeft("eve"), nil))
        #expect(meeting.participants["eve"]?.joinedAt == context.wallNow)
        #expect(throws: SignalingError.badRequest("eve is not waiting")) { try meeting.decide(participantID: "eve", .deny, context: context) }
    }

    @Test func placementFollowsTheRolesAndTheWaitingRoom() {
        var record = MeetingRecord(locked: true, hostSubjects: ["h"], coHostSubjects: ["c"])
        record.settings.waitingRoom = true
        let meeting = meeting([], record: record)
        func plan(_ identity: JoinIdentity) -> JoinPlan {
            meeting.planJoin(meeting: "m", identity: identity, resume: nil, participantID: "new", context: context)
        }
        let host = plan(JoinIdentity(subject: "h", name: "H"))
        #expect(host.isHost && !host.waits && host.entry.info.role == .host && host.request.moderator)
        let cohost = plan(JoinIdentity(subject: "c", name: "C"))
        #expect(!cohost.waits && cohost.entry.info.role == .cohost && cohost.request.moderator, "a co-host is a moderator: the lock does not apply")
        let invited = plan(JoinIdentity(subject: "i", name: "I", admitted: true))
        #expect(!invited.waits && !invited.request.moderator && invited.request.participant != nil)
        let stranger = plan(JoinIdentity(subject: "s", name: "S"))
        #expect(stranger.waits && stranger.request.waiting?.since == context.wallNow && stranger.request.participant == nil)
        #expect(stranger.request.locked, "the store is given this node's copy of the lock")
    }

    @Test func orphansAreMarkedKeptThroughTheGraceThenDroppedOrOfferedForAdoption() {
        var meeting = meeting([entry("ada"), entry("bob", node: "signal-dead"), entry("cam", node: "signal-dead", client: "whip"),
                               entry("dan", node: "signal-b")])
        meeting.connections["ada"] = nil   // Ada's socket here is gone too.
        var now = context
        var (effects, adoptions) = meeting.sweepOrphans(alive: ["signal-a", "signal-b"], context: now)
        #expect(effects.isEmpty && adoptions.isEmpty)
        #expect(Set(meeting.orphanedSince.keys) == ["ada", "bob", "cam"])
        now.uptime += .seconds(10) - .milliseconds(1)
        (effects, adoptions) = meeting.sweepOrphans(alive: ["signal-a", "signal-b"], context: now)
        #expect(effects.isEmpty && adoptions.isEmpty, "still within the grace")
        now.uptime += .milliseconds(1)
        (effects, adoptions) = meeting.sweepOrphans(alive: ["signal-a", "signal-b"], context: now)
        #expect(adoptions == [Meeting.Adoption(participantID: "cam", node: "signal-dead")])
        #expect(effects.contains(.removeOrphan(participantID: "ada", node: "signal-a")))
        #expect(effects.contains(.removeOrphan(participantID: "bob", node: "signal-dead")))
        #expect(effects.contains(.stopMedia(participantID: "bob")))
        #expect(Set(meeting.participants.keys) == ["cam", "dan"])
        let adopted = meeting.adopted(adoptions[0], context: now)
        #expect(meeting.participants["cam"]?.node == "signal-a" && meeting.connections["cam"] != nil)
        #expect(adopted.last == .watchAdopted(participantID: "cam", transportID: nil))
    }

    @Test func aSnapshotDoesNotBringBackWhoLeftWhileItLoaded() {
        var meeting = Meeting()
        let first = meeting.beginFollowing(), second = meeting.beginFollowing()
        #expect(first && !second)
        _ = meeting.apply(MeetingEvent(origin: "signal-b", meeting: "m", change: .participantLeft("bob", node: "signal-b")), context: context)
        _ = meeting.apply(MeetingEvent(origin: "signal-b", meeting: "m", change: .participant(entry("cy", node: "signal-b"))), context: context)
        var stale = entry("cy", node: "signal-b")
        stale.info.name = "Stale"
        meeting.merge(snapshot: ([entry("bob", node: "signal-b"), stale, entry("dee", node: "signal-b")], []))
        #expect(meeting.following == .yes)
        #expect(Set(meeting.participants.keys) == ["cy", "dee"])
        #expect(meeting.participants["cy"]?.info.name == "Cy", "the event is newer than the snapshot")
    }

    @Test func aParticipantThatReconnectedThroughAnotherNodeLosesItsConnectionHere() {
        var meeting = meeting([entry("ada")])
        let moved = entry("ada", node: "signal-b")
        let effects = meeting.apply(MeetingEvent(origin: "signal-b", meeting: "m", change: .participant(moved)), context: context)
        #expect(effects.isEmpty)
        #expect(meeting.connections["ada"] == nil && meeting.participants["ada"] == moved)
    }
}

/// The hub on an injected clock and on stores that stand in for a cluster: no test here sleeps.
@Suite(.timeLimit(.minutes(1))) struct MeetingHubOnFakeTimeTests {
    final class Inbox: Sendable {
        let messages = Mutex<[String]>([])
        var sink: MessageSink { { message in self.messages.withLock { $0.append(message.json) } } }
    }

    @Test func theAttemptLimitLiftsExactlyWhenItsWindowHasPassed() async throws {
        let clock = ManualServiceClock()
        let hub = MeetingHub(adhocMeetings: false, clock: clock)
        try await hub.create(id: "board", settings: MeetingSettings(), passwordHash: PasswordHash.make("right one"), hostSubject: "host")
        let keeper = Gatekeeper(hub: hub, secret: .random(), identities: nil)
        for _ in 0..<5 {
            await #expect(throws: SignalingError.wrongPassword) {
                try await keeper.check(JoinRequest(meeting: "board", name: "Eve", password: "wrong"), address: "10.0.0.66")
            }
        }
        clock.advance(by: .seconds(20))
        await #expect(throws: SignalingError.tooManyAttempts(retryAfter: 40)) {
            try await keeper.check(JoinRequest(meeting: "board", name: "Eve", password: "right one"), address: "10.0.0.66")
        }
        clock.advance(by: .seconds(40))
        let identity = try await keeper.check(JoinRequest(meeting: "board", name: "Eve", password: "right one"), address: "10.0.0.66")
        #expect(identity.name == "Eve")
    }

    @Test func joinTimesAndReportTimesComeFromTheClock() async throws {
        let clock = ManualServiceClock(wall: 1_750_000_000)
        let hub = MeetingHub(clock: clock)
        let (adaID, _) = try await hub.join(meeting: "m", name: "Ada", client: "web", sink: nil)
        clock.advance(by: .seconds(3))
        let (bobID, _) = try await hub.join(meeting: "m", name: "Bob", client: "web", sink: nil)
        #expect(await hub.participants(in: "m").map(\.id) == [adaID, bobID])
        try await hub.report(meeting: "m", reporterID: adaID, reportedID: bobID, reason: "spam")
        #expect(await hub.reports(meeting: "m").first?.at == Date(timeIntervalSince1970: 1_750_000_003))
    }

    @Test func parleyServeAdmitsConcurrentJoinsUpToTheCapacityOnly() async throws {
        let hub = MeetingHub(maximumParticipants: 3)
        let admitted = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<10 {
                group.addTask { (try? await hub.admit(meeting: "crowd", identity: JoinIdentity(subject: "p\(index)", name: "P\(index)"), sink: { _ in })) != nil }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(admitted == 3)
        #expect(await hub.participantCount == 3)
    }

    @Test func aCoHostPassesTheLockAndARemovedCoHostReturnsOnlyAsAParticipantOnceAllowed() async throws {
        let hub = MeetingHub()
        let (hostID, _) = try await hub.join(meeting: "m", name: "Host", client: "web", sink: nil)
        _ = hostID
        guard case .joined(let adaID, _) = try await hub.admit(meeting: "m", identity: JoinIdentity(subject: "ada", name: "Ada"), sink: nil) else {
            Issue.record("Ada not in"); return
        }
        try await hub.setCoHost(meeting: "m", participantID: adaID, true)
        await hub.setLocked("m", true)
        await hub.leave(meeting: "m", participantID: adaID)
        guard case .joined(let again, _) = try await hub.admit(meeting: "m", identity: JoinIdentity(subject: "ada", name: "Ada"), sink: nil) else {
            Issue.record("the co-host did not get back into the locked meeting"); return
        }
        #expect(await hub.participant(meeting: "m", id: again)?.info.role == .cohost)
        await hub.setLocked("m", false)
        try await hub.remove(meeting: "m", participantID: again, by: "Host")
        await #expect(throws: SignalingError.removed) {
            try await hub.admit(meeting: "m", identity: JoinIdentity(subject: "ada", name: "Ada"), sink: nil)
        }
        try await hub.allowRejoin(meeting: "m", participantID: again)
        guard case .joined(let third, _) = try await hub.admit(meeting: "m", identity: JoinIdentity(subject: "ada", name: "Ada"), sink: nil) else {
            Issue.record("allowed back, but not in"); return
        }
        #expect(await hub.participant(meeting: "m", id: third)?.info.role == .participant)
    }

    @Test func parleyServesShutdownEndsTheMeetingForParticipantsAndPeopleWaiting() async throws {
        let hub = MeetingHub()
        var settings = MeetingSettings()
        settings.waitingRoom = true
        try await hub.create(id: "m", settings: settings, passwordHash: nil, hostSubject: "host")
        let host = Inbox(), eve = Inbox()
        _ = try await hub.admit(meeting: "m", identity: JoinIdentity(subject: "host", name: "Host", isHost: true), sink: host.sink)
        guard case .waiting = try await hub.admit(meeting: "m", identity: JoinIdentity(subject: "eve", name: "Eve"), sink: eve.sink) else {
            Issue.record("Eve should wait"); return
        }
        await hub.endAll(reason: "the server is shutting down")
        #expect(host.messages.withLock { $0.last?.contains(#""meeting-ended""#) } == true)
        #expect(eve.messages.withLock { $0.last?.contains(#""meeting-ended""#) } == true)
    }

    /// A cluster's store with one dead node whose claims wait until the test lets them go: a
    /// leave can then run while the sweep awaits an adoption (it used to trap the sweep, which
    /// force-unwrapped the meeting after that await).
    final class DeadNodeStore: LiveMeetingStore {
        let local = LocalLiveMeetingStore()
        var nodeID: String { local.nodeID }
        var isShared: Bool { true }
        let claims = Locked<[CheckedContinuation<Bool, Never>]>([])
        let (stream, events) = AsyncStream<LiveStoreEvent>.makeStream()

        func admit(_ request: AdmissionRequest) async throws(SignalingError) -> AdmissionOutcome { try await local.admit(request) }
        func snapshot(_ meeting: String) async -> (participants: [LiveParticipant], waiting: [LiveWaiting])? { await local.snapshot(meeting) }
        func follow(_ meeting: String) async {}
        func unfollow(_ meeting: String) async {}
        func publish(_ event: MeetingEvent) { local.publish(event) }
        func removeOrphan(meeting: String, participantID: String, node: String) { local.removeOrphan(meeting: meeting, participantID: participantID, node: node) }
        func adopt(meeting: String, participantID: String, from node: String) async -> Bool {
            await withCheckedContinuation { continuation in claims.withLock { $0.append(continuation) } }
        }
        func events() async -> AsyncStream<LiveStoreEvent> { stream }
        func liveNodes() async -> Set<String>? { [nodeID] }
        var pendingClaims: Int { claims.withLock { $0.count } }
        func grantClaims() { for claim in claims.withLock({ claims in defer { claims = [] }; return claims }) { claim.resume(returning: true) } }
    }

    @Test func aLeaveDuringAnAdoptionDoesNotCrashTheSweep() async throws {
        let store = DeadNodeStore()
        let hub = MeetingHub(live: store, reconnectGrace: .zero, clock: ManualServiceClock())
        await hub.follow(HubCallbacks(blocksChanged: { _, _ in }, admitted: { _, _, _, _, _ in }, orphanRemoved: { _, _ in }))
        let (watcherID, _) = try await hub.join(meeting: "cast", name: "Watcher", client: "web", sink: { _ in })
        for name in ["obs-1", "obs-2"] {
            let publisher = LiveParticipant(info: ParticipantInfo(id: name, name: name, client: "whip", role: .participant, audioMuted: false, videoMuted: false,
                                                                  tracks: []), subject: name, email: nil, credentialKeys: [], node: "signal-dead", joinedAt: 1)
            store.events.yield(.meeting(MeetingEvent(origin: "signal-dead", meeting: "cast", change: .participant(publisher))))
        }
        while await hub.participants(in: "cast").count < 3 { await Task.yield() }
        await hub.sweepOrphans()   // marks both publishers
        let sweep = Task { await hub.sweepOrphans() }   // claims the first, and waits
        while store.pendingClaims < 1 { await Task.yield() }
        // The last connection here goes meanwhile: the ad hoc meeting is forgotten.
        await hub.leave(meeting: "cast", participantID: watcherID)
        #expect(await hub.meetingCount == 0)
        // Every claim is won: the sweep goes on with a meeting that is not there any more.
        let granting = Task { while !Task.isCancelled { store.grantClaims(); await Task.yield() } }
        await sweep.value
        granting.cancel()
        #expect(await hub.meetingCount == 0)
    }
}
