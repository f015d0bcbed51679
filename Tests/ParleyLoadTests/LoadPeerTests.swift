import Histogram
import ParleyTestSupport
import ParleyBase
import ParleyMediaAPI
import Testing
import ParleySFU
import ParleyTransport
import ParleyWire
@testable import ParleyLoad

/// Load peers against the SFU's worker core in one process, on the tests' simulated network.
final class Harness {
    let sfuAddress = PeerAddress(ipv4: (127, 0, 0, 1), port: 40000)
    let network = SimulatedNetwork(now: .seconds(100))
    let sfu: WorkerCoreEndpoint
    var core: WorkerCore { sfu.core }
    var now: Nanoseconds { network.now }

    init() {
        sfu = WorkerCoreEndpoint(core: WorkerCore(announceAddress: "127.0.0.1", port: 40000, dtlsContext: try! DTLSContext(certificate: DTLSCertificate()),
                                                  ntpClock: NTPClock(ntp: 3_900_000_000 << 32, at: 0), events: { _ in }), address: sfuAddress)
        network.attach(sfu)
    }

    func join(_ label: String, options: LoadPeerOptions, port: UInt16) throws -> LoadPeer {
        let peer = try LoadPeer(label: label, options: options, now: now)
        network.attach(LoadPeerEndpoint(peer: peer, address: PeerAddress(ipv4: (127, 0, 0, 1), port: port), sfu: sfuAddress))
        let result = try core.negotiate(NegotiationRequest(meetingID: "m", participantID: label, transportID: nil, role: .participant,
                                                           offer: SessionDescription(parsing: peer.offer())), now: now)
        try peer.apply(answer: result.answer, allowedHost: "127.0.0.1")
        return peer
    }

    /// Media (RTP) loss each way: every n-th packet from the SFU, and every n-th to it (0: none).
    func dropMedia(downstreamEvery down: Int, upstreamEvery up: Int = 0) {
        network.setConditions(LinkConditions(dropEvery: down, applies: Self.isRTP), from: sfuAddress)
        network.setConditions(LinkConditions(dropEvery: up, applies: Self.isRTP), to: sfuAddress)
    }

    func run(milliseconds: Int) { network.run(for: .milliseconds(UInt64(milliseconds))) }

    static func isRTP(_ datagram: [UInt8]) -> Bool { datagram.withUnsafeBytes { PacketClass($0) } == .rtp }
}

/// A load peer on the simulated network: everything it sends goes to the SFU.
final class LoadPeerEndpoint: NetworkEndpoint {
    let peer: LoadPeer
    let address: PeerAddress
    let sfu: PeerAddress

    init(peer: LoadPeer, address: PeerAddress, sfu: PeerAddress) {
        self.peer = peer
        self.address = address
        self.sfu = sfu
    }

    func receive(_ datagram: [UInt8], from sender: PeerAddress, now: Nanoseconds) {
        datagram.withUnsafeBytes { peer.receive($0, from: sender, now: now) }
    }

    func tick(now: Nanoseconds) { peer.tick(now: now) }

    func takeSent() -> [(bytes: [UInt8], to: PeerAddress)] {
        defer { peer.outbox.removeAll() }
        return peer.outbox.map { ($0, sfu) }
    }
}

@Suite struct LoadPeerTests {
    @Test func loadPeersConnectExchangeProbedMediaAndMeasureIt() throws {
        let harness = Harness()
        var options = LoadPeerOptions()
        options.audioReceivers = 1
        options.videoReceivers = 1
        options.frameRate = 20
        let a = try harness.join("a", options: options, port: 6001)
        let b = try harness.join("b", options: options, port: 6002)
        harness.run(milliseconds: 300)
        #expect(a.isConnected && b.isConnected)
        #expect(a.connectedAt != nil && a.connectedAt! >= a.createdAt)
        harness.run(milliseconds: 2000)
        // Each hears the other's audio (50/s) and sees its video, with nothing lost on a clean wire.
        for peer in [a, b] {
            #expect(peer.received.count == 2)
            let packets = peer.received.values.map(\.packets).reduce(0, +)
            #expect(packets > 100)
            #expect(peer.received.values.allSatisfy { $0.lost == 0 })
            #expect(peer.received.values.allSatisfy { $0.latency.totalCount > 0 })
        }
        #expect(harness.core.counters.rtpForwarded > 200)
    }

    @Test func talkersAudioLevelsPutThemInTheListenersSpeakerSlots() throws {
        let harness = Harness()
        var listener = LoadPeerOptions()
        listener.publishAudio = false
        listener.publishVideo = false
        listener.audioReceivers = 3
        let ear = try harness.join("ear", options: listener, port: 6000)
        // Three silent microphones come first and fill the slots; two talkers then take two of them.
        for index in 0..<5 {
            var options = LoadPeerOptions()
            options.publishVideo = false
            options.audioLevel = index < 3 ? 127 : 20
            _ = try harness.join("mic\(index)", options: options, port: UInt16(6001 + index))
        }
        harness.run(milliseconds: 2000)
        #expect(harness.core.counters.speakerSwitches == 2, "the talkers did not take over slots from the silent")
        #expect(harness.core.counters.audioNotLoudest > 0)
        // By sender: the three silent ones heard first, then the two talkers; none lost.
        #expect(ear.received.count == 5)
        #expect(ear.received.values.allSatisfy { $0.lost == 0 })
    }

    @Test func lossOnTheWireIsCountedFromTheProbes() throws {
        let harness = Harness()
        var publisher = LoadPeerOptions()
        publisher.publishVideo = false
        var listener = LoadPeerOptions()
        listener.publishAudio = false
        listener.publishVideo = false
        listener.audioReceivers = 1
        _ = try harness.join("speaker", options: publisher, port: 6001)
        let ear = try harness.join("ear", options: listener, port: 6002)
        harness.run(milliseconds: 300)
        harness.dropMedia(downstreamEvery: 10)
        harness.run(milliseconds: 2000)
        let stream = try #require(ear.received.values.first)
        let lossRate = Double(stream.lost) / Double(stream.lost + stream.packets)
        #expect(lossRate > 0.05 && lossRate < 0.15)
    }

    @Test func videoLostEitherWayIsAskedForAndRepaired() throws {
        let harness = Harness()
        var publisher = LoadPeerOptions()
        publisher.publishAudio = false
        publisher.frameRate = 20
        var viewer = LoadPeerOptions()
        viewer.publishAudio = false
        viewer.publishVideo = false
        viewer.videoReceivers = 1
        let camera = try harness.join("camera", options: publisher, port: 6001)
        let eye = try harness.join("eye", options: viewer, port: 6002)
        harness.run(milliseconds: 300)
        harness.dropMedia(downstreamEvery: 13, upstreamEvery: 17)
        harness.run(milliseconds: 3000)
        harness.dropMedia(downstreamEvery: 0)
        harness.run(milliseconds: 500)
        let stream = try #require(eye.received.values.first)
        // The viewer asked for what it missed and got it; the publisher sent again what the SFU asked for.
        #expect(eye.nacksSent > 0 && eye.packetsRepaired > 10)
        #expect(camera.retransmissionsSent > 0)
        #expect(stream.lost == 0, "\(stream.lost) of \(stream.packets + stream.lost) stayed lost")
    }

    @Test func delayOnTheWireIsTheLatencyTheListenerMeasures() throws {
        let harness = Harness()
        var speaker = LoadPeerOptions()
        speaker.publishVideo = false
        var listener = LoadPeerOptions()
        listener.publishAudio = false
        listener.publishVideo = false
        listener.audioReceivers = 1
        _ = try harness.join("speaker", options: speaker, port: 6001)
        let ear = try harness.join("ear", options: listener, port: 6002)
        harness.run(milliseconds: 300)
        // 30 ms each way: 60 ms from the speaker through the SFU to the listener.
        harness.network.setConditions(LinkConditions(delay: .milliseconds(30), applies: Harness.isRTP))
        harness.run(milliseconds: 2000)
        let stream = try #require(ear.received.values.first)
        let median = stream.latency.valueAtPercentile(50)
        #expect((59_000...66_000).contains(median), "median latency \(median) µs")
        #expect(stream.lost == 0)
    }

    @Test func answersNamingAnotherHostAreRefused() throws {
        let harness = Harness()
        let peer = try LoadPeer(label: "x", options: LoadPeerOptions(), now: 0)
        let result = try harness.core.negotiate(NegotiationRequest(meetingID: "m", participantID: "x", transportID: nil, role: .participant,
                                                                   offer: SessionDescription(parsing: peer.offer())), now: 0)
        #expect(throws: LoadError.self) { try peer.apply(answer: result.answer, allowedHost: "10.1.2.3") }
        #expect(peer.remoteAddress == nil)
        #expect(throws: LoadError.self) { try peer.apply(answer: "v=0\r\n", allowedHost: nil) }
    }
}

@Suite struct LoadLoopsTests {
    @Test func participantsSpreadOverTheThreadsAndEachStaysOnOne() async throws {
        let loops = LoadLoops(threads: 2)
        let labels = (0..<100).map { "load-0-\($0)" }
        let placed = labels.map(loops.loopIndex(for:))
        #expect(Set(placed) == [0, 1])
        #expect(placed.filter { $0 == 0 }.count > 25 && placed.filter { $0 == 1 }.count > 25, "badly lopsided")
        #expect(labels.map(loops.loopIndex(for:)) == placed, "a participant's peers must share a loop")
        // Peers made through the pool run on their loop and are reached through their reference.
        loops.start()
        defer { loops.stop() }
        var options = LoadPeerOptions()
        options.publishVideo = false
        let first = try await loops.add(label: "load-0-1", options: options, bindHost: "127.0.0.1")
        let second = try await loops.add(label: "load-0-1", options: options, bindHost: "127.0.0.1")
        #expect(first.loop == second.loop && first.index != second.index)
        #expect(try await loops.submit(second) { $0.label } == "load-0-1")
        #expect(await loops.gather { $0.allPeers.count }.reduce(0, +) == 2)
    }
}
