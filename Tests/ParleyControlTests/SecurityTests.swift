import Foundation
import Synchronization
import Testing
@testable import ParleyAccess
@testable import ParleyControl
import ParleyMediaAPI

/// The server's rules for getting into a meeting, attacked directly (no HTTP in between).
@Suite struct GatekeeperTests {
    let hub = MeetingHub(adhocMeetings: false)
    let secret = ServerSecret.random()
    var gatekeeper: Gatekeeper { Gatekeeper(hub: hub, secret: secret, identities: nil) }

    func makeMeeting(_ id: String = "board", password: String? = "s3cret word", configure: (inout MeetingSettings) -> Void = { _ in }) async throws {
        var settings = MeetingSettings()
        configure(&settings)
        try await hub.create(id: id, settings: settings, passwordHash: password.map(PasswordHash.make), hostSubject: "host-1")
    }

    @Test func passwordsAreKeptAsBcryptHashesAndCheckedOnJoin() async throws {
        try await makeMeeting()
        let keeper = gatekeeper
        let hash = try #require(await hub.access("board")?.passwordHash)
        #expect(hash.hasPrefix("$2") && hash.contains("$10$") && !hash.contains("s3cret"))
        await #expect(throws: SignalingError.passwordRequired) { try await keeper.check(JoinRequest(meeting: "board", name: "Eve"), address: "10.0.0.9") }
        await #expect(throws: SignalingError.wrongPassword) {
            try await keeper.check(JoinRequest(meeting: "board", name: "Eve", password: "guess"), address: "10.0.0.9")
        }
        let identity = try await keeper.check(JoinRequest(meeting: "board", name: "Ada", password: "s3cret word"), address: "10.0.0.1")
        #expect(identity.name == "Ada" && !identity.isHost)
        await #expect(throws: SignalingError.meetingNotFound) { try await keeper.check(JoinRequest(meeting: "nope", name: "Ada"), address: "10.0.0.1") }
    }

    @Test func inviteLinksCarryThePasswordSealedAndTamperingIsRefused() async throws {
        try await makeMeeting()
        try await makeMeeting("other", password: "another one")
        let keeper = gatekeeper
        let code = try keeper.invites.seal(password: "s3cret word", meeting: "board")
        #expect(!code.contains("s3cret") && InviteCodes.data(base64URL: code) != nil)
        let identity = try await keeper.check(JoinRequest(meeting: "board", name: "Ada", invite: code), address: "10.0.0.1")
        #expect(identity.credentialKeys.contains { $0.hasPrefix("invite:") })
        // One character changed, or the link moved to another meeting: refused.
        var bytes = Array(code.utf8)
        bytes[bytes.count / 2] = bytes[bytes.count / 2] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let tampered = String(decoding: bytes, as: UTF8.self)
        await #expect(throws: SignalingError.access(.invalidInvite)) {
            try await keeper.check(JoinRequest(meeting: "board", name: "Eve", invite: tampered), address: "10.0.0.2")
        }
        await #expect(throws: SignalingError.access(.invalidInvite)) {
            try await keeper.check(JoinRequest(meeting: "other", name: "Eve", invite: code), address: "10.0.0.3")
        }
        // A link sealed by another server (another secret) opens nowhere here.
        let foreign = try InviteCodes(secret: .random()).seal(password: "s3cret word", meeting: "board")
        await #expect(throws: SignalingError.access(.invalidInvite)) {
            try await keeper.check(JoinRequest(meeting: "board", name: "Eve", invite: foreign), address: "10.0.0.4")
        }
    }

    @Test func failedAttemptsAreLimitedPerAddressAndPerMeeting() async throws {
        try await makeMeeting()
        let keeper = gatekeeper
        for _ in 0..<5 {
            await #expect(throws: SignalingError.wrongPassword) {
                try await keeper.check(JoinRequest(meeting: "board", name: "Eve", password: "wrong"), address: "10.0.0.66")
            }
        }
        // Past the limit even the right password waits, with the time to wait in the message.
        do {
            _ = try await keeper.check(JoinRequest(meeting: "board", name: "Eve", password: "s3cret word"), address: "10.0.0.66")
            Issue.record("the sixth attempt should have been refused")
        } catch {
            guard case .tooManyAttempts(let seconds) = error else { Issue.record("got \(error)"); return }
            #expect((1...60).contains(seconds))
            #expect(error.description == "too many attempts, retry in \(seconds) s")
        }
        // Another address is not held back by this one...
        _ = try await keeper.check(JoinRequest(meeting: "board", name: "Ada", password: "s3cret word"), address: "10.0.0.1")
        // ...until the meeting itself has seen too many failures from many addresses.
        for index in 0..<15 {
            _ = try? await keeper.check(JoinRequest(meeting: "board", name: "Eve", password: "wrong"), address: "10.1.0.\(index)")
        }
        await #expect(throws: SignalingError.self) {
            try await keeper.check(JoinRequest(meeting: "board", name: "Bob", password: "s3cret word"), address: "10.2.0.1")
        }
    }

    @Test func forgedExpiredWrongAudienceAndOtherMeetingTokensAreRefused() async throws {
        try await makeMeeting()
        let keeper = gatekeeper
        let good = try await keeper.tokens.issue(AccessClaims(subject: "p-1", meeting: "board", role: .participant, name: "Ada", email: nil,
                                                            admitted: false, lifetime: 60))
        #expect(try await keeper.check(JoinRequest(meeting: "board", name: "", token: good), address: "10.0.0.1").subject == "p-1")
        let forged = try await AccessTokens(secret: .random()).issue(AccessClaims(subject: "p-2", meeting: "board", role: .host, name: "Mallory",
                                                                                 email: nil, admitted: true, lifetime: 60))
        await #expect(throws: SignalingError.self) { try await keeper.check(JoinRequest(meeting: "board", name: "", token: forged), address: "10.0.0.2") }
        let expired = try await keeper.tokens.issue(AccessClaims(subject: "p-3", meeting: "board", role: .participant, name: "Old", email: nil,
                                                               admitted: false, lifetime: 60, now: Date().addingTimeInterval(-3600)))
        await #expect(throws: SignalingError.access(.expiredToken)) {
            try await keeper.check(JoinRequest(meeting: "board", name: "", token: expired), address: "10.0.0.3")
        }
        let otherAudience = AccessClaims(subject: "p-4", meeting: "board", role: .host, name: "X", email: nil, admitted: true, lifetime: 60,
                                         audience: ["some-other-service"])
        let wrongAudience = try await keeper.tokens.issue(otherAudience)
        await #expect(throws: SignalingError.self) {
            try await keeper.check(JoinRequest(meeting: "board", name: "", token: wrongAudience), address: "10.0.0.4")
        }
        let elsewhere = try await keeper.tokens.issue(AccessClaims(subject: "p-5", meeting: "other", role: .host, name: "X", email: nil,
                                                                 admitted: true, lifetime: 60))
        await #expect(throws: SignalingError.access(.wrongMeeting)) {
            try await keeper.check(JoinRequest(meeting: "board", name: "", token: elsewhere), address: "10.0.0.5")
        }
        await #expect(throws: SignalingError.self) {
            try await keeper.check(JoinRequest(meeting: "board", name: "", token: "not.a.jwt"), address: "10.0.0.6")
        }
    }

    @Test func signInAndDomainRulesNeedAVerifiedIdentity() async throws {
        try await makeMeeting("staff", password: nil) { $0.allowedDomains = ["example.org"] }
        let keeper = gatekeeper
        await #expect(throws: SignalingError.signInRequired) { try await keeper.check(JoinRequest(meeting: "staff", name: "Eve"), address: "10.0.0.1") }
        // A token that carries no verified email does not pass a domain rule either.
        let anonymous = try await keeper.tokens.issue(AccessClaims(subject: "p-1", meeting: "staff", role: .participant, name: "Eve", email: nil,
                                                                 admitted: false, lifetime: 60))
        await #expect(throws: SignalingError.signInRequired) {
            try await keeper.check(JoinRequest(meeting: "staff", name: "", token: anonymous), address: "10.0.0.1")
        }
        let outsider = try await keeper.tokens.issue(AccessClaims(subject: "p-2", meeting: "staff", role: .participant, name: "Eve",
                                                                email: "eve@evil.example", admitted: false, lifetime: 60))
        await #expect(throws: SignalingError.domainNotAllowed) {
            try await keeper.check(JoinRequest(meeting: "staff", name: "", token: outsider), address: "10.0.0.1")
        }
        let insider = try await keeper.tokens.issue(AccessClaims(subject: "p-3", meeting: "staff", role: .participant, name: "Ada",
                                                               email: "ada@example.org", admitted: false, lifetime: 60))
        #expect(try await keeper.check(JoinRequest(meeting: "staff", name: "", token: insider), address: "10.0.0.1").email == "ada@example.org")
        // ID tokens need a configured identity provider.
        await #expect(throws: SignalingError.self) {
            try await keeper.check(JoinRequest(meeting: "staff", name: "Eve", idToken: "x.y.z"), address: "10.0.0.1")
        }
    }
}

@Suite struct MeetingRulesTests {
    final class Inbox: Sendable {
        let messages = Mutex<[String]>([])
        var sink: MessageSink { { message in self.messages.withLock { $0.append(message.json) } } }
        var objects: [[String: Any]] {
            messages.withLock { $0 }.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        var types: [String] { objects.compactMap { $0["type"] as? String } }
    }

    func identity(_ subject: String, host: Bool = false, keys: Set<String> = []) -> JoinIdentity {
        JoinIdentity(subject: subject, name: subject, isHost: host, credentialKeys: keys)
    }

    @Test func aLockedMeetingKeepsItsPeopleAndAdmitsOnlyHosts() async throws {
        let hub = MeetingHub(adhocMeetings: false)
        try await hub.create(id: "m", settings: MeetingSettings(), passwordHash: nil, hostSubject: "h")
        guard case .joined(let adaID, _) = try await hub.admit(meeting: "m", identity: identity("ada"), sink: nil) else { Issue.record("not joined"); return }
        await hub.setLocked("m", true)
        await #expect(throws: SignalingError.locked) { try await hub.admit(meeting: "m", identity: identity("eve"), sink: nil) }
        await #expect(throws: SignalingError.locked) { try await hub.checkViewer(meeting: "m", identity: identity("eve")) }
        #expect(await hub.contains(meeting: "m", participantID: adaID))
        guard case .joined = try await hub.admit(meeting: "m", identity: identity("h", host: true), sink: nil) else { Issue.record("host kept out"); return }
        await hub.setLocked("m", false)
        guard case .joined = try await hub.admit(meeting: "m", identity: identity("eve"), sink: nil) else { Issue.record("still locked"); return }
    }

    @Test func lockOnStartAndUnknownMeetings() async throws {
        let hub = MeetingHub(adhocMeetings: false)
        var settings = MeetingSettings()
        settings.lockOnStart = true
        try await hub.create(id: "m", settings: settings, passwordHash: nil, hostSubject: "h")
        await #expect(throws: SignalingError.locked) { try await hub.admit(meeting: "m", identity: identity("ada"), sink: nil) }
        await #expect(throws: SignalingError.meetingNotFound) { try await hub.admit(meeting: "elsewhere", identity: identity("ada"), sink: nil) }
        let open = MeetingHub(adhocMeetings: true)
        guard case .joined = try await open.admit(meeting: "elsewhere", identity: identity("ada"), sink: nil) else { Issue.record("ad hoc refused"); return }
    }

    @Test func theWaitingRoomHoldsJoinersUntilAHostDecides() async throws {
        let hub = MeetingHub(adhocMeetings: false)
        var settings = MeetingSettings()
        settings.waitingRoom = true
        try await hub.create(id: "m", settings: settings, passwordHash: nil, hostSubject: "h")
        let host = Inbox(), ada = Inbox(), eve = Inbox()
        guard case .joined = try await hub.admit(meeting: "m", identity: identity("h", host: true), sink: host.sink) else { Issue.record("host waits"); return }
        guard case .waiting(let adaID) = try await hub.admit(meeting: "m", identity: identity("ada"), sink: ada.sink),
              case .waiting(let eveID) = try await hub.admit(meeting: "m", identity: identity("eve"), sink: eve.sink) else {
            Issue.record("joiners should wait"); return
        }
        #expect(await hub.participants(in: "m").count == 1)
        let lists = host.objects.filter { $0["type"] as? String == "waiting-room" }
        #expect((lists.last?["waiting"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["ada", "eve"])
        let admitted = try await hub.decide(meeting: "m", participantID: adaID, .admit)
        #expect(admitted.map(\.participantID) == [adaID])
        #expect(await hub.contains(meeting: "m", participantID: adaID))
        _ = try await hub.decide(meeting: "m", participantID: eveID, .deny)
        let eveIn = await hub.contains(meeting: "m", participantID: eveID)
        #expect(!eveIn)
        #expect(eve.objects.last?["code"] as? String == "denied")
        // A token a host issued skips the room.
        let vip = JoinIdentity(subject: "vip", name: "VIP", admitted: true)
        guard case .joined = try await hub.admit(meeting: "m", identity: vip, sink: nil) else { Issue.record("admitted token waited"); return }
    }

    @Test func removedParticipantsCannotReturnWithTheSameCredentialUntilAllowed() async throws {
        let hub = MeetingHub(adhocMeetings: false)
        try await hub.create(id: "m", settings: MeetingSettings(), passwordHash: nil, hostSubject: "h")
        let eve = Inbox()
        let eveIdentity = identity("eve", keys: ["invite:abc"])
        guard case .joined(let eveID, _) = try await hub.admit(meeting: "m", identity: eveIdentity, sink: eve.sink) else { Issue.record("not in"); return }
        try await hub.remove(meeting: "m", participantID: eveID, by: "Host")
        #expect(eve.objects.contains { $0["type"] as? String == "moderated" && $0["action"] as? String == "removed" })
        await #expect(throws: SignalingError.removed) { try await hub.admit(meeting: "m", identity: eveIdentity, sink: nil) }
        // The same invite link under a new identity is the same credential.
        await #expect(throws: SignalingError.removed) {
            try await hub.admit(meeting: "m", identity: self.identity("eve-again", keys: ["invite:abc"]), sink: nil)
        }
        try await hub.allowRejoin(meeting: "m", participantID: eveID)
        guard case .joined = try await hub.admit(meeting: "m", identity: eveIdentity, sink: nil) else { Issue.record("still blocked"); return }
    }

    @Test func hostBlocksReachTheSFUAndSelfUnmuteFollowsTheSetting() async throws {
        let hub = MeetingHub(adhocMeetings: false)
        var settings = MeetingSettings()
        settings.allowSelfUnmute = false
        try await hub.create(id: "m", settings: settings, passwordHash: nil, hostSubject: "h")
        guard case .joined(let hostID, _) = try await hub.admit(meeting: "m", identity: identity("h", host: true), sink: nil),
              case .joined(let adaID, _) = try await hub.admit(meeting: "m", identity: identity("ada"), sink: nil) else { Issue.record("not in"); return }
        let blocks = await hub.block(meeting: "m", participantID: nil, .audio, by: "Host")
        #expect(blocks[adaID] == [.audio] && blocks[hostID] == [])
        await #expect(throws: SignalingError.self) { try await hub.setOwnMute(meeting: "m", participantID: adaID, kind: .audio, muted: false) }
        #expect(await hub.unblock(meeting: "m", participantID: adaID, .audio)[adaID] == [])
        #expect(await hub.setHostsOnlyScreenShare("m", true)[adaID] == [.screen])
        #expect(await hub.effectiveBlocks("m")[hostID] == [])
        let hostModerates = await hub.isModerator(meeting: "m", participantID: hostID)
        let adaModerates = await hub.isModerator(meeting: "m", participantID: adaID)
        #expect(hostModerates && !adaModerates)
    }

    @Test func reportsAreKeptForHostsAndOperators() async throws {
        let hub = MeetingHub(adhocMeetings: false)
        try await hub.create(id: "m", settings: MeetingSettings(), passwordHash: nil, hostSubject: "h")
        let host = Inbox()
        guard case .joined = try await hub.admit(meeting: "m", identity: identity("h", host: true), sink: host.sink),
              case .joined(let adaID, _) = try await hub.admit(meeting: "m", identity: identity("ada"), sink: nil),
              case .joined(let eveID, _) = try await hub.admit(meeting: "m", identity: identity("eve"), sink: nil) else { Issue.record("not in"); return }
        try await hub.report(meeting: "m", reporterID: adaID, reportedID: eveID, reason: "spam in chat")
        await #expect(throws: SignalingError.self) { try await hub.report(meeting: "m", reporterID: adaID, reportedID: adaID, reason: "x") }
        #expect(await hub.reports(meeting: "m").map(\.reason) == ["spam in chat"])
        #expect(await hub.allReports().map(\.reportedName) == ["eve"])
        #expect(host.types.contains("reported"))
    }
}

@Suite struct TURNCredentialTests {
    @Test func credentialsFollowTheTURNRESTScheme() {
        // Checked against Python: base64(hmac.new(secret, username, sha1)).
        let credentials = TURNCredentials(urls: ["turn:turn.example.org:3478?transport=udp"], secret: "north-wind-secret", name: "p1",
                                          lifetime: .seconds(3600), now: Date(timeIntervalSince1970: 1_700_000_000))
        #expect(credentials.username == "1700003600:p1")
        #expect(credentials.credential == "CqVaLsMh9o2Bw8HOPne0ARKJC1U=")
        // Another secret, another participant, another time: another password.
        let other = TURNConfiguration(urls: credentials.urls, secret: "another-secret-entirely", lifetime: .seconds(3600))
            .credentials(for: "p1", now: Date(timeIntervalSince1970: 1_700_000_000))
        #expect(other.username == credentials.username && other.credential != credentials.credential)
    }

    @Test func joinedHandsEachParticipantItsOwnTURNCredentials() throws {
        let turn = TURNConfiguration(urls: ["turn:127.0.0.1:3478?transport=tcp"], secret: "north-wind-secret")
        let message = ServerMessage.joined(participantID: "p9", meeting: "m", participants: [], role: .participant, token: nil,
                                           state: MeetingStateView(locked: false, hostsOnlyScreenShare: false, waitingRoom: false),
                                           iceServers: [turn.credentials(for: "p9")])
        let object = try JSONSerialization.jsonObject(with: Data(message.json.utf8)) as? [String: Any]
        let server = try #require((object?["iceServers"] as? [[String: Any]])?.first)
        #expect(server["urls"] as? [String] == ["turn:127.0.0.1:3478?transport=tcp"])
        #expect((server["username"] as? String)?.hasSuffix(":p9") == true)
        #expect((server["credential"] as? String)?.isEmpty == false)
    }
}
