import ParleyBase
import ParleyMediaAPI
import ParleyWire
import Testing
@testable import ParleySFU

/// The loudest list on values: per packet, no averaging interval.
@Suite struct LoudestSpeakersTests {
    func hear(_ loudest: inout LoudestSpeakers<Int>, _ key: Int, owner: Int, level: UInt8, now: Nanoseconds) -> Bool {
        loudest.hear(key, owner: owner, level: level, now: now)
    }

    @Test func theFirstLoudPacketOfANewSpeakerRanksItAtOnce() {
        var loudest = LoudestSpeakers<Int>(capacity: 2)
        var heard: Bool
        let start: Nanoseconds = .seconds(10)
        heard = hear(&loudest, 1, owner: 1, level: 30, now: start)
        #expect(heard)
        heard = hear(&loudest, 2, owner: 2, level: 40, now: start)
        #expect(heard)
        // Full: a quiet newcomer does not get in, a loud one takes the weakest place on its first packet.
        heard = hear(&loudest, 3, owner: 3, level: 100, now: start + .milliseconds(20))
        #expect(!heard)
        heard = hear(&loudest, 3, owner: 3, level: 10, now: start + .milliseconds(20))
        #expect(heard)
        #expect(loudest.entries.map(\.key) == [3, 1])
        // Not louder by the margin than the weakest: stays out.
        heard = hear(&loudest, 2, owner: 2, level: 28, now: start + .milliseconds(40))
        #expect(!heard)
    }

    @Test func aSourceNotHeardForItsExpiryGivesWayEvenToAQuietNewcomerAndComesBackAtItsOwnLevel() {
        var loudest = LoudestSpeakers<Int>(capacity: 1)
        var heard: Bool
        let start: Nanoseconds = .seconds(10)
        heard = hear(&loudest, 1, owner: 1, level: 10, now: start)
        #expect(heard)
        heard = hear(&loudest, 2, owner: 2, level: 120, now: start + .milliseconds(100))
        #expect(!heard)
        heard = hear(&loudest, 2, owner: 2, level: 120, now: start + .milliseconds(200))
        #expect(heard, "the first went quiet (DTX, muted)")
        // Back after a pause: its energy restarts at this packet's instead of half of it.
        var again = LoudestSpeakers<Int>(capacity: 1)
        _ = again.hear(1, owner: 1, level: 127, now: start)
        _ = again.hear(1, owner: 1, level: 20, now: start + .seconds(1))
        #expect(again.entries.first?.energy == 107)
    }

    @Test func rankSkipsTheSubscribersOwnSources() {
        var loudest = LoudestSpeakers<Int>(capacity: 4)
        let now: Nanoseconds = .seconds(1)
        for (key, level) in [(1, 10), (2, 20), (3, 30), (4, 40)] { _ = loudest.hear(key, owner: key, level: UInt8(level), now: now) }
        #expect(loudest.rank(of: 3, excludingOwner: 1) == 1)
        #expect(loudest.rank(of: 3, excludingOwner: 4) == 2)
        #expect(loudest.rank(of: 1, excludingOwner: 1) == nil)
    }
}

/// Speaker slots through the worker core: five microphones, a player with three slots.
@Suite struct SpeakerSlotTests {
    /// Five WHIP microphones and a WHEP player whose offer has `slots` audio sections (the
    /// meeting's speaker count is three).
    func meeting(slots: Int = 3) throws -> (FakeNetwork, [TestPeer], TestPeer) {
        let network = FakeNetwork()
        let publishers = try network.whipPublishers(5)
        let player = try TestPeer(port: 5100)
        player.extraAudioReceivers = slots - 1
        try network.join(player, meeting: "m", participant: "player", role: .whep, sending: false)
        return (network, publishers, player)
    }

    /// One 20 ms round: every publisher sends a packet at its level.
    func round(_ network: FakeNetwork, _ publishers: [TestPeer], levels: [UInt8]) {
        for (publisher, level) in zip(publishers, levels) { network.send(publisher.protect(publisher.audioPacket(level: level)), from: publisher.address) }
        network.advance(milliseconds: 20)
    }

    func sourceIDs(_ network: FakeNetwork) -> [UInt32: Int] {
        var byID: [UInt32: Int] = [:]
        for (index, producer) in network.core.routers["m"]!.producers.filter({ $0.kind == .audio }).enumerated() { byID[producer.sourceID] = index }
        return byID
    }

    /// Who each received packet came from (its CSRC), per slot SSRC.
    func received(_ player: TestPeer, ids: [UInt32: Int]) -> [UInt32: [Int]] {
        var bySlot: [UInt32: [Int]] = [:]
        for packet in player.receivedRTP where packet.header.payloadType == 111 {
            #expect(packet.header.csrcCount == 1)
            let csrc = packet.bytes.withUnsafeBytes { $0.readU32(at: 12) }
            bySlot[packet.header.ssrc, default: []].append(ids[csrc] ?? -1)
        }
        return bySlot
    }

    @Test func aSubscriberHearsExactlyTheThreeLoudestAndANewLoudSpeakersFirstPacket() throws {
        let (network, publishers, player) = try meeting()
        let ids = sourceIDs(network)
        // Three talk, two are quiet (but send): only the three reach the player.
        for _ in 0..<50 { round(network, publishers, levels: [20, 25, 30, 110, 115]) }
        let before = received(player, ids: ids)
        #expect(before.count == 3, "three slots")
        #expect(Set(before.values.flatMap { $0 }) == [0, 1, 2])
        #expect(network.core.counters.audioNotLoudest >= 40)
        // Publisher 3 starts talking loudly as publisher 0 stops: its very first loud packet is forwarded.
        player.receivedRTP.removeAll()
        round(network, publishers, levels: [127, 25, 30, 10, 115])
        let switched = received(player, ids: ids)
        #expect(switched.values.flatMap { $0 }.contains(3), "the first loud packet of the new speaker arrived")
        #expect(!switched.values.flatMap { $0 }.contains(4))
        for _ in 0..<20 { round(network, publishers, levels: [127, 25, 30, 10, 115]) }
        #expect(Set(received(player, ids: ids).values.flatMap { $0 }).isSuperset(of: [1, 2, 3]))
        #expect(!received(player, ids: ids).values.flatMap { $0 }.contains(4))
        #expect(network.core.counters.speakerSwitches >= 1)
    }

    @Test func eachSlotKeepsItsSSRCAndContinuousSequenceNumbersAcrossSpeakers() throws {
        let (network, publishers, player) = try meeting()
        for _ in 0..<20 { round(network, publishers, levels: [20, 25, 30, 110, 115]) }
        for _ in 0..<20 { round(network, publishers, levels: [127, 25, 30, 10, 115]) }
        for _ in 0..<20 { round(network, publishers, levels: [127, 127, 30, 10, 15]) }
        var bySSRC: [UInt32: [UInt16]] = [:]
        for packet in player.receivedRTP where packet.header.payloadType == 111 { bySSRC[packet.header.ssrc, default: []].append(packet.header.sequenceNumber) }
        #expect(bySSRC.count == 3)
        for sequences in bySSRC.values {
            for (a, b) in zip(sequences, sequences.dropFirst()) { #expect(b == a &+ 1, "a gap or a jump in a slot's numbering") }
        }
        #expect(Set(received(player, ids: sourceIDs(network)).values.flatMap { $0 }) == [0, 1, 2, 3, 4])
    }

    @Test func aParticipantNeverHearsItselfAndSilentStreamsCostNothingDownstream() throws {
        let network = FakeNetwork()
        // Ada publishes on one transport and listens on another, as one participant; Bob listens.
        let adaMicrophone = try TestPeer(port: 5001), adaSpeaker = try TestPeer(port: 5002), bob = try TestPeer(port: 5003)
        try network.join(adaMicrophone, meeting: "m", participant: "ada", role: .whip, sending: true)
        try network.join(adaSpeaker, meeting: "m", participant: "ada", role: .whep, sending: false)
        try network.join(bob, meeting: "m", participant: "bob", role: .whep, sending: false)
        for _ in 0..<10 {
            network.send(adaMicrophone.protect(adaMicrophone.audioPacket(level: 20)), from: adaMicrophone.address)
            network.advance(milliseconds: 20)
        }
        #expect(adaSpeaker.receivedRTP.filter { $0.header.payloadType == 111 }.isEmpty, "its own audio came back")
        #expect(bob.receivedRTP.filter { $0.header.payloadType == 111 }.count == 10)
        // Five more microphones, all but one silent: with the loudest list full, the silent ones
        // are ranked and sent to nobody.
        var others: [TestPeer] = []
        for index in 0..<5 {
            let peer = try TestPeer(port: UInt16(5010 + index))
            try network.join(peer, meeting: "m", participant: "q\(index)", role: .whip, sending: true)
            others.append(peer)
        }
        let forwardedBefore = network.core.counters.rtpForwarded, notLoudestBefore = network.core.counters.audioNotLoudest
        for _ in 0..<10 {
            network.send(adaMicrophone.protect(adaMicrophone.audioPacket(level: 20)), from: adaMicrophone.address)
            for peer in others { network.send(peer.protect(peer.audioPacket(level: 127)), from: peer.address) }
            network.advance(milliseconds: 20)
        }
        // Ada and three silent ones fill the list of four; two silent ones cost nothing.
        #expect(network.core.counters.audioNotLoudest - notLoudestBefore == 20)
        #expect(network.core.counters.rtpForwarded - forwardedBefore <= 10 * 4 * 2)
    }

    @Test func answersHaveNoMoreReceivingSectionsThanTheMeetingHasSlots() throws {
        let network = FakeNetwork()
        let player = try TestPeer(port: 5100)
        player.extraAudioReceivers = 5
        network.add(player)
        let offer = try SessionDescription(parsing: player.offer(sending: false))
        let result = try network.core.negotiate(NegotiationRequest(meetingID: "m", participantID: "player", transportID: nil, role: .whep, offer: offer,
                                                                   media: MeetingMediaSettings(audioSpeakers: 2, videoSlots: 25)), now: network.now)
        let answer = try SessionDescription(parsing: result.answer)
        let audio = answer.media.filter { $0.kind == "audio" }
        #expect(audio.count == 6, "every offered section is answered")
        #expect(audio.filter { $0.direction == .sendonly }.count == 2)
        #expect(audio.filter { $0.direction == .inactive }.count == 4)
        #expect(result.assignments.filter { $0.kind == .audio }.count == 2)
    }

    @Test func aClosedSpeakerEmptiesItsSlotsAndSomeoneElseTakesThem() throws {
        let (network, publishers, player) = try meeting(slots: 1)
        for _ in 0..<10 { round(network, publishers, levels: [20, 60, 60, 60, 60]) }
        let ids = sourceIDs(network)
        #expect(Set(received(player, ids: ids).values.flatMap { $0 }) == [0])
        let zeroTransport = network.core.transports.values.first { $0.participantID == "p0" }!
        network.core.closeTransport(id: zeroTransport.id, reason: "left", now: network.now, output: network.output)
        // The empty slot is taken at once; the loudest of the rest holds it.
        for _ in 0..<2 { round(network, Array(publishers.dropFirst()), levels: [60, 30, 60, 60]) }
        player.receivedRTP.removeAll()
        for _ in 0..<10 { round(network, Array(publishers.dropFirst()), levels: [60, 30, 60, 60]) }
        #expect(Set(received(player, ids: ids).values.flatMap { $0 }) == [2])
    }
}

/// Video slots: bounded by the meeting's count, filled with what the subscriber selects.
@Suite struct VideoSlotTests {
    /// Four WHIP cameras and a participant with `slots` video sections.
    func meeting(slots: Int, videoSlots: Int = 25) throws -> (FakeNetwork, [TestPeer], TestPeer, NegotiationResult) {
        let network = FakeNetwork()
        let publishers = try network.whipPublishers(4)
        let viewer = try TestPeer(port: 5100)
        viewer.extraVideoReceivers = slots - 1
        let result = try network.join(viewer, meeting: "m", participant: "viewer", role: .participant, sending: false,
                                      media: MeetingMediaSettings(audioSpeakers: 3, videoSlots: videoSlots))
        return (network, publishers, viewer, result)
    }

    func shown(_ network: FakeNetwork) -> [String: String] {
        let transport = network.core.transports.values.first { $0.participantID == "viewer" }!
        var shown: [String: String] = [:]
        for consumer in transport.consumers where consumer.kind == .video { shown[consumer.mid] = consumer.producer?.participantID ?? "-" }
        return shown
    }

    @Test func aGalleryPageIsWhatTheSlotsCarryAndAVideoAlreadyShownKeepsItsSlot() throws {
        let (network, publishers, viewer, result) = try meeting(slots: 2)
        #expect(Set(result.assignments.filter { $0.kind == .video }.compactMap(\.participantID)) == ["p0", "p1"], "arrival order before a selection")
        network.core.selectVideos(meetingID: "m", participantID: "viewer",
                                  sources: [VideoSource(participantID: "p1", source: "camera"), VideoSource(participantID: "p3", source: "camera")],
                                  now: network.now)
        let slots = shown(network)
        #expect(Set(slots.values) == ["p1", "p3"])
        #expect(slots.values.filter { $0 == "p1" }.count == 1)
        let update = try #require(network.events.compactMap { event -> AssignmentUpdate? in
            if case .assignmentsChanged(_, let update) = event { return update } else { return nil }
        }.last)
        #expect(update.participantID == "viewer")
        #expect(update.assignments.map(\.participantID) == ["p3"], "only the slot that changed")
        // Media follows: p3's keyframe reaches the viewer, p0's does not.
        network.send(publishers[3].protect(publishers[3].videoPacket(keyframe: true)), from: publishers[3].address)
        network.send(publishers[0].protect(publishers[0].videoPacket(keyframe: true)), from: publishers[0].address)
        network.pump()
        #expect(viewer.receivedRTP.filter { $0.header.payloadType == 96 }.count == 1)
        // A selected camera leaves: its slot falls empty rather than showing someone not selected.
        let p3 = network.core.transports.values.first { $0.participantID == "p3" }!
        network.core.closeTransport(id: p3.id, reason: "left", now: network.now, output: network.output)
        #expect(Set(shown(network).values) == ["p1", "-"])
    }

    @Test func answersBoundTheVideoSectionsByTheMeetingsSlots() throws {
        let (_, _, viewer, result) = try meeting(slots: 4, videoSlots: 2)
        let video = viewer.answer!.media.filter { $0.kind == "video" }
        #expect(video.filter { $0.direction == .sendonly }.count == 2)
        #expect(result.assignments.filter { $0.kind == .video }.count == 2)
    }
}
