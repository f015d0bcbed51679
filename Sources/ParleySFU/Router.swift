import ParleyTransport

/// One meeting on one worker (mediasoup's Router): its transports and which Consumer is fed by
/// which Producer.
public final class Router {
    public let meetingID: String
    var transports: [String: WebRtcTransport] = [:]
    /// Every live producer, oldest first.
    private(set) var producers: [Producer] = []

    init(meetingID: String) { self.meetingID = meetingID }

    var isEmpty: Bool { transports.isEmpty }

    func producerAdded(_ producer: Producer, now: Nanoseconds) {
        producers.append(producer)
        // WHEP players follow the most recent publisher.
        for transport in transports.values where transport.role == .whep {
            for consumer in transport.consumers where consumer.canConsume(producer) {
                consumer.attach(to: producer, now: now)
            }
        }
    }

    /// Removes producers; returns the participants whose web clients must renegotiate.
    func producersRemoved(_ removed: [Producer], now: Nanoseconds) -> Set<String> {
        guard !removed.isEmpty else { return [] }
        var orphaned: [Consumer] = []
        for producer in removed {
            orphaned += producer.consumers
            producers.removeAll { $0 === producer }
            producer.transport.removeProducer(producer)
        }
        var renegotiate = Set<String>()
        for consumer in orphaned where consumer.transport.router === self {
            if consumer.transport.role == .whep {
                if let next = latestProducer(for: consumer) { consumer.attach(to: next, now: now) }
            } else {
                renegotiate.insert(consumer.transport.participantID)
            }
        }
        return renegotiate
    }

    /// The most recently created producer a consumer can take, from anyone but its own participant.
    func latestProducer(for consumer: Consumer) -> Producer? {
        producers.last { $0.participantID != consumer.transport.participantID && consumer.canConsume($0) }
    }

    /// The oldest producer a participant's consumer can take that none of its consumers takes yet.
    func unassignedProducer(for consumer: Consumer) -> Producer? {
        let taken = Set(consumer.transport.consumers.compactMap { $0.producer.map(ObjectIdentifier.init) })
        return producers.first {
            $0.participantID != consumer.transport.participantID && !taken.contains(ObjectIdentifier($0)) && consumer.canConsume($0)
        }
    }
}
