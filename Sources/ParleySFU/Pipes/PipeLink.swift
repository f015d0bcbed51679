import ParleyBase
import ParleyMediaAPI
import ParleyTransport
import ParleyWire

/// One meeting on one pipe: the sinks that carry this side's producers across, and the piped
/// copies of the far side's producers (with their ids, so `assignments` name one producer on
/// every worker). Piped copies are never piped on (a mesh: each side sends only its own).
final class PipeLink {
    unowned let trunk: PipeTrunk
    unowned let router: Router
    /// Which piped copies it also carries (never back the way they came).
    let relay: PipeRelay
    /// Sinks of this side's producers, by producer id.
    private(set) var sinks: [String: PipeSink] = [:]
    /// The far side's producers, by id, and when each was last announced.
    private(set) var piped: [String: Producer] = [:]
    private var announcedAt: [String: Nanoseconds] = [:]
    private var seenProducersVersion = -1
    private var nextFullAnnouncementAt: Nanoseconds = 0
    /// What we last told the far side we want of each of its producers, and when.
    private var sentWants: [String: PipeWants] = [:]
    private var wantsSentAt: Nanoseconds = 0
    /// A piped producer not announced for this long is gone (its withdrawal was lost).
    static let announcementLifetime: Nanoseconds = 6_000_000_000
    /// A link the far side said nothing about for this long was ended there: it ends here too
    /// (and whoever set it up sets it up again, if the meeting still wants it).
    static let silenceLimit: Nanoseconds = 6_000_000_000
    private(set) var lastHeardAt: Nanoseconds

    init(trunk: PipeTrunk, router: Router, relay: PipeRelay, now: Nanoseconds) {
        self.trunk = trunk
        self.router = router
        self.relay = relay
        self.lastHeardAt = now
    }

    func heard(now: Nanoseconds) { lastHeardAt = now }

    func isSilent(now: Nanoseconds) -> Bool { now &- lastHeardAt > Self.silenceLimit }

    /// The producers this link carries across: this worker's own, and relayed copies.
    private var carried: [Producer] {
        router.producers.filter { producer in
            switch producer.origin {
            case .publisher: true
            case .pipe(let origin):
                switch relay {
                case .none: false
                case .otherReach: origin.object.trunk.reach != trunk.reach
                case .all: origin.object.trunk !== trunk
                }
            }
        }
    }

    var meetingID: String { router.meetingID }

    /// Every tick: new and closed local producers are announced and withdrawn; piped producers
    /// ask for what they lost and for keyframes.
    func tick(now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters, messages: inout [PipeMessage]) {
        if router.producersVersion != seenProducersVersion {
            seenProducersVersion = router.producersVersion
            syncSinks(messages: &messages)
        }
        for producer in piped.values {
            producer.pollKeyframeRequest(now: now, output: output, counters: &counters)
            producer.sendNACKs(now: now, output: output, counters: &counters)
            // A subscriber that starts watching (or wants another layer) is told across at once:
            // its keyframe comes only once the layer crosses.
            if producer.kind == .video {
                let wants = Self.wants(of: producer, meetingID: meetingID)
                if sentWants[producer.id] != wants {
                    sentWants[producer.id] = wants
                    messages.append(.wants(wants))
                }
            }
        }
        if now >= nextFullAnnouncementAt {
            nextFullAnnouncementAt = now + 2_000_000_000
            messages.append(.alive(meetingID: meetingID))
            for sink in sinks.values { messages.append(.announce(sink.announcement)) }
        }
    }

    /// With the layer check (every 250 ms): what each local video producer's publisher sends,
    /// and, every second, what our subscribers want of each piped one (a change goes at once,
    /// from `tick`). Expired piped producers go.
    func checkLayers(now: Nanoseconds, interval: Nanoseconds, messages: inout [PipeMessage]) -> [Producer] {
        for sink in sinks.values {
            sink.sampleBitrates(interval: interval)
            if sink.producer.kind == .video { messages.append(.state(sink.state(now: now))) }
        }
        if now &- wantsSentAt >= 1_000_000_000 {
            wantsSentAt = now
            for producer in piped.values where producer.kind == .video {
                let wants = Self.wants(of: producer, meetingID: meetingID)
                sentWants[producer.id] = wants
                messages.append(.wants(wants))
            }
        }
        let expired = piped.values.filter { now &- (announcedAt[$0.id] ?? now) > Self.announcementLifetime }
        return expired
    }

    /// What our subscribers want of a piped video: the layer each one's tile asks for (and the
    /// one it still gets until a switch completes), up to the highest temporal layer any has
    /// room for. Nobody watching: nothing.
    static func wants(of producer: Producer, meetingID: String) -> PipeWants {
        var layers: UInt64 = 0
        var temporal = 0
        for consumer in producer.consumers where !consumer.pausedForBandwidth {
            layers |= 1 << UInt64(min(consumer.desiredLayer, 63))
            if let current = consumer.currentLayer, current != consumer.targetLayer { layers |= 1 << UInt64(min(current, 63)) }
            temporal = max(temporal, min(consumer.allocatedTemporalLayer, 2))
        }
        return PipeWants(meeting: meetingID, id: producer.id, layers: layers, temporal: temporal)
    }

    /// Sinks for local producers that have none (and announcements), withdrawals for those gone.
    private func syncSinks(messages: inout [PipeMessage]) {
        let local = carried
        for producer in local where sinks[producer.id] == nil && !producer.closed {
            let sink = PipeSink(producer: producer, link: self)
            sinks[producer.id] = sink
            producer.sinks.append(.pipe(sink))
            trunk.register(sink)
            messages.append(.announce(sink.announcement))
        }
        for (id, sink) in sinks where sink.producer.closed || !local.contains(where: { $0 === sink.producer }) {
            removeSink(sink)
            sinks[id] = nil
            messages.append(.withdraw(meetingID: meetingID, producerID: id))
        }
    }

    private func removeSink(_ sink: PipeSink) {
        sink.producer.sinks.removeAll { if case .pipe(let other) = $0 { other === sink } else { false } }
        trunk.unregister(sink)
    }

    /// A far producer announced: a piped copy is made (or kept). Returns it when it is new.
    func announced(_ announcement: PipeAnnouncement, now: Nanoseconds) -> Producer? {
        if let existing = piped[announcement.id] {
            if existing.encodings.map(\.ssrc) == announcement.ssrcs.map(Optional.some) {
                announcedAt[announcement.id] = now
                return nil
            }
            // The far side made its sink again (its pipe restarted): the copy is remade too.
            _ = router.producersRemoved([existing], now: now)
        }
        guard !announcement.ssrcs.isEmpty, announcement.ssrcs.count <= 4, announcement.ssrcs.count == announcement.rids.count else { return nil }
        let encodings = zip(announcement.ssrcs, announcement.rids).map { ReceiveStream(rid: $1, ssrc: $0) }
        let producer = Producer(id: announcement.id, kind: announcement.kind, mid: announcement.mid, source: announcement.source,
                                codec: announcement.codec.codec, rtxPayloadType: nil, redPayloadType: announcement.red, encodings: encodings,
                                audioLevelExtensionID: PipeSink.audioLevelID, origin: .pipe(Unowned(self)), participantID: announcement.participant,
                                owner: router.owner(of: announcement.participant), sourceID: announcement.sourceID, now: now)
        piped[producer.id] = producer
        announcedAt[producer.id] = now
        trunk.register(piped: producer)
        return producer
    }

    /// The origin's view of a piped producer's layers.
    func stateArrived(_ state: PipeProducerState) {
        guard let producer = piped[state.id], state.active.count == producer.encodings.count else { return }
        for index in producer.encodings.indices {
            producer.encodings[index].activeAtOrigin = state.active[index]
            if index < state.bitrates.count { producer.encodings[index].bitrate = max(0, state.bitrates[index]) }
            if index < state.widths.count, let width = state.widths[index], (1...16384).contains(width) { producer.encodings[index].width = width }
            if index < state.heights.count, let height = state.heights[index], (1...16384).contains(height) { producer.encodings[index].height = height }
        }
        producer.originTemporalLayers = min(max(state.temporalLayers, 1), 3)
    }

    /// What the far side wants of one of our producers. Returns whether a layer is newly
    /// wanted (its keyframe is asked for: the far subscriber waits for one).
    func wantsArrived(_ wants: PipeWants) -> Producer? {
        guard let sink = sinks[wants.id] else { return nil }
        let added = wants.layers & ~sink.wantedLayers
        sink.wantedLayers = wants.layers
        sink.temporalCap = min(max(wants.temporal, 0), 2)
        return added != 0 ? sink.producer : nil
    }

    var pipedProducers: Dictionary<String, Producer>.Values { piped.values }

    /// What this link's sinks send across, bits per second.
    var sendingBitrate: Int { sinks.values.reduce(0) { total, sink in total + sink.layers.reduce(0) { $0 + $1.bitrate } } }

    /// Called by the Router as it removes a piped producer.
    func removePiped(_ producer: Producer) {
        guard piped[producer.id] === producer else { return }
        piped[producer.id] = nil
        announcedAt[producer.id] = nil
        sentWants[producer.id] = nil
        trunk.unregister(piped: producer)
        producer.close()
    }

    /// The link ends: local producers stop crossing; the piped copies leave the Router. Returns
    /// the consumers that now show something else.
    func close(now: Nanoseconds) -> [Consumer] {
        for sink in sinks.values { removeSink(sink) }
        sinks.removeAll()
        return router.producersRemoved(Array(piped.values), now: now)
    }

    func status() -> [PipeStreamStatus] {
        var streams: [PipeStreamStatus] = []
        for sink in sinks.values.sorted(by: { $0.producer.id < $1.producer.id }) {
            for (index, layer) in sink.layers.enumerated() {
                streams.append(PipeStreamStatus(meetingID: meetingID, producerID: sink.producer.id, participantID: sink.producer.participantID,
                                                kind: sink.producer.kind, layer: index, direction: "out", packets: layer.packets,
                                                bitrate: layer.bitrate, wanted: sink.isWanted(layer: index)))
            }
        }
        for producer in piped.values.sorted(by: { $0.id < $1.id }) {
            for (index, encoding) in producer.encodings.enumerated() {
                streams.append(PipeStreamStatus(meetingID: meetingID, producerID: producer.id, participantID: producer.participantID,
                                                kind: producer.kind, layer: index, direction: "in", packets: Int(encoding.statistics.received),
                                                bitrate: encoding.bitrate, wanted: true))
            }
        }
        return streams
    }
}
