import ParleyBase
import ParleyMediaAPI
import Testing
@testable import ParleySFU

/// The operator's view of a meeting on one worker: every stream in and out, from the core's state.
@Suite struct MeetingStatusTests {
    @Test func theViewListsEachTransportsStreamsWithWhatTheyCarried() throws {
        let network = FakeNetwork()
        let (publisher, player) = try network.whipPublisherAndWHEPPlayer()
        for _ in 0..<10 {
            network.send(publisher.protect(publisher.audioPacket(level: 20)), from: publisher.address)
            network.advance(milliseconds: 20)
        }
        network.send(publisher.protect(publisher.videoPacket(keyframe: true)), from: publisher.address)
        network.pump()
        #expect(network.core.meetingStatus(meetingID: "elsewhere", node: "n", worker: 0) == nil)
        let status = try #require(network.core.meetingStatus(meetingID: "m", node: "sfu-1", worker: 3))
        #expect(status.node == "sfu-1" && status.worker == 3 && status.port == 40000)
        let publishing = try #require(status.transports.first { $0.participantID == "pub" })
        let playing = try #require(status.transports.first { $0.participantID == "play" })
        #expect(publishing.role == .whip && playing.role == .whep && publishing.connected && playing.connected)
        let microphone = try #require(publishing.producers.first { $0.kind == .audio })
        #expect(microphone.layers.map(\.packetsReceived) == [10] && microphone.layers.map(\.packetsLost) == [0])
        let ear = try #require(playing.consumers.first { $0.kind == .audio })
        #expect(ear.producerID == microphone.id && ear.participantID == "pub" && ear.packetsSent == 10)
        let eye = try #require(playing.consumers.first { $0.kind == .video })
        #expect(eye.packetsSent == 1 && eye.layer == 0)
        _ = player
    }
}
