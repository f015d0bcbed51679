import ParleyBase
import ParleyMediaAPI
@testable import ParleySFU
import ParleyTransport
import ParleyWire
import Testing

/// The per-packet forwarding decision, asserted on as a value: what a subscriber's Consumer does
/// with one packet of its source, before anything is sent.
@Suite struct ForwardingDecisionTests {
    /// `bytes` as the producer's sinks see it, of encoding `layer`.
    func incoming(_ bytes: [UInt8], of producer: Producer, layer: Int = 0, _ body: (IncomingPacket) throws -> Void) throws {
        try bytes.withUnsafeBytes { raw in
            let header = try RTPHeader(parsing: raw)
            try body(IncomingPacket(raw, header: header, layer: layer, isRepair: false, of: producer))
        }
    }

    func cast() throws -> (FakeNetwork, TestPeer, Producer, Consumer) {
        let network = FakeNetwork()
        let (publisher, _) = try network.whipPublisherAndWHEPPlayer()
        let player = try #require(network.core.transports.values.first { $0.participantID == "play" })
        let consumer = try #require(player.consumers.first { $0.kind == .video })
        let producer = try #require(consumer.producer)
        return (network, publisher, producer, consumer)
    }

    @Test func videoStartsOnAKeyframeAndAsksForOneAtMostOnceASecond() throws {
        let (network, publisher, producer, consumer) = try cast()
        // The attach asked already: a delta frame now is dropped, waiting.
        #expect(consumer.keyframeOverdue(now: network.now))
        try incoming(publisher.videoPacket(keyframe: false), of: producer) { #expect(consumer.decide($0, now: network.now) == .drop(.waitingForKeyframe)) }
        try incoming(publisher.videoPacket(keyframe: false), of: producer) {
            #expect(consumer.decide($0, now: network.now + .seconds(1)) == .requestKeyframe)
        }
        try incoming(publisher.videoPacket(keyframe: true), of: producer) { #expect(consumer.decide($0, now: network.now) == .forward) }
        // Deciding changed nothing: still waiting.
        #expect(consumer.waitingForKeyframe)
    }

    @Test func aPausedOrUnconnectedSubscriberGetsNothing() throws {
        let (network, publisher, producer, consumer) = try cast()
        consumer.setPaused(true)
        try incoming(publisher.videoPacket(keyframe: true), of: producer) { #expect(consumer.decide($0, now: network.now) == .drop(.pausedForBandwidth)) }
        consumer.setPaused(false)
        consumer.transport.secure.close()
        try incoming(publisher.videoPacket(keyframe: true), of: producer) { #expect(consumer.decide($0, now: network.now) == .drop(.notSending)) }
    }

    @Test func temporalLayersAboveTheAllocationAreFilteredFromTheNextBaseFrame() throws {
        let (network, publisher, producer, consumer) = try cast()
        try incoming(publisher.temporalPacket(pictureID: 1, tl0PictureIndex: 1, temporalLayer: 0, keyframe: true, first: true, last: true), of: producer) {
            #expect(consumer.forward($0, now: network.now, output: network.output, counters: &network.core.counters))
        }
        consumer.allocatedTemporalLayer = 0
        // The limit moves at a base-layer frame: until then, layer 2 still goes.
        let upper = publisher.temporalPacket(pictureID: 2, tl0PictureIndex: 1, temporalLayer: 2, keyframe: false, first: true, last: true)
        try incoming(upper, of: producer) { #expect(consumer.decide($0, now: network.now) == .forward) }
        let base = publisher.temporalPacket(pictureID: 3, tl0PictureIndex: 2, temporalLayer: 0, keyframe: false, first: true, last: true)
        try incoming(base, of: producer) {
            #expect(consumer.decide($0, now: network.now) == .forward)
            #expect(consumer.forward($0, now: network.now, output: network.output, counters: &network.core.counters))
        }
        try incoming(publisher.temporalPacket(pictureID: 4, tl0PictureIndex: 2, temporalLayer: 1, keyframe: false, first: true, last: true), of: producer) {
            #expect(consumer.decide($0, now: network.now) == .drop(.temporalLayerFiltered))
        }
    }

    @Test func simulcastSwitchesToTheWantedLayerOnlyOnItsKeyframe() throws {
        let network = FakeNetwork()
        let publisher = try TestPeer(port: 5001), player = try TestPeer(port: 5002)
        publisher.simulcastRids = ["q", "h", "f"]
        try network.join(publisher, meeting: "m", participant: "pub", role: .whip, sending: true)
        try network.join(player, meeting: "m", participant: "play", role: .whep, sending: false)
        let consumer = try #require(network.core.transports.values.first { $0.participantID == "play" }?.consumers.first { $0.kind == .video })
        let producer = try #require(consumer.producer)
        #expect(consumer.currentLayer == nil)
        // No viewport and no layer heard from yet: it aims for the top one.
        let target = consumer.targetLayer, other = 0
        #expect(target == 2)
        try incoming(publisher.simulcastPacket(layer: other, keyframe: true, size: (320, 180)), of: producer, layer: other) {
            #expect(consumer.decide($0, now: network.now) != .forward)
        }
        try incoming(publisher.simulcastPacket(layer: target, keyframe: false), of: producer, layer: target) {
            #expect([.drop(.otherLayer), .requestKeyframe].contains(consumer.decide($0, now: network.now)))
        }
        try incoming(publisher.simulcastPacket(layer: target, keyframe: true, size: (1280, 720)), of: producer, layer: target) {
            #expect(consumer.decide($0, now: network.now) == .switchLayer(to: target))
        }
    }
}
