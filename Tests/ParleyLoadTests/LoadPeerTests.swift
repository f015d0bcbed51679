import Histogram
import ParleyBase
import ParleyMediaAPI
import Testing
import ParleySFU
import ParleyTransport
import ParleyWire
@testable import ParleyLoad

/// Load peers against the SFU's worker core in one process, on fake time, with a lossy wire.
final class Harness {
    let sfuAddress = PeerAddress(ipv4: (127, 0, 0, 1), port: 40000)
    let output = CollectingOutput()
    var now: Nanoseconds = .seconds(100)
    let core = WorkerCore(announceAddress: "127.0.0.1", port: 40000, dtlsContext: try! DTLSContext(certificate: DTLSCertificate()), ntpClock: NTPClock(ntp: 3_900_000_000 << 32, at: 0), events: { _ in })
    var peers: [(peer: LoadPeer, address: PeerAddress)] = []
    /// Every n-th media datagram from the SFU is dropped (0: none), and every n-th to it.
    var dropEvery = 0
    var dropUpstreamEvery = 0
    private var delivered = 0
    private var deliveredUpstream = 0

    func join(_ label: String, options: LoadPeerOptions, port: UInt16) throws -> LoadPeer {
        let peer = try LoadPeer(label: label, options: options, now: now)
        let address = PeerAddress(ipv4: (127, 0, 0, 1), port: port)
        peers.append((peer, address))
        let result = try core.negotiate(NegotiationRequest(meetingID: "m", participantID: label, transportID: nil, role: .participant,
                                                           offer: SessionDescription(parsing: peer.offer())), now: now)
        try peer.apply(answer: result.answer, allowedHost: "127.0.0.1")
        return peer
    }

    func run(milliseconds: Int) {
        for _ in 0..<(milliseconds / 5) {
            now += .milliseconds(5)
            for (peer, address) in peers {
                peer.tick(now: now)
                for datagram in peer.outbox {
                    if datagram.withUnsafeBytes({ PacketClass($0) }) == .rtp {
                        deliveredUpstream += 1
                        if dropUpstreamEvery > 0, deliveredUpstream % dropUpstreamEvery == 0 { continue }
                    }
                    var buffer = datagram + [UInt8](repeating: 0, count: 64)
                    buffer.withUnsafeMutableBytes { core.receive($0, length: datagram.count, from: address, now: now, output: output) }
                }
                peer.outbox.removeAll()
            }
            core.tick(now: now, output: output)
            let sent = output.sent
            output.sent.removeAll()
            for (bytes, to) in sent {
                let isMedia = bytes.withUnsafeBytes { PacketClass($0) } == .rtp
                if isMedia { delivered += 1 }
                if isMedia, dropEvery > 0, delivered % dropEvery == 0 { continue }
                guard let target = peers.first(where: { $0.address == to }) else { continue }
                bytes.withUnsafeBytes { target.peer.receive($0, from: sfuAddress, now: now) }
            }
        }
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
        harness.dropEvery = 10
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
        harness.dropEvery = 13
        harness.dropUpstreamEvery = 17
        harness.run(milliseconds: 3000)
        harness.dropEvery = 0
        harness.dropUpstreamEvery = 0
        harness.run(milliseconds: 500)
        let stream = try #require(eye.received.values.first)
        // The viewer asked for what it missed and got it; the publisher sent again what the SFU asked for.
        #expect(eye.nacksSent > 0 && eye.packetsRepaired > 10)
        #expect(camera.retransmissionsSent > 0)
        #expect(stream.lost == 0, "\(stream.lost) of \(stream.packets + stream.lost) stayed lost")
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
