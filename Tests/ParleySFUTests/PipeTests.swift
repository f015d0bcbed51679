import ParleyBase
import ParleyMediaAPI
import ParleyTestSupport
import ParleyTransport
import ParleyWire
import Testing
@testable import ParleySFU

/// Two workers joined by a pipe on the simulated network: what crosses, once, and what comes back.
@Suite struct PipeTests {
    let sizes = [(160, 90), (320, 180), (640, 360)]

    func isRTP(_ datagram: [UInt8]) -> Bool { datagram.withUnsafeBytes { PacketClass($0) } == .rtp }

    /// A simulcast publisher and a WHEP player on the first worker, a WHEP player on the second.
    func cascade() throws -> (network: FakeNetwork, publisher: TestPeer, nearPlayer: TestPeer, farPlayer: TestPeer) {
        let network = FakeNetwork()
        try network.pipe(meeting: "m")
        let publisher = try TestPeer(port: 5001), nearPlayer = try TestPeer(port: 5002), farPlayer = try TestPeer(port: 5003)
        publisher.simulcastRids = ["q", "h", "f"]
        try network.join(publisher, meeting: "m", participant: "pub", role: .whip, sending: true)
        try network.join(nearPlayer, meeting: "m", participant: "near", role: .whep, sending: false)
        try network.join(farPlayer, meeting: "m", participant: "far", role: .whep, sending: false, sfu: network.secondSFU)
        return (network, publisher, nearPlayer, farPlayer)
    }

    func sendVideo(_ publisher: TestPeer, _ network: FakeNetwork, keyframe: Bool) {
        for layer in 0..<3 {
            network.send(publisher.protect(publisher.simulcastPacket(layer: layer, keyframe: keyframe, size: sizes[layer])), from: publisher.address)
        }
    }

    /// Runs the publisher for `frames` frames, 20 ms apart, a keyframe every 10.
    func run(_ publisher: TestPeer, _ network: FakeNetwork, frames: Int) {
        for frame in 0..<frames {
            sendVideo(publisher, network, keyframe: frame % 10 == 0)
            network.advance(milliseconds: 20)
        }
    }

    func layerPackets(_ network: FakeNetwork, layer: Int) -> Int {
        guard let router = network.core.routers["m"], let link = router.pipeLinks.first else { return -1 }
        return link.status().first { $0.kind == .video && $0.direction == "out" && $0.layer == layer }?.packets ?? 0
    }

    @Test func onlyTheLayerTheFarSubscriberWantsCrossesAndItsKeyframeRequestReachesThePublisher() throws {
        let (network, publisher, nearPlayer, farPlayer) = try cascade()
        network.advance(milliseconds: 20)
        // The far worker has a piped copy of the camera with the origin's id.
        let origin = try #require(network.core.routers["m"]?.producers.first { $0.kind == .video })
        let copy = try #require(network.secondSFU.core.routers["m"]?.producers.first { $0.kind == .video })
        #expect(copy.id == origin.id && copy.participantID == "pub" && copy.origin.isPipe && copy.encodings.count == 3)

        run(publisher, network, frames: 20)
        func keyframeRequests() -> Int { publisher.receivedRTCP.count { if case .pictureLossIndication = $0 { true } else { false } } }
        let requestsBefore = keyframeRequests()
        network.secondSFU.core.setViewport(meetingID: "m", participantID: "far", sizes: ["1": VideoSize(width: 200, height: 120)], now: network.now)
        network.advance(milliseconds: 20)
        // The far player's switch to the half layer asked for its keyframe, across the pipe.
        #expect(keyframeRequests() > requestsBefore)
        run(publisher, network, frames: 30)
        let fullBefore = layerPackets(network, layer: 2), halfBefore = layerPackets(network, layer: 1)
        farPlayer.receivedRTP.removeAll()
        nearPlayer.receivedRTP.removeAll()
        run(publisher, network, frames: 50)

        // The near player (no viewport) gets the full layer: it exists and is sent on the first worker.
        #expect(nearPlayer.receivedRTP.filter { $0.header.payloadType == 96 }.suffix(10).allSatisfy { $0.bytes.last == 2 })
        // The far player gets the half layer, which alone crosses now.
        let farVideo = farPlayer.receivedRTP.filter { $0.header.payloadType == 96 }
        #expect(farVideo.count >= 45)
        #expect(farVideo.allSatisfy { $0.bytes.last == 1 })
        #expect(layerPackets(network, layer: 2) == fullBefore, "the unwatched full layer does not cross")
        #expect(layerPackets(network, layer: 1) - halfBefore >= 45)
        #expect(network.core.counters.pipedPacketsSent > 0 && network.secondSFU.core.counters.pipedPacketsReceived > 0)
    }

    @Test func aPacketLostOnThePipeIsAskedForAcrossAndResentSoTheFarPlayerHasNoGap() throws {
        let (network, publisher, _, farPlayer) = try cascade()
        network.advance(milliseconds: 20)
        run(publisher, network, frames: 20)
        // Every 7th RTP datagram from the first worker to the second is lost.
        network.simulated.setConditions(LinkConditions(dropEvery: 7, applies: isRTP), from: network.sfu.address, to: network.secondSFU.address)
        farPlayer.receivedRTP.removeAll()
        run(publisher, network, frames: 60)
        network.simulated.setConditions(.clean, from: network.sfu.address, to: network.secondSFU.address)
        run(publisher, network, frames: 10)
        let sequences = Set(farPlayer.receivedRTP.filter { $0.header.payloadType == 96 }.map(\.header.sequenceNumber))
        #expect(network.simulated.lost[.init(from: network.sfu.address, to: network.secondSFU.address)] ?? 0 >= 5)
        let lowest = try #require(sequences.min()), highest = try #require(sequences.max())
        #expect(highest &- lowest >= 60)
        #expect(sequences.count == Int(highest &- lowest) + 1, "every number between arrived: the losses were repaired across the pipe")
        #expect(network.core.counters.retransmitted > 0)
    }

    @Test func loudAudioCrossesWithItsSpeakerNameAndSilenceDoesNot() throws {
        let network = FakeNetwork()
        try network.pipe(meeting: "m")
        let speakers = try (0..<5).map { index in
            let publisher = try TestPeer(port: UInt16(5001 + index))
            try network.join(publisher, meeting: "m", participant: "p\(index)", role: .whip, sending: true)
            return publisher
        }
        let farPlayer = try TestPeer(port: 5010)
        farPlayer.extraAudioReceivers = 2
        try network.join(farPlayer, meeting: "m", participant: "far", role: .whep, sending: false, sfu: network.secondSFU)
        network.advance(milliseconds: 20)
        // Speakers 0 to 2 loud, the rest silent, for a second.
        for _ in 0..<50 {
            for (index, speaker) in speakers.enumerated() {
                network.send(speaker.protect(speaker.audioPacket(level: index < 3 ? 20 : 127)), from: speaker.address)
            }
            network.advance(milliseconds: 20)
        }
        let producers = try #require(network.core.routers["m"]?.producers.filter { $0.kind == .audio })
        let names = Dictionary(uniqueKeysWithValues: producers.map { ($0.sourceID, $0.participantID) })
        func speakersHeard() -> Set<String> {
            Set(farPlayer.receivedRTP.filter { $0.header.payloadType == 111 && $0.header.csrcCount == 1 }.compactMap { packet in
                names[UInt32(packet.bytes[12]) << 24 | UInt32(packet.bytes[13]) << 16 | UInt32(packet.bytes[14]) << 8 | UInt32(packet.bytes[15])]
            })
        }
        #expect(speakersHeard() == ["p0", "p1", "p2"])
        // What crossed: the loudest of the first worker (N + 1 = 4 at most), never all five.
        let crossed = try #require(network.core.routers["m"]?.pipeLinks.first).status().filter { $0.kind == .audio && $0.packets > 0 }
        #expect(crossed.count <= 4)
        #expect(Set(crossed.map(\.participantID)).isSuperset(of: ["p0", "p1", "p2"]))

        // Speaker 4 turns loud: its first loud packet reaches the far player.
        farPlayer.receivedRTP.removeAll()
        network.send(speakers[4].protect(speakers[4].audioPacket(level: 5)), from: speakers[4].address)
        network.pump()
        #expect(speakersHeard() == ["p4"])
    }

    @Test func aProducerThatLeavesIsWithdrawnOnTheFarSideAndGarbageOnThePipeIsCountedAndDropped() throws {
        let (network, publisher, _, farPlayer) = try cascade()
        network.advance(milliseconds: 20)
        #expect(network.secondSFU.core.routers["m"]?.producers.count == 2)
        // Garbage and a forged packet from the pipe's peer address: counted, nothing else happens.
        let far = network.secondSFU
        let before = far.core.counters.dropped
        far.receive([0x80, 96, 0, 1] + [UInt8](repeating: 7, count: 60), from: network.sfu.address, now: network.now)
        far.receive([0x80, 200, 0, 1] + [UInt8](repeating: 7, count: 40), from: network.sfu.address, now: network.now)
        far.receive([0xFF, 1, 2], from: network.sfu.address, now: network.now)
        #expect(far.core.counters.dropped[.unauthenticated] == before[.unauthenticated] + 2)
        #expect(far.core.counters.dropped[.malformed] == before[.malformed] + 1)
        // The same from another address: not the pipe's, so no transport's either.
        far.receive([0x80, 96, 0, 1] + [UInt8](repeating: 7, count: 60), from: PeerAddress(ipv4: (127, 0, 0, 5), port: 40000), now: network.now)
        #expect(far.core.counters.dropped[.unknownSender] == before[.unknownSender] + 1)
        run(publisher, network, frames: 30)
        #expect(!farPlayer.receivedRTP.isEmpty)

        network.core.closeParticipant(meetingID: "m", participantID: "pub", now: network.now, output: network.output)
        network.advance(milliseconds: 20)
        #expect(network.secondSFU.core.routers["m"]?.producers.isEmpty == true)

        // The pipe closes on both sides: the far worker keeps nothing of the meeting but its player.
        network.core.closePipe(meetingID: "m", remote: nil, now: network.now, output: network.output)
        network.secondSFU.core.closePipe(meetingID: "m", remote: nil, now: network.now, output: network.secondSFU.output)
        #expect(network.core.pipeCount == 0 && network.secondSFU.core.pipeCount == 0)
        #expect(network.secondSFU.core.routers["m"]?.pipeLinks.isEmpty == true)
    }

    @Test func aLossyPipeCarriesFewerTemporalLayersUntilItIsCleanAgainAndTheFarPlayerKeepsTheBaseLayer() throws {
        let network = FakeNetwork()
        try network.pipe(meeting: "m")
        let publisher = try TestPeer(port: 5001), farPlayer = try TestPeer(port: 5003)
        try network.join(publisher, meeting: "m", participant: "pub", role: .whip, sending: true)
        try network.join(farPlayer, meeting: "m", participant: "far", role: .whep, sending: false, sfu: network.secondSFU)
        var pictureID: UInt16 = 0, tl0: UInt8 = 0
        /// 50 frames a second in the L1T3 pattern (TID 0, 2, 1, 2), two packets each, a keyframe every 2 s.
        func run(seconds: Int) {
            for _ in 0..<(seconds * 50) {
                let temporal: UInt8 = [0, 2, 1, 2][Int(pictureID % 4)]
                if temporal == 0 { tl0 &+= 1 }
                for part in 0..<2 {
                    let packet = publisher.temporalPacket(pictureID: pictureID, tl0PictureIndex: tl0, temporalLayer: temporal,
                                                          keyframe: pictureID % 100 == 0, first: part == 0, last: part == 1)
                    network.send(publisher.protect(packet), from: publisher.address)
                }
                pictureID = (pictureID + 1) & 0x7FFF
                network.advance(milliseconds: 20)
            }
        }
        func layersReceived(during seconds: Int) throws -> [UInt8: Int] {
            farPlayer.receivedRTP.removeAll()
            run(seconds: seconds)
            var counts: [UInt8: Int] = [:]
            for packet in farPlayer.receivedRTP where packet.header.payloadType == 96 {
                let descriptor = try packet.bytes.withUnsafeBytes {
                    try VP8PayloadDescriptor(parsing: UnsafeRawBufferPointer(rebasing: $0[packet.header.payloadOffset...]))
                }
                counts[descriptor.temporalLayer ?? 9, default: 0] += 1
            }
            return counts
        }
        let trunk = try #require(network.core.routers["m"]?.pipeLinks.first?.trunk)
        #expect(Set(try layersReceived(during: 3).keys) == [0, 1, 2])
        #expect(trunk.bandwidth == PipeBandwidth(), "no loss: no limit")

        // A quarter of the pipe's RTP lost: repaired by NACKs, but what the far side can take is
        // less, and video crosses at the base frame rate only, audio and the base layer untouched.
        network.simulated.setConditions(LinkConditions(lossRate: 0.25, applies: isRTP), from: network.sfu.address, to: network.secondSFU.address)
        run(seconds: 3)
        #expect(trunk.bandwidth.temporalCap == 0 && trunk.bandwidth.estimate != nil, "\(trunk.bandwidth)")
        let lossy = try layersReceived(during: 2)
        #expect(Set(lossy.keys) == [0] && lossy[0, default: 0] >= 40, "\(lossy)")
        let status = trunk.status(meetingID: "m")
        #expect(status.temporalCap == 0 && status.bandwidthEstimate != nil && (status.sendBitrate ?? 0) > 0)

        // Clean again: the estimate grows back, the layers return one by one, and the limit goes.
        network.simulated.setConditions(.clean, from: network.sfu.address, to: network.secondSFU.address)
        // (Under 30 s of fake time in all: the players answer no consent checks.)
        run(seconds: 16)
        #expect(trunk.bandwidth.temporalCap == 2, "\(trunk.bandwidth)")
        #expect(Set(try layersReceived(during: 2).keys) == [0, 1, 2])
    }
}

/// The pipe's loss-based estimate, alone.
@Suite struct PipeBandwidthTests {
    @Test func lossCutsTheEstimateAndTheTemporalLayersStepByStepAndCleanReportsBringThemBack() {
        var bandwidth = PipeBandwidth()
        // Small loss is no reason to act.
        var changed = bandwidth.report(loss: 0.01, sending: 1_000_000)
        #expect(!changed && bandwidth.estimate == nil)
        changed = bandwidth.report(loss: 0.05, sending: 1_000_000)
        #expect(!changed && bandwidth.estimate == nil)
        // 20 % lost: 10 % below what was sent, one temporal layer less; again: the base layer only.
        changed = bandwidth.report(loss: 0.2, sending: 1_000_000)
        #expect(changed && bandwidth.estimate == 900_000 && bandwidth.temporalCap == 1)
        changed = bandwidth.report(loss: 0.2, sending: 600_000)
        #expect(changed && bandwidth.temporalCap == 0)
        #expect(bandwidth.estimate == 540_000)
        // Never below the base layer; between 2 and 10 % the estimate holds.
        changed = bandwidth.report(loss: 0.3, sending: 400_000)
        #expect(!changed && bandwidth.temporalCap == 0)
        let held = bandwidth.estimate
        bandwidth.report(loss: 0.05, sending: 400_000)
        #expect(bandwidth.estimate == held)
        // Clean reports: 8 % more each, a layer back once there is room for it, then no limit.
        var reports = 0
        var sending = 400_000
        while bandwidth.estimate != nil, reports < 60 {
            if bandwidth.report(loss: 0, sending: sending) { sending = [400_000, 600_000, 1_000_000][bandwidth.temporalCap] }
            reports += 1
        }
        #expect(bandwidth.estimate == nil && bandwidth.temporalCap == 2 && reports < 40, "\(reports) reports")
    }
}
