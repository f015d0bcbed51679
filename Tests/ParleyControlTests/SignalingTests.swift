import Foundation
import ParleyMediaAPI
import ParleyTestSupport
import Synchronization
import Testing
@testable import ParleyControl

@Suite struct SignalingMessageTests {
    @Test func clientMessagesDecodeByType() throws {
        #expect(try ClientMessage(json: #"{"type":"join","meeting":"demo","name":"Ada"}"#) == .join(JoinRequest(meeting: "demo", name: "Ada")))
        #expect(try ClientMessage(json: #"{"type":"offer","sdp":"v=0","sources":{"0":"camera"}}"#) == .offer(sdp: "v=0", sources: ["0": "camera"]))
        #expect(try ClientMessage(json: #"{"type":"mute","kind":"video","muted":true}"#) == .mute(kind: .video, muted: true))
        #expect(try ClientMessage(json: #"{"type":"leave"}"#) == .leave)
        #expect(try ClientMessage(json: #"{"type":"ping","id":"a1"}"#) == .ping(id: "a1"))
        #expect(ServerMessage.pong(id: "a1").json == #"{"id":"a1","type":"pong"}"#)
    }

    @Test func malformedMessagesGetAReasonNotACrash() {
        #expect(throws: SignalingError.badMessage("not a JSON object with a string \"type\"")) { try ClientMessage(json: "{nope") }
        #expect(throws: SignalingError.badMessage("unknown message type \"dance\"")) { try ClientMessage(json: #"{"type":"dance"}"#) }
        #expect(throws: SignalingError.badMessage("join needs \"meeting\"")) { try ClientMessage(json: #"{"type":"join"}"#) }
        #expect(throws: SignalingError.self) { try ClientMessage(json: #"{"type":"mute","kind":"smell","muted":true}"#) }
        #expect(throws: SignalingError.self) { try ClientMessage(json: String(repeating: " ", count: ClientMessage.maximumSize + 1)) }
        var rng = SeededGenerator()
        for _ in 0..<2000 {
            let junk = String(decoding: (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...127, using: &rng) }, as: UTF8.self)
            _ = try? ClientMessage(json: junk)
        }
    }

    @Test func namesMeetingsAndChatAreValidated() throws {
        #expect(try Validation.displayName("  Ada  ") == "Ada")
        #expect(throws: SignalingError.self) { try Validation.displayName("   ") }
        #expect(throws: SignalingError.self) { try Validation.displayName(String(repeating: "x", count: 65)) }
        #expect(throws: SignalingError.self) { try Validation.displayName("a\u{0007}b") }
        #expect(try Validation.meetingID("team-standup_2") == "team-standup_2")
        #expect(throws: SignalingError.self) { try Validation.meetingID("../etc") }
        #expect(throws: SignalingError.self) { try Validation.meetingID("") }
        #expect(throws: SignalingError.self) { try Validation.chatText(String(repeating: "y", count: 2001)) }
    }

    @Test func serverMessagesCarryTheirType() throws {
        let json = ServerMessage.answer(sdp: "v=0", assignments: [MidAssignment(mid: "2", kind: .video, producerID: "p", participantID: "u", source: "camera")], assignmentsVersion: 3).json
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(object?["type"] as? String == "answer")
        let assignment = (object?["assignments"] as? [[String: Any]])?.first
        #expect(assignment?["participantId"] as? String == "u")
        #expect(object?["assignmentsVersion"] as? Int == 3)
        #expect(ServerMessage.error(code: "bad-message", message: "x").json.contains(#""code":"bad-message""#))
    }
}

@Suite struct MeetingHubTests {
    final class Inbox: Sendable {
        let messages = Mutex<[String]>([])
        var sink: MessageSink { { message in self.messages.withLock { $0.append(message.json) } } }
        var types: [String] {
            messages.withLock { $0 }.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["type"] as? String }
        }
    }

    @Test func joinsUpdatesAndLeavesReachEveryoneElse() async throws {
        let hub = MeetingHub()
        let ada = Inbox(), grace = Inbox()
        let (adaID, before) = try await hub.join(meeting: "m", name: "Ada", client: "web", sink: ada.sink)
        #expect(before.isEmpty)
        let (graceID, others) = try await hub.join(meeting: "m", name: "Grace", client: "web", sink: grace.sink)
        #expect(others.map(\.id) == [adaID])
        #expect(ada.types == ["participant-joined"])
        await hub.update(meeting: "m", participantID: graceID) { $0.audioMuted = true }
        await hub.update(meeting: "m", participantID: graceID) { $0.audioMuted = true }  // no change, no message
        #expect(ada.types == ["participant-joined", "participant-updated"])
        await hub.leave(meeting: "m", participantID: graceID)
        #expect(ada.types.last == "participant-left")
        #expect(await hub.participants(in: "m").map(\.id) == [adaID])
        await hub.leave(meeting: "m", participantID: adaID)
        #expect(await hub.meetingCount == 0)
    }

    @Test func aReconnectResumesTheParticipantAndTheOldSocketClosingLaterChangesNothing() async throws {
        let hub = MeetingHub()
        let watcher = Inbox(), first = Inbox(), second = Inbox()
        _ = try await hub.join(meeting: "m", name: "Watcher", client: "web", sink: watcher.sink)
        let ada = JoinIdentity(subject: "ada", name: "Ada", admitted: true)
        guard case .joined(let adaID, _) = try await hub.admit(meeting: "m", identity: ada, sink: first.sink, connection: "old") else {
            Issue.record("not in"); return
        }
        // Someone else cannot take Ada's place by naming her id: they join as themselves.
        guard case .joined(let otherID, _) = try await hub.admit(meeting: "m", identity: JoinIdentity(subject: "eve", name: "Eve"), sink: nil,
                                                              resume: adaID, connection: "eve") else { Issue.record("Eve not in"); return }
        #expect(otherID != adaID)
        guard case .resumed(let resumedID, _, let others) = try await hub.admit(meeting: "m", identity: ada, sink: second.sink, resume: adaID,
                                                                             connection: "new") else {
            Issue.record("not resumed"); return
        }
        #expect(resumedID == adaID && others.count == 2)
        // The old socket closes after the resume: Ada stays, and the new socket gets her messages.
        #expect(await !hub.leave(meeting: "m", participantID: adaID, connection: "old"))
        #expect(await hub.contains(meeting: "m", participantID: adaID, connection: "new"))
        #expect(await !hub.contains(meeting: "m", participantID: adaID, connection: "old"))
        await hub.broadcast(meeting: "m", .chat(from: "w", name: "Watcher", text: "still there?", at: 0), except: nil)
        #expect(second.types.last == "chat" && !first.types.contains("chat"))
        #expect(!watcher.types.contains("participant-left"))
        #expect(await hub.leave(meeting: "m", participantID: adaID, connection: "new"))
        #expect(watcher.types.last == "participant-left")
    }

    @Test func aFullMeetingRefusesTheNextParticipant() async throws {
        let hub = MeetingHub(maximumParticipants: 2)
        _ = try await hub.join(meeting: "m", name: "a", client: "web", sink: nil)
        _ = try await hub.join(meeting: "m", name: "b", client: "web", sink: nil)
        await #expect(throws: SignalingError.meetingFull) { try await hub.join(meeting: "m", name: "c", client: "web", sink: nil) }
    }
}
