import ParleyBase
import ParleyMediaAPI
import ParleyTransport

extension WorkerCore {
    /// How often layers are chosen again from what publishers send (paused layers go quiet).
    static let layerCheckInterval: Nanoseconds = 250_000_000

    /// A subscriber's tile sizes, by receiving mid: its consumers aim for the layer that fits.
    public func setViewport(meetingID: String, participantID: String, sizes: [String: VideoSize], now: Nanoseconds) {
        assertOnOwnerThread()
        for transport in transports.values where transport.meetingID == meetingID && transport.participantID == participantID {
            for consumer in transport.consumers where consumer.kind == .video {
                guard let size = sizes[consumer.mid] else { continue }
                consumer.viewport = (size.width, size.height)
                consumer.updateLayer(now: now)
            }
        }
        announceWantedLayers(in: meetingID, now: now)
    }

    /// Measures what each layer costs, fits every subscriber's video into its bandwidth estimate
    /// (the degradation ladder), chooses every simulcast consumer's layer again, then tells
    /// publishers which layers somebody needs, so they stop encoding the others.
    func checkLayers(now: Nanoseconds) {
        for router in routers.values {
            for producer in router.producers { producer.sampleBitrates(interval: Self.layerCheckInterval) }
        }
        for transport in transports.values where transport.hasTransportFeedback || transport.estimator.estimate < BandwidthEstimator.initialBitrate {
            allocate(transport, now: now)
        }
        for router in routers.values {
            for producer in router.producers where producer.isSimulcast {
                for consumer in producer.consumers { consumer.updateLayer(now: now) }
            }
            announceWantedLayers(in: router.meetingID, now: now)
        }
    }

    /// The degradation ladder for one subscriber, as its estimate falls: audio first (never
    /// paused); then every video at the layer its tile needs; while that does not fit, the most
    /// expensive video steps down a layer; when every video is at its lowest layer, the most
    /// expensive steps down a temporal layer (half, then a quarter of the frame rate); when that
    /// still does not fit, the most expensive video pauses (audio only for it). As the estimate
    /// rises the same steps are climbed back, each check starting from the top.
    func allocate(_ transport: WebRtcTransport, now: Nanoseconds) {
        // Keep 10 % headroom so a steady state does not sit on the edge.
        var budget = Int(Double(transport.estimator.estimate) * 0.9)
        var audio = 0
        var videos: [(consumer: Consumer, producer: Producer, layer: Int, temporal: Int, temporalLayers: Int)] = []
        for consumer in transport.consumers {
            guard let producer = consumer.producer else { continue }
            if consumer.kind == .audio {
                audio += producer.bitrate(ofLayer: 0)
            } else {
                let layer = producer.isSimulcast ? producer.desiredLayer(fitting: consumer.viewport) : 0
                let temporalLayers = producer.temporalLayerCount(now: now)
                videos.append((consumer, producer, layer, temporalLayers - 1, temporalLayers))
            }
        }
        budget -= audio
        var paused = Set<ObjectIdentifier>()
        func cost(_ index: Int) -> Int {
            let video = videos[index]
            return paused.contains(ObjectIdentifier(video.consumer)) ? 0 : video.producer.bitrate(ofLayer: video.layer, temporal: video.temporal, of: video.temporalLayers)
        }
        func running(_ index: Int) -> Bool { !paused.contains(ObjectIdentifier(videos[index].consumer)) }
        var total = videos.indices.reduce(0) { $0 + cost($1) }
        let wanted = total
        while total > budget {
            // The most expensive video that can still step down a layer, else a temporal layer,
            // else the most expensive to pause.
            if let index = videos.indices.filter({ videos[$0].layer > 0 && running($0) }).max(by: { cost($0) < cost($1) }) {
                total -= cost(index)
                videos[index].layer -= 1
                total += cost(index)
            } else if let index = videos.indices.filter({ videos[$0].temporal > 0 && running($0) }).max(by: { cost($0) < cost($1) }) {
                total -= cost(index)
                videos[index].temporal -= 1
                total += cost(index)
            } else if let index = videos.indices.filter(running).max(by: { cost($0) < cost($1) }) {
                total -= cost(index)
                paused.insert(ObjectIdentifier(videos[index].consumer))
            } else {
                break
            }
        }
        probe(transport, wanted: audio + wanted, sending: audio + total, now: now)
        var pausedChanged = false
        for video in videos {
            video.consumer.allocatedLayer = video.layer
            video.consumer.allocatedTemporalLayer = video.temporal
            let noRoom = paused.contains(ObjectIdentifier(video.consumer))
            video.consumer.checksWithoutRoom = noRoom ? video.consumer.checksWithoutRoom + 1 : 0
            let isPaused = noRoom && (video.consumer.pausedForBandwidth || video.consumer.checksWithoutRoom >= 2)
            if isPaused != video.consumer.pausedForBandwidth { pausedChanged = true }
            video.consumer.setPaused(isPaused)
        }
        if pausedChanged {
            let mids = transport.consumers.filter(\.pausedForBandwidth).map(\.mid)
            emit(.videoPaused(meetingID: transport.meetingID, participantID: transport.participantID, mids: mids))
        }
    }

    /// When the estimate holds video back, finds out whether the path carries more: padding on
    /// top of the media, so that together they reach what would let the tiles have what they
    /// want (with the allocation's headroom) but at most 1.5 times the estimate, while the path
    /// shows neither growing delay nor loss; after congestion, not for 3 s. The subscriber's
    /// feedback on the padding lets the estimate climb, or brings it down.
    private func probe(_ transport: WebRtcTransport, wanted: Int, sending: Int, now: Nanoseconds) {
        let estimator = transport.estimator
        guard transport.hasTransportFeedback, wanted > sending else {
            transport.probeBitrate = 0
            return
        }
        // No feedback for a second (nothing was sent): the last verdict on the path is stale.
        let stale = estimator.lastFeedbackAt.map { now &- $0 > 1_000_000_000 } ?? true
        guard stale || (estimator.usage == .normal && estimator.lossFraction < 0.02) else {
            transport.probeBitrate = 0
            transport.nextProbeAt = now + 3_000_000_000
            return
        }
        guard now >= transport.nextProbeAt else { return }
        // The estimate becomes 0.9 of what got through, the budget 0.9 of that.
        let goal = min(Int(Double(wanted) / 0.8), estimator.estimate * 3 / 2)
        transport.probeBitrate = max(0, goal - sending)
        transport.probeUntil = now + 2 * Self.layerCheckInterval
    }

    /// Per simulcast producer: the lowest layer always (a fallback that is quick to switch to),
    /// every layer a viewport asks for, and layers still forwarded until a switch completes.
    func announceWantedLayers(in meetingID: String, now: Nanoseconds) {
        guard let router = routers[meetingID] else { return }
        // A piped copy's publisher is another worker's: what is wanted of it goes across the pipe.
        for producer in router.producers where producer.isSimulcast && !producer.origin.isPipe {
            var wanted: UInt64 = 1
            for consumer in producer.consumers where !consumer.pausedForBandwidth {
                wanted |= 1 << UInt64(min(consumer.desiredLayer, 63))
                if let current = consumer.currentLayer, current != consumer.targetLayer { wanted |= 1 << UInt64(min(current, 63)) }
            }
            // Layers watched only on the far side of a pipe are wanted too.
            for pipe in producer.pipeSinks { wanted |= pipe.wantedLayers }
            guard wanted != producer.announcedLayers else { continue }
            producer.announcedLayers = wanted
            let rids = producer.encodings.indices.filter { wanted & (1 << UInt64($0)) != 0 }.compactMap { producer.encodings[$0].rid }
            emit(.layersWanted(meetingID: meetingID, participantID: producer.participantID, mid: producer.mid, rids: rids))
        }
    }
}
