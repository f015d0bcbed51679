import ParleyBase
import ParleyMediaAPI
import ParleyTransport

/// One meeting on one worker (mediasoup's Router): its transports and which Consumer is fed by
/// which Producer.
final class Router {
    public let meetingID: String
    var transports: [String: WebRtcTransport] = [:]
    /// Every live producer, oldest first.
    private(set) var producers: [Producer] = []

    /// Who speaks now (audio levels), and who is about to take over.
    var activeSpeaker: String?
    var speakerCandidate: String?

    init(meetingID: String) { self.meetingID = meetingID }

    var isEmpty: Bool { transports.isEmpty }

    /// Feeds a new producer to whoever waits for one: WHEP players (they follow the newest
    /// publisher) and web participants' idle consumers. Returns the web participants' consumers
    /// that now show something else.
    func producerAdded(_ producer: Producer, now: Nanoseconds) -> [Consumer] {
        producers.append(producer)
        var changed: [Consumer] = []
        for transport in transports.values where transport.participantID != producer.participantID {
            switch transport.role {
            case .whep:
                for consumer in transport.consumers where consumer.canConsume(producer) { consumer.attach(to: producer, now: now) }
            case .participant:
                if let idle = transport.consumers.first(where: { $0.producer == nil && $0.canConsume(producer) }) {
                    idle.attach(to: producer, now: now)
                    changed.append(idle)
                }
            case .whip:
                break
            }
        }
        return changed
    }

    /// Removes producers; their consumers take another source at once where one is free. Returns
    /// the web participants' consumers that now show something else (or nothing).
    func producersRemoved(_ removed: [Producer], now: Nanoseconds) -> [Consumer] {
        guard !removed.isEmpty else { return [] }
        var orphaned: [Consumer] = []
        for producer in removed {
            orphaned += producer.consumers
            producers.removeAll { $0 === producer }
            producer.transport.removeProducer(producer)
        }
        var changed: [Consumer] = []
        for consumer in orphaned where consumer.transport.router === self {
            let next = consumer.transport.role == .whep ? latestProducer(for: consumer) : unassignedProducer(for: consumer)
            if let next { consumer.attach(to: next, now: now) }
            if consumer.transport.role == .participant { changed.append(consumer) }
        }
        return changed
    }

    static func producersShown(by transport: WebRtcTransport) -> Set<ObjectIdentifier> {
        Set(transport.consumers.compactMap { $0.producer.map(ObjectIdentifier.init) })
    }

    /// The most recently created producer a consumer can take, from anyone but its own participant.
    func latestProducer(for consumer: Consumer) -> Producer? {
        producers.last { $0.participantID != consumer.transport.participantID && consumer.canConsume($0) }
    }

    /// The oldest producer a participant's consumer can take that none of its consumers takes yet.
    /// `taken` (what the transport's consumers show) can be passed in when filling many consumers:
    /// rebuilding it per consumer made a 200-section negotiation quadratic.
    func unassignedProducer(for consumer: Consumer, taken: Set<ObjectIdentifier>? = nil) -> Producer? {
        let taken = taken ?? Self.producersShown(by: consumer.transport)
        return producers.first {
            $0.participantID != consumer.transport.participantID && !taken.contains(ObjectIdentifier($0)) && consumer.canConsume($0)
        }
    }
}
