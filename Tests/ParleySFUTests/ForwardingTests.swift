import Foundation
import ParleyBase
import ParleyMediaAPI
import Testing
import ParleyTestSupport
import ParleyTransport
import ParleyWire
@testable import ParleySFU

/// The whole media path without sockets: negotiation, ICE, DTLS, SRTP, forwarding, rewriting,
/// keyframe requests and retransmissions, on fake time.
@Suite struct ForwardingTests {
    @Test func peersConnectAndVideoIsForwardedOnlyFromAKeyframe() throws {
        let network = FakeNetwork()
        let (publisher, player) = try network.whipPublisherAndWHEPPlayer()
        #expect(publisher.transport.isConnected && player.transport.isConnected)
        #expect(network.events.filter { if case .transportConnected = $0 { return true } else { return false } }.count == 2)

        // Delta frames before any keyframe are held back, so the player's decoder starts clean.
        for _ in 0..<3 { network.send(publisher.protect(publisher.videoPacket(keyframe: false)), from: publisher.address) }
        network.pump()
        #expect(player.receivedRTP.isEmpty)
        network.send(publisher.protect(publisher.videoPacket(keyframe: true)), from: publisher.address)
        for _ in 0..<5 { network.send(publisher.protect(publisher.videoPacket(keyframe: false)), from: publisher.address) }
        network.pump()
        #expect(player.receivedRTP.count == 6)
        let ssrcs = Set(player.receivedRTP.map(\.header.ssrc))
        #expect(ssrcs.count == 1 && !ssrcs.contains(publisher.videoSSRC))
        #expect(network.core.counters.rtpForwarded == 6)
    }

    @Test func aNewSubscriberMakesTheSFUAskThePublisherForAKeyframe() throws {
        let network = FakeNetwork()
        let publisher = try TestPeer(port: 5001), player = try TestPeer(port: 5002)
        try network.join(publisher, meeting: "m", participant: "pub", role: .whip, sending: true)
        network.send(publisher.protect(publisher.videoPacket(keyframe: true)), from: publisher.address)
        network.advance(milliseconds: 20)
        let before = publisher.receivedRTCP.filter { if case .pictureLossIndication = $0 { return true } else { return false } }.count
        try network.join(player, meeting: "m", participant: "play", role: .whep, sending: false)
        network.advance(milliseconds: 20)
        let plis = publisher.receivedRTCP.compactMap { packet -> PictureLossIndication? in
            if case .pictureLossIndication(let pli) = packet { return pli } else { return nil }
        }
        #expect(plis.count == before + 1)
        #expect(plis.last?.mediaSSRC == publisher.videoSSRC)
        // Throttled: a second subscriber's request within the interval does not send another at once.
        let third = try TestPeer(port: 5003)
        try network.join(third, meeting: "m", participant: "third", role: .whep, sending: false)
        network.advance(milliseconds: 20)
        network.advance(milliseconds: 20)
        let after = publisher.receivedRTCP.filter { if case .pictureLossIndication = $0 { return true } else { return false } }.count
        #expect(after <= before + 2)
    }

    @Test func aPlayerStreamStaysContinuousWhenItsSourceSwitches() throws {
        let network = FakeNetwork()
        let first = try TestPeer(port: 5001), player = try TestPeer(port: 5002), second = try TestPeer(port: 5003)
        try network.join(first, meeting: "m", participant: "first", role: .whip, sending: true)
        try network.join(player, meeting: "m", participant: "play", role: .whep, sending: false)
        network.send(first.protect(first.videoPacket(keyframe: true)), from: first.address)
        for _ in 0..<9 { network.send(first.protect(first.videoPacket(keyframe: false)), from: first.address) }
        network.pump()
        #expect(player.receivedRTP.count == 10)

        // A newer publisher takes over; its numbering is unrelated to the first one's.
        second.sequence = 60000
        second.timestamp = 4_000_000_000
        try network.join(second, meeting: "m", participant: "second", role: .whip, sending: true)
        network.advance(milliseconds: 40)
        network.send(first.protect(first.videoPacket(keyframe: false)), from: first.address)  // no longer played
        network.send(second.protect(second.videoPacket(keyframe: true)), from: second.address)
        for _ in 0..<9 { network.send(second.protect(second.videoPacket(keyframe: false)), from: second.address) }
        network.pump()
        let video = player.receivedRTP.filter { $0.header.payloadType == 96 }
        #expect(video.count == 20)
        #expect(Set(video.map(\.header.ssrc)).count == 1)
        for (previous, next) in zip(video, video.dropFirst()) {
            #expect(next.header.sequenceNumber == previous.header.sequenceNumber &+ 1)
            #expect(next.header.timestamp &- previous.header.timestamp < 90000 * 2)
            #expect(next.header.timestamp != previous.header.timestamp)
        }
        // The switch was a keyframe from the second publisher.
        #expect(video[10].bytes.last == 0x77 && video[10].bytes.withUnsafeBytes { raw in
            let header = try! RTPHeader(parsing: raw)
            return CodecPayload.isKeyframe(.vp8, payload: UnsafeRawBufferPointer(rebasing: raw[header.payloadOffset...]))
        })
    }

    @Test func simulcastSendsTheLayerThatFitsTheViewportSwitchingOnKeyframesWithoutAGap() throws {
        let network = FakeNetwork()
        let publisher = try TestPeer(port: 5001), player = try TestPeer(port: 5002)
        publisher.simulcastRids = ["q", "h", "f"]
        try network.join(publisher, meeting: "m", participant: "pub", role: .whip, sending: true)
        #expect(publisher.answer?.media[1].values("rid") == ["q recv", "h recv", "f recv"])
        #expect(publisher.answer?.media[1].attribute("simulcast") == "recv q;h;f")
        try network.join(player, meeting: "m", participant: "play", role: .whep, sending: false)
        let sizes = [(160, 90), (320, 180), (640, 360)]
        func sendAll(keyframe: Bool) {
            for layer in 0..<3 { network.send(publisher.protect(publisher.simulcastPacket(layer: layer, keyframe: keyframe, size: sizes[layer])), from: publisher.address) }
        }
        func layersReceived() -> [UInt8] { player.receivedRTP.filter { $0.header.payloadType == 96 }.map { $0.bytes.last! } }

        // No viewport: the top layer, from its keyframe on.
        sendAll(keyframe: true)
        for _ in 0..<4 { sendAll(keyframe: false) }
        network.advance(milliseconds: 20)
        #expect(layersReceived() == Array(repeating: 2, count: 5))
        let producer = try #require(network.core.routers["m"]?.producers.first { $0.kind == .video })
        #expect(producer.encodings.map(\.width) == [160, 320, 640])

        // A 200×120 tile: the half layer fits. Its delta frames wait; its keyframe switches.
        network.events.removeAll()
        network.core.setViewport(meetingID: "m", participantID: "play", sizes: ["1": VideoSize(width: 200, height: 120)], now: network.now)
        sendAll(keyframe: false)
        network.advance(milliseconds: 20)
        #expect(layersReceived().last == 2, "the old layer goes on until the new one's keyframe")
        sendAll(keyframe: true)
        for _ in 0..<3 { sendAll(keyframe: false) }
        network.advance(milliseconds: 300)
        #expect(Array(layersReceived().suffix(4)) == [1, 1, 1, 1])
        let video = player.receivedRTP.filter { $0.header.payloadType == 96 }
        #expect(Set(video.map(\.header.ssrc)).count == 1)
        for (previous, next) in zip(video, video.dropFirst()) {
            #expect(next.header.sequenceNumber == previous.header.sequenceNumber &+ 1)
            #expect(next.header.timestamp &- previous.header.timestamp < 90000)
        }
        // Nobody needs the full layer now: the publisher is told to send q and h only.
        #expect(network.events.contains(.layersWanted(meetingID: "m", participantID: "pub", mid: "1", rids: ["q", "h"])))

        // The half layer goes quiet (paused, or the encoder dropped it): the player falls back to
        // the lowest layer, which keeps sending.
        for _ in 0..<6 {
            network.send(publisher.protect(publisher.simulcastPacket(layer: 0, keyframe: false)), from: publisher.address)
            network.advance(milliseconds: 250)
        }
        network.send(publisher.protect(publisher.simulcastPacket(layer: 0, keyframe: true, size: sizes[0])), from: publisher.address)
        network.send(publisher.protect(publisher.simulcastPacket(layer: 0, keyframe: false)), from: publisher.address)
        network.advance(milliseconds: 20)
        #expect(Array(layersReceived().suffix(2)) == [0, 0])
    }

    @Test func publishersGetTransportWideFeedbackOfWhatArrivedAndWhen() throws {
        let network = FakeNetwork()
        let publisher = try TestPeer(port: 5001)
        publisher.videoFeedback.append("transport-cc")
        try network.join(publisher, meeting: "m", participant: "pub", role: .whip, sending: true)
        #expect(publisher.answer?.media[1].values("extmap").contains("5 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01") == true)
        #expect(publisher.answer?.media[1].values("rtcp-fb").contains("96 transport-cc") == true)
        // Packets 100…109, 103 lost on the way, 2 ms apart.
        for sequence in UInt16(100)...109 {
            let packet = publisher.numbered(publisher.videoPacket(keyframe: sequence == 100), transportSequence: sequence)
            if sequence != 103 { network.send(publisher.protect(packet), from: publisher.address) }
            network.now += .milliseconds(2)
        }
        network.advance(milliseconds: 100)
        let feedback = publisher.receivedRTCP.compactMap { packet -> TransportWideFeedback? in
            if case .transportWideFeedback(let feedback) = packet { return feedback } else { return nil }
        }
        #expect(feedback.count == 1)
        guard let first = feedback.first else { return }
        #expect(first.baseSequence == 100 && first.arrivals.count == 10)
        #expect(first.arrivals.map { $0 == nil } == (100...109).map { $0 == 103 })
        let received = first.arrivals.compactMap { $0 }
        #expect(zip(received, received.dropFirst()).allSatisfy { $1 > $0 }, "\(received)")
        #expect(received.last! - received.first! == 18_000, "18 ms between the first and the last, to the microsecond: \(received)")
        #expect(network.core.counters.transportFeedbackSent == 1)
        // Nothing new: no feedback; the next packets start the next one where this one ended.
        network.advance(milliseconds: 100)
        network.send(publisher.protect(publisher.numbered(publisher.videoPacket(keyframe: false), transportSequence: 110)), from: publisher.address)
        network.advance(milliseconds: 100)
        let later = publisher.receivedRTCP.compactMap { packet -> TransportWideFeedback? in
            if case .transportWideFeedback(let feedback) = packet { return feedback } else { return nil }
        }
        #expect(later.count == 2 && later.last?.baseSequence == 110 && later.last?.arrivals.count == 1)
    }

    @Test func subscribersFeedbackOfTransportWideNumbersDrivesTheirEstimate() throws {
        let network = FakeNetwork()
        let (publisher, player) = try network.whipPublisherAndWHEPPlayer()
        network.send(publisher.protect(publisher.videoPacket(keyframe: true)), from: publisher.address)
        for _ in 0..<99 { network.send(publisher.protect(publisher.videoPacket(keyframe: false)), from: publisher.address) }
        network.pump()
        // Every packet to the player carries a transport-wide number, one after the other.
        let numbers = player.receivedRTP.filter { $0.header.payloadType == 96 }.compactMap { packet -> UInt16? in
            var found: UInt16?
            packet.bytes.withUnsafeBytes { raw in
                packet.header.forEachExtension(in: raw) { id, offset, length in if id == 5, length == 2 { found = raw.readU16(at: offset) } }
            }
            return found
        }
        #expect(numbers.count == 100 && zip(numbers, numbers.dropFirst()).allSatisfy { $1 == $0 &+ 1 })
        // The player reports a third of them lost, a few times: the SFU's estimate for it falls.
        let transport = try #require(network.core.transports.values.first { $0.participantID == "play" })
        let before = transport.estimator.estimate
        for round in 0..<5 {
            let arrivals: [Int64?] = numbers.indices.map { $0 % 3 == 0 ? nil : Int64(round * 100_000 + $0 * 1000) }
            var bytes: [UInt8] = []
            TransportWideFeedback(senderSSRC: 9, mediaSSRC: 1, baseSequence: numbers[0], referenceTime: 0, feedbackCount: UInt8(round),
                                  arrivals: arrivals).write(into: &bytes)
            network.send(player.protect(bytes), from: player.address)
        }
        #expect(transport.hasTransportFeedback)
        #expect(transport.estimator.lossFraction > 0.3)
        #expect(transport.estimator.estimate < before / 2, "\(before) → \(transport.estimator.estimate)")
    }

    @Test func asTheSubscribersBandwidthFallsItsVideoStepsDownLayersThenPausesAndComesBack() throws {
        let network = FakeNetwork()
        let publisher = try TestPeer(port: 5001), player = try TestPeer(port: 5002)
        publisher.simulcastRids = ["q", "h", "f"]
        try network.join(publisher, meeting: "m", participant: "pub", role: .whip, sending: true)
        try network.join(player, meeting: "m", participant: "play", role: .whep, sending: false)
        let transport = try #require(network.core.transports.values.first { $0.participantID == "play" })
        let consumer = try #require(transport.consumers.first { $0.kind == .video })
        var step = 0
        // Layers of about 46, 69 and 230 kb/s; keyframes every second.
        func run(milliseconds: Int) {
            for _ in 0..<(milliseconds / 50) {
                let keyframe = step % 20 == 0
                for (layer, count) in [(0, 2), (1, 3), (2, 10)] {
                    for index in 0..<count {
                        network.send(publisher.protect(publisher.simulcastPacket(layer: layer, keyframe: keyframe && index == 0, size: [(320, 180), (640, 360), (1280, 720)][layer])),
                                     from: publisher.address)
                    }
                }
                step += 1
                network.advance(milliseconds: 50)
            }
        }
        func estimate(_ bitrate: UInt64) {
            var bytes: [UInt8] = []
            ReceiverEstimatedMaximumBitrate(senderSSRC: 7, bitrate: bitrate, ssrcs: [consumer.ssrc]).write(into: &bytes)
            network.send(player.protect(bytes), from: player.address)
        }
        func received(during milliseconds: Int) -> [UInt8] {
            let before = player.receivedRTP.count
            run(milliseconds: milliseconds)
            return player.receivedRTP[before...].filter { $0.header.payloadType == 96 }.map { $0.bytes.last! }
        }
        estimate(1_000_000)
        #expect(Set(received(during: 2000).suffix(10)) == [2], "room for the full layer")
        estimate(150_000)
        #expect(Set(received(during: 2000).suffix(10)) == [1], "150 kb/s: the half layer")
        network.events.removeAll()
        estimate(60_000)
        #expect(Set(received(during: 2000).suffix(10)) == [0], "60 kb/s: the quarter layer")
        // Nobody receives more than the lowest layer now: the publisher is asked for that one only.
        #expect(network.events.contains(.layersWanted(meetingID: "m", participantID: "pub", mid: "1", rids: ["q"])))
        estimate(30_000)
        run(milliseconds: 300)
        #expect(received(during: 1700).isEmpty, "30 kb/s: video paused")
        #expect(network.events.contains(.videoPaused(meetingID: "m", participantID: "play", mids: [consumer.mid])))
        estimate(1_000_000)
        #expect(Set(received(during: 3000).suffix(10)) == [2], "back to the full layer")
        #expect(network.events.contains(.videoPaused(meetingID: "m", participantID: "play", mids: [])))
    }

    @Test func aLowerFrameRateDropsTemporalLayersAndLeavesNoGapInNumbers() throws {
        let network = FakeNetwork()
        let (publisher, player) = try network.whipPublisherAndWHEPPlayer()
        let consumer = try #require(network.core.transports.values.first { $0.participantID == "play" }?.consumers.first { $0.kind == .video })
        var pictureID: UInt16 = 0x7FF0, tl0: UInt8 = 250
        var sentByPicture: [UInt16: [[UInt8]]] = [:]
        /// Frames in the L1T3 pattern (TID 0, 2, 1, 2), two packets each.
        func sendFrames(_ count: Int, keyframeFirst: Bool = false) {
            for index in 0..<count {
                let temporal: UInt8 = [0, 2, 1, 2][Int(pictureID % 4)]
                if temporal == 0 { tl0 &+= 1 }
                for part in 0..<2 {
                    let packet = publisher.temporalPacket(pictureID: pictureID, tl0PictureIndex: tl0, temporalLayer: temporal,
                                                          keyframe: keyframeFirst && index == 0, first: part == 0, last: part == 1)
                    sentByPicture[pictureID, default: []].append(packet)
                    network.send(publisher.protect(packet), from: publisher.address)
                }
                pictureID = (pictureID + 1) & 0x7FFF
            }
            network.pump()
        }
        func descriptor(_ packet: (header: RTPHeader, bytes: [UInt8])) throws -> VP8PayloadDescriptor {
            try packet.bytes.withUnsafeBytes { try VP8PayloadDescriptor(parsing: UnsafeRawBufferPointer(rebasing: $0[packet.header.payloadOffset...])) }
        }
        sendFrames(4, keyframeFirst: true)  // picture IDs 0x7FF0…: TID 0 first
        #expect(player.receivedRTP.count == 8)
        // A quarter of the frame rate: only the base layer, from its next frame on.
        consumer.allocatedTemporalLayer = 0
        sendFrames(16)
        let quarter = Array(player.receivedRTP.dropFirst(8))
        #expect(try quarter.allSatisfy { try descriptor($0).temporalLayer == 0 })
        #expect(quarter.count == 8)
        let sequences = player.receivedRTP.map(\.header.sequenceNumber)
        #expect(zip(sequences, sequences.dropFirst()).allSatisfy { $1 == $0 &+ 1 }, "\(sequences)")
        let pictures = try player.receivedRTP.map { try descriptor($0).pictureID! }
        #expect(zip(pictures, pictures.dropFirst()).allSatisfy { $1 == $0 || $1 == ($0 + 1) & 0x7FFF }, "\(pictures)")
        // A retransmission request for a renumbered packet brings the packet it stood for.
        let asked = try #require(quarter.last)
        network.send(player.nack(for: asked), from: player.address)
        network.pump()
        let repair = try #require(player.receivedRTP.last)
        #expect(repair.header.payloadType == 97)
        #expect(Array(repair.bytes[(repair.header.payloadOffset + 2)...]) == Array(asked.bytes[asked.header.payloadOffset...]))
        // The full frame rate again, from the next base-layer frame, still without gaps.
        player.receivedRTP.removeAll()
        consumer.allocatedTemporalLayer = 2
        sendFrames(8)
        #expect(player.receivedRTP.count == 16)
        let after = [sequences.last!] + player.receivedRTP.map(\.header.sequenceNumber)
        #expect(zip(after, after.dropFirst()).allSatisfy { $1 == $0 &+ 1 }, "\(after)")
    }

    @Test func whenTheEstimateHoldsVideoBackTheSFUProbesWithPaddingOnRTX() throws {
        let network = FakeNetwork()
        let (publisher, player) = try network.whipPublisherAndWHEPPlayer()
        let transport = try #require(network.core.transports.values.first { $0.participantID == "play" })
        var feedbackCount: UInt8 = 0
        var padding: [RTPHeader] = []
        /// The player acknowledges what it got since the last time (`lossy`: every other packet lost).
        func acknowledge(lossy: Bool) {
            let numbers = player.receivedRTP.compactMap { packet -> UInt16? in
                var found: UInt16?
                packet.bytes.withUnsafeBytes { raw in
                    packet.header.forEachExtension(in: raw) { id, offset, length in if id == 5, length == 2 { found = raw.readU16(at: offset) } }
                }
                return found
            }
            padding += player.receivedRTP.filter { $0.bytes[0] & 0x20 != 0 }.map(\.header)
            player.receivedRTP.removeAll()
            guard let first = numbers.min(), let last = numbers.max() else { return }
            let arrivals: [Int64?] = (0...Int(last &- first)).map { lossy && $0 % 2 == 1 ? nil : Int64(feedbackCount) * 100_000 + Int64($0) * 500 }
            var bytes: [UInt8] = []
            TransportWideFeedback(senderSSRC: 9, mediaSSRC: 1, baseSequence: first, referenceTime: 0, feedbackCount: feedbackCount, arrivals: arrivals)
                .write(into: &bytes)
            feedbackCount &+= 1
            network.send(player.protect(bytes), from: player.address)
        }
        network.send(publisher.protect(publisher.videoPacket(keyframe: true)), from: publisher.address)
        for round in 0..<60 {
            // About 200 kb/s of video: ten packets of ~240 bytes per 100 ms.
            for _ in 0..<10 { network.send(publisher.protect(publisher.videoPacket(keyframe: false)), from: publisher.address) }
            network.advance(milliseconds: 100)
            acknowledge(lossy: round < 20)
        }
        // Loss brought the estimate below what the video costs; then a clean path: probing.
        #expect(network.core.counters.probePacketsSent > 0)
        let consumer = try #require(transport.consumers.first { $0.kind == .video })
        #expect(!padding.isEmpty && padding.allSatisfy { $0.payloadType == 97 && $0.ssrc == consumer.rtxSSRC })
        #expect(transport.estimator.usage == .normal)
    }

    @Test func theLoudestSpeakerBecomesTheActiveSpeakerWithoutFlapping() throws {
        let network = FakeNetwork()
        let ada = try TestPeer(port: 5001), bob = try TestPeer(port: 5002)
        try network.join(ada, meeting: "m", participant: "ada", role: .whip, sending: true)
        try network.join(bob, meeting: "m", participant: "bob", role: .whip, sending: true)
        // Opus asked to carry in-band FEC and to use DTX.
        #expect(ada.answer?.media[0].values("fmtp") == ["111 minptime=10;useinbandfec=1;usedtx=1"])
        func talk(ada adaLevel: UInt8, bob bobLevel: UInt8, milliseconds: Int) {
            for _ in 0..<(milliseconds / 20) {
                network.send(ada.protect(ada.audioPacket(level: adaLevel)), from: ada.address)
                network.send(bob.protect(bob.audioPacket(level: bobLevel)), from: bob.address)
                network.advance(milliseconds: 20)
            }
        }
        func speakers() -> [String] {
            network.events.compactMap { if case .activeSpeaker(_, let id) = $0 { return id } else { return nil } }
        }
        talk(ada: 100, bob: 110, milliseconds: 1000)
        #expect(speakers().isEmpty, "nobody above -50 dBov")
        talk(ada: 20, bob: 110, milliseconds: 1500)
        #expect(speakers() == ["ada"])
        // Bob coughs once (one loud interval): Ada keeps the floor.
        talk(ada: 20, bob: 10, milliseconds: 240)
        talk(ada: 20, bob: 110, milliseconds: 1000)
        #expect(speakers() == ["ada"])
        // Ada stops, Bob speaks: Bob.
        talk(ada: 127, bob: 15, milliseconds: 1500)
        #expect(speakers() == ["ada", "bob"])
    }

    @Test func redundantAudioGoesAsREDToWhoTakesItAndAsPlainOpusToWhoDoesNot() throws {
        let network = FakeNetwork()
        let publisher = try TestPeer(port: 5001), withRED = try TestPeer(port: 5002), withoutRED = try TestPeer(port: 5003)
        publisher.redPayloadType = 63
        withRED.redPayloadType = 100
        withRED.opusPayloadType = 109
        try network.join(publisher, meeting: "m", participant: "pub", role: .whip, sending: true)
        // RED is answered first, so the browser sends it.
        #expect(publisher.answer?.media[0].formats.prefix(2) == ["63", "111"])
        try network.join(withRED, meeting: "m", participant: "red", role: .whep, sending: false)
        try network.join(withoutRED, meeting: "m", participant: "plain", role: .whep, sending: false)
        // One redundant block (3 bytes, 20 ms earlier) and the primary (4 bytes).
        let red: [UInt8] = [0x80 | 111, 0x0F, 0x00, 0x03, 111, 0xAA, 0xBB, 0xCC, 1, 2, 3, 4]
        network.send(publisher.protect(publisher.audioPacket(level: 30, payload: red, payloadType: 63)), from: publisher.address)
        network.pump()
        let received = try #require(withRED.receivedRTP.first)
        #expect(received.header.payloadType == 100)
        #expect(Array(received.bytes[received.header.payloadOffset...]) == [0x80 | 109, 0x0F, 0x00, 0x03, 109, 0xAA, 0xBB, 0xCC, 1, 2, 3, 4])
        let plain = try #require(withoutRED.receivedRTP.first)
        #expect(plain.header.payloadType == 111)
        #expect(Array(plain.bytes[plain.header.payloadOffset...]) == [1, 2, 3, 4])
        // Broken RED is dropped, not forwarded as garbage.
        network.send(publisher.protect(publisher.audioPacket(level: 30, payload: [0x80 | 111, 0x0F], payloadType: 63)), from: publisher.address)
        network.pump()
        #expect(withoutRED.receivedRTP.count == 1)
    }

    @Test func nackIsAnsweredWithRTXCarryingTheOriginalSequence() throws {
        let network = FakeNetwork()
        let (publisher, player) = try network.whipPublisherAndWHEPPlayer()
        network.send(publisher.protect(publisher.videoPacket(keyframe: true)), from: publisher.address)
        for _ in 0..<4 { network.send(publisher.protect(publisher.videoPacket(keyframe: false)), from: publisher.address) }
        network.pump()
        let lost = player.receivedRTP[2]
        network.send(player.nack(for: lost), from: player.address)
        network.pump()
        let repair = try #require(player.receivedRTP.last)
        #expect(repair.header.payloadType == 97)
        #expect(repair.header.ssrc != lost.header.ssrc)
        let osn = UInt16(repair.bytes[repair.header.payloadOffset]) << 8 | UInt16(repair.bytes[repair.header.payloadOffset + 1])
        #expect(osn == lost.header.sequenceNumber)
        #expect(Array(repair.bytes[(repair.header.payloadOffset + 2)...]) == Array(lost.bytes[lost.header.payloadOffset...]))
        #expect(network.core.counters.retransmitted == 1)
    }

    @Test func aNACKRepeatedWithinAHundredMillisecondsIsNotAnsweredTwice() throws {
        let network = FakeNetwork()
        let (publisher, player) = try network.whipPublisherAndWHEPPlayer()
        network.send(publisher.protect(publisher.videoPacket(keyframe: true)), from: publisher.address)
        for _ in 0..<4 { network.send(publisher.protect(publisher.videoPacket(keyframe: false)), from: publisher.address) }
        network.pump()
        let lost = player.receivedRTP[2], other = player.receivedRTP[3]
        // An overloaded receiver asks for the same packet three times at once: one copy.
        for _ in 0..<3 { network.send(player.nack(for: lost), from: player.address) }
        network.pump()
        #expect(network.core.counters.retransmitted == 1 && network.core.counters.resendsHeldBack == 2)
        // Another packet is answered at once; the first again once its copy had time to arrive.
        network.send(player.nack(for: other), from: player.address)
        network.advance(milliseconds: 150)
        network.send(player.nack(for: lost), from: player.address)
        network.pump()
        #expect(network.core.counters.retransmitted == 3 && network.core.counters.resendsHeldBack == 2)
    }

    @Test func forgedChecksAndGarbageAreCountedAndDroppedWithoutHarm() throws {
        let network = FakeNetwork()
        let (publisher, player) = try network.whipPublisherAndWHEPPlayer()
        let attacker = PeerAddress(ipv4: (127, 0, 0, 66), port: 6666)
        // A check with the right username but the wrong password gets no answer and moves nothing.
        network.output.sent.removeAll()
        network.send(publisher.bindingRequest(password: "not-the-password-at-all"), from: attacker)
        #expect(network.output.sent.isEmpty)
        #expect(network.core.counters.dropped[.unauthenticated] == 1)
        // Random bytes from strangers and from a connected peer (failing SRTP authentication).
        var rng = SeededGenerator()
        for index in 0..<3000 {
            let junk = (0..<Int.random(in: 0...1400, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            guard !junk.isEmpty else { continue }
            network.send(junk, from: index % 2 == 0 ? attacker : publisher.address)
        }
        #expect(network.core.counters.dropped[.unknownSender] > 0, "\(rng.replay)")
        #expect(network.core.counters.dropped.total - network.core.counters.dropped[.unknownSender] > 100, "\(rng.replay)")
        // The call goes on.
        network.pump()
        player.receivedRTP.removeAll()
        network.send(publisher.protect(publisher.videoPacket(keyframe: true)), from: publisher.address)
        network.pump()
        #expect(player.receivedRTP.count == 1)
    }

    @Test func offersWithoutCredentialsOrWithUnknownTransportsAreRefused() throws {
        let network = FakeNetwork()
        let peer = try TestPeer(port: 5001)
        let noICE = peer.offer(sending: true).replacingOccurrences(of: "a=ice-pwd:", with: "a=x-ice-pwd:")
        #expect(throws: NegotiationError.badOffer("missing a=ice-ufrag or a=ice-pwd")) {
            try network.core.negotiate(NegotiationRequest(meetingID: "m", participantID: "p", transportID: nil, role: .whip, offer: SessionDescription(parsing: noICE)), now: 0)
        }
        #expect(throws: NegotiationError.unknownTransport("nope")) {
            try network.core.negotiate(NegotiationRequest(meetingID: "m", participantID: "p", transportID: "nope", role: .whip, offer: SessionDescription(parsing: peer.offer(sending: true))), now: 0)
        }
        let sha1 = peer.offer(sending: true).replacingOccurrences(of: "sha-256", with: "sha-1")
        #expect(throws: NegotiationError.self) {
            try network.core.negotiate(NegotiationRequest(meetingID: "m", participantID: "p", transportID: nil, role: .whip, offer: SessionDescription(parsing: sha1)), now: 0)
        }
    }
}

@Suite struct TransportLifetimeTests {
    @Test func aTransportWhosePeerNeverChecksOrStopsCheckingIsClosed() throws {
        let network = FakeNetwork()
        let silent = try TestPeer(port: 5001)
        let offer = try SessionDescription(parsing: silent.offer(sending: true))
        _ = try network.core.negotiate(NegotiationRequest(meetingID: "m", participantID: "silent", transportID: nil, role: .whip, offer: offer), now: network.now)
        let talker = try TestPeer(port: 5002)
        try network.join(talker, meeting: "m", participant: "talker", role: .whip, sending: true)
        network.advance(milliseconds: 20)
        #expect(network.core.transportCount == 2)
        network.advance(milliseconds: 31_000)
        // Neither sent a check for 30 s: both are gone and the control plane is told why.
        #expect(network.core.transportCount == 0)
        let reasons = network.events.compactMap { event -> String? in
            if case .transportClosed(_, _, _, let reason) = event { return reason } else { return nil }
        }
        #expect(reasons.contains { $0.hasPrefix("no ICE connectivity check") })
        #expect(reasons.contains { $0.hasPrefix("ICE consent expired") })
    }
}

@Suite struct ReportTests {
    @Test func publishersGetReceiverReportsAndSubscribersSenderReports() throws {
        let network = FakeNetwork()
        let (publisher, player) = try network.whipPublisherAndWHEPPlayer()
        network.send(publisher.protect(publisher.videoPacket(keyframe: true)), from: publisher.address)
        for _ in 0..<29 { network.send(publisher.protect(publisher.videoPacket(keyframe: false)), from: publisher.address) }
        network.pump()
        publisher.receivedRTCP.removeAll()
        player.receivedRTCP.removeAll()
        let start = network.now
        network.advance(milliseconds: 1100)
        let blocks = publisher.receivedRTCP.flatMap { packet -> [ReportBlock] in
            if case .receiverReport(let rr) = packet { return rr.reports } else { return [] }
        }
        let block = try #require(blocks.first { $0.ssrc == publisher.videoSSRC })
        #expect(block.highestSequence & 0xFFFF == UInt32(publisher.sequence &- 1))
        #expect(block.fractionLost == 0 && block.cumulativeLost == 0)
        #expect(publisher.receivedRTCP.contains { if case .remb = $0 { return true } else { return false } })
        let reports = player.receivedRTCP.compactMap { packet -> SenderReport? in
            if case .senderReport(let sr) = packet { return sr } else { return nil }
        }
        let videoSSRC = try #require(player.receivedRTP.first?.header.ssrc)
        let report = try #require(reports.first { $0.ssrc == videoSSRC })
        #expect(report.packetCount == 30)
        #expect(report.octetCount == 30 * 204)
        // The wall time in the report is the clock the SFU was given, at the fake time it was sent.
        #expect((FakeNetwork.ntpClock.ntp(at: start)...FakeNetwork.ntpClock.ntp(at: network.now)).contains(report.ntpTimestamp))
    }
}

@Suite struct ICERestartTests {
    @Test func anICERestartChangesBothSidesCredentialsAndMediaMovesToTheNewAddress() throws {
        let network = FakeNetwork()
        let publisher = try TestPeer(port: 5001), player = try TestPeer(port: 5002)
        try network.join(publisher, meeting: "m", participant: "pub", role: .whip, sending: true)
        let first = try network.join(player, meeting: "m", participant: "play", role: .whep, sending: false)
        let oldAnswer = player.answer!
        let oldPlayerUfrag = player.ufrag
        // The player's network changed: it offers again with new credentials (pc.restartIce()).
        player.ufrag = RandomToken.make(length: 8)
        player.password = RandomToken.make(length: 24)
        let restart = try network.core.negotiate(NegotiationRequest(meetingID: "m", participantID: "play", transportID: first.transportID, role: .whep,
                                                                   offer: SessionDescription(parsing: player.offer(sending: false))), now: network.now)
        #expect(restart.transportID == first.transportID)
        player.answer = try SessionDescription(parsing: restart.answer)
        #expect(player.answer!.media[0].attribute("ice-ufrag") != oldAnswer.media[0].attribute("ice-ufrag"))
        // Make-before-break: until a check with the new credentials nominates, the old path
        // keeps its consent and media; then the old credentials are refused.
        let moved = PeerAddress(ipv4: (127, 0, 0, 9), port: 7000)
        func oldCredentialsCheck() -> [UInt8] {
            STUNMessage(messageClass: .request, transactionID: (0..<12).map { _ in UInt8.random(in: 0...255) },
                        attributes: [.init(.username, Array("\(oldAnswer.media[0].attribute("ice-ufrag")!):\(oldPlayerUfrag)".utf8))])
                .encoded(integrityKey: Array(oldAnswer.media[0].attribute("ice-pwd")!.utf8))
        }
        network.output.sent.removeAll()
        network.send(oldCredentialsCheck(), from: player.address)
        #expect(network.output.sent.contains { $0.to == player.address }, "the old path's check is answered")
        network.output.sent.removeAll()
        network.send(publisher.protect(publisher.videoPacket(keyframe: true)), from: publisher.address)
        #expect(network.output.sent.contains { $0.to == player.address }, "media stays on the old path")
        network.send(player.bindingRequest(), from: moved)
        network.output.sent.removeAll()
        network.send(publisher.protect(publisher.videoPacket(keyframe: true)), from: publisher.address)
        #expect(network.output.sent.contains { $0.to == moved })
        let refusedBefore = network.core.counters.dropped[.unknownSender] + network.core.counters.dropped[.unauthenticated]
        network.send(oldCredentialsCheck(), from: player.address)
        #expect(network.core.counters.dropped[.unknownSender] + network.core.counters.dropped[.unauthenticated] == refusedBefore + 1)
    }

    @Test func aNATRebindingIsFollowedAfterAValidCheckOnceTheOldAddressWentQuiet() throws {
        let network = FakeNetwork()
        let (publisher, player) = try network.whipPublisherAndWHEPPlayer()
        let rebound = PeerAddress(ipv4: (127, 0, 0, 1), port: 6123)
        /// A check with the same credentials, without USE-CANDIDATE (a keepalive after the NAT moved).
        func keepalive() -> [UInt8] {
            let media = player.answer!.media[0]
            return STUNMessage(messageClass: .request, transactionID: (0..<12).map { _ in UInt8.random(in: 0...255) }, attributes: [
                .init(.username, Array("\(media.attribute("ice-ufrag")!):\(player.ufrag)".utf8)), .init(.priority, [0x6E, 0, 1, 0xFF]),
                .init(.iceControlling, [1, 2, 3, 4, 5, 6, 7, 8]),
            ]).encoded(integrityKey: Array(media.attribute("ice-pwd")!.utf8))
        }
        func mediaGoesTo() -> Set<PeerAddress> {
            network.output.sent.removeAll()
            network.send(publisher.protect(publisher.videoPacket(keyframe: true)), from: publisher.address)
            return Set(network.output.sent.map(\.to))
        }
        // While the player's address is alive, a stray check from elsewhere moves nothing.
        var receiverReport: [UInt8] = []
        ReceiverReport(ssrc: 1, reports: []).write(into: &receiverReport)
        network.send(player.protect(receiverReport), from: player.address)
        network.send(keepalive(), from: rebound)
        #expect(mediaGoesTo() == [player.address])
        // The old address has been quiet for a second: the next valid check is followed.
        network.advance(milliseconds: 1100)
        network.send(keepalive(), from: rebound)
        #expect(mediaGoesTo() == [rebound])
        // A forged check from a third address (wrong password) does not move it.
        let attacker = PeerAddress(ipv4: (127, 0, 0, 66), port: 6666)
        network.advance(milliseconds: 1100)
        network.send(player.bindingRequest(password: "not-the-password-at-all"), from: attacker)
        #expect(mediaGoesTo() == [rebound])
    }
}

@Suite struct KeyframeRelayTests {
    @Test func aSubscribersPLIReachesThePublisherAsFIRWhenThatIsAllItSpeaks() throws {
        let network = FakeNetwork()
        let publisher = try TestPeer(port: 5001), player = try TestPeer(port: 5002)
        publisher.videoFeedback = ["nack", "ccm fir"]
        try network.join(publisher, meeting: "m", participant: "pub", role: .whip, sending: true)
        try network.join(player, meeting: "m", participant: "play", role: .whep, sending: false)
        network.send(publisher.protect(publisher.videoPacket(keyframe: true)), from: publisher.address)
        network.advance(milliseconds: 500)
        publisher.receivedRTCP.removeAll()
        let consumerSSRC = try #require(player.receivedRTP.first?.header.ssrc)
        var pli: [UInt8] = []
        PictureLossIndication(senderSSRC: 1, mediaSSRC: consumerSSRC).write(into: &pli)
        network.send(player.protect(pli), from: player.address)
        network.pump()
        let firs = publisher.receivedRTCP.compactMap { packet -> FullIntraRequest? in
            if case .fullIntraRequest(let fir) = packet { return fir } else { return nil }
        }
        #expect(firs.count == 1 && firs.first?.entries.first?.ssrc == publisher.videoSSRC)
        #expect(!publisher.receivedRTCP.contains { if case .pictureLossIndication = $0 { return true } else { return false } })
        // A second request at once is held by the throttle, then sent when the interval ends.
        network.send(player.protect(pli), from: player.address)
        network.pump()
        #expect(publisher.receivedRTCP.count == 1)
        network.advance(milliseconds: 400)
        let later = publisher.receivedRTCP.filter { if case .fullIntraRequest = $0 { return true } else { return false } }
        #expect(later.count == 2)
    }
}

@Suite struct UpstreamRepairTests {
    @Test func packetsLostOnTheWayInAreAskedForAndTheRepairReachesSubscribers() throws {
        let network = FakeNetwork()
        let (publisher, player) = try network.whipPublisherAndWHEPPlayer()
        var sent: [[UInt8]] = []
        for index in 0..<6 {
            let packet = publisher.videoPacket(keyframe: index == 0)
            sent.append(packet)
            if index != 3 { network.send(publisher.protect(packet), from: publisher.address) }  // the 4th is lost
        }
        network.pump()
        #expect(player.receivedRTP.count == 5)
        publisher.receivedRTCP.removeAll()
        network.advance(milliseconds: 20)
        let nacks = publisher.receivedRTCP.compactMap { packet -> GenericNACK? in
            if case .nack(let nack) = packet { return nack } else { return nil }
        }
        let lostSequence = UInt16(sent[3][2]) << 8 | UInt16(sent[3][3])
        #expect(nacks.count == 1 && nacks.first?.mediaSSRC == publisher.videoSSRC)
        #expect(nacks.first?.lostSequenceNumbers == [lostSequence])
        // The publisher answers with RTX; the player gets the original packet in the gap it left.
        network.send(publisher.protect(publisher.rtxPacket(of: sent[3])), from: publisher.address)
        network.pump()
        #expect(network.core.counters.repairsReceived == 1)
        let video = player.receivedRTP.map(\.header.sequenceNumber)
        #expect(video.count == 6)
        #expect(Set(video).count == 6 && video.max()! &- video.min()! == 5)
        let repaired = try #require(player.receivedRTP.last)
        #expect(Array(repaired.bytes[repaired.header.payloadOffset...]) == Array(sent[3][12...]))
        // Nothing is asked for again once repaired.
        publisher.receivedRTCP.removeAll()
        network.advance(milliseconds: 200)
        #expect(!publisher.receivedRTCP.contains { if case .nack = $0 { return true } else { return false } })
    }

    @Test func packetsThatCameBeforeAreNotForwardedAgain() throws {
        // Chromium probes its uplink by resending packets over RTX that were never lost; a
        // subscriber must not pay for them a second time.
        let network = FakeNetwork()
        let (publisher, player) = try network.whipPublisherAndWHEPPlayer()
        let sent = (0..<4).map { publisher.videoPacket(keyframe: $0 == 0) }
        for packet in sent { network.send(publisher.protect(packet), from: publisher.address) }
        network.pump()
        #expect(player.receivedRTP.count == 4)
        for packet in sent.prefix(3) { network.send(publisher.protect(publisher.rtxPacket(of: packet)), from: publisher.address) }
        network.pump()
        #expect(player.receivedRTP.count == 4)
        #expect(network.core.counters.dropped[.duplicate] == 3)
        #expect(network.core.counters.repairsReceived == 0)
        // The stream goes on.
        network.send(publisher.protect(publisher.videoPacket(keyframe: false)), from: publisher.address)
        network.pump()
        #expect(player.receivedRTP.count == 5)
    }
}

@Suite struct AssignmentTests {
    @Test func idleReceiversTakeNewTracksAtOnceAndMoveWhenTheirSourceLeaves() throws {
        let network = FakeNetwork()
        let viewer = try TestPeer(port: 5001), first = try TestPeer(port: 5002), second = try TestPeer(port: 5003)
        let joined = try network.join(viewer, meeting: "m", participant: "viewer", role: .participant, sending: false)
        #expect(joined.assignments.allSatisfy { $0.participantID == nil })
        // A publisher arrives: the viewer's idle receivers show it without a new offer.
        let published = try network.join(first, meeting: "m", participant: "first", role: .participant, sending: true)
        let update = try #require(published.changedAssignments.first { $0.participantID == "viewer" })
        #expect(update.version > joined.assignmentsVersion)
        #expect(Set(update.assignments.compactMap(\.participantID)) == ["first"])
        network.send(first.protect(first.videoPacket(keyframe: true)), from: first.address)
        network.pump()
        #expect(viewer.receivedRTP.count == 1)
        // A second publisher finds no idle receiver; when the first leaves, the viewer's mids move to it.
        let secondResult = try network.join(second, meeting: "m", participant: "second", role: .participant, sending: true)
        #expect(!secondResult.changedAssignments.contains { $0.participantID == "viewer" })
        network.core.closeParticipant(meetingID: "m", participantID: "first", now: network.now, output: network.output)
        let moved = network.events.compactMap { event -> AssignmentUpdate? in
            if case .assignmentsChanged(_, let update) = event, update.participantID == "viewer" { return update } else { return nil }
        }
        #expect(Set(try #require(moved.last).assignments.compactMap(\.participantID)) == ["second"])
        let ssrcBefore = try #require(viewer.receivedRTP.last?.header.ssrc)
        network.send(second.protect(second.videoPacket(keyframe: true)), from: second.address)
        network.pump()
        #expect(viewer.receivedRTP.last?.header.ssrc == ssrcBefore)  // same consumer, same SSRC
        #expect(viewer.receivedRTP.count == 2)
    }
}
