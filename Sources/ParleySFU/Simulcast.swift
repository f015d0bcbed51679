import ParleyTransport

/// How large a subscriber shows one received video, in device pixels.
public struct VideoSize: Sendable, Codable, Equatable {
    public var width: Int
    public var height: Int
    public init(width: Int, height: Int) { self.width = width; self.height = height }
}

extension WorkerCore {
    /// How often layers are chosen again from what publishers send (paused layers go quiet).
    static let layerCheckInterval: Nanoseconds = 250_000_000

    /// A subscriber's tile sizes, by receiving mid: its consumers aim for the layer that fits.
    public func setViewport(meetingID: String, participantID: String, sizes: [String: VideoSize], now: Nanoseconds) {
        for transport in transports.values where transport.meetingID == meetingID && transport.participantID == participantID {
            for consumer in transport.consumers where consumer.kind == .video {
                guard let size = sizes[consumer.mid] else { continue }
                consumer.viewport = (size.width, size.height)
                consumer.updateLayer(now: now)
            }
        }
        announceWantedLayers(in: meetingID, now: now)
    }

    /// Chooses every simulcast consumer's layer again, then tells publishers which layers somebody
    /// needs, so they stop encoding the others.
    func checkLayers(now: Nanoseconds) {
        for router in routers.values {
            for producer in router.producers where producer.isSimulcast {
                for consumer in producer.consumers { consumer.updateLayer(now: now) }
            }
            announceWantedLayers(in: router.meetingID, now: now)
        }
    }

    /// Per simulcast producer: the lowest layer always (a fallback that is quick to switch to),
    /// every layer a viewport asks for, and layers still forwarded until a switch completes.
    private func announceWantedLayers(in meetingID: String, now: Nanoseconds) {
        guard let router = routers[meetingID] else { return }
        for producer in router.producers where producer.isSimulcast {
            var wanted: UInt64 = 1
            for consumer in producer.consumers {
                wanted |= 1 << UInt64(min(consumer.desiredLayer, 63))
                if let current = consumer.currentLayer, current != consumer.targetLayer { wanted |= 1 << UInt64(min(current, 63)) }
            }
            guard wanted != producer.announcedLayers else { continue }
            producer.announcedLayers = wanted
            let rids = producer.encodings.indices.filter { wanted & (1 << UInt64($0)) != 0 }.compactMap { producer.encodings[$0].rid }
            emit(.layersWanted(meetingID: meetingID, participantID: producer.participantID, mid: producer.mid, rids: rids))
        }
    }
}
