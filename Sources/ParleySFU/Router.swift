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
    /// The meeting's slot counts (from signaling, with every negotiation).
    private(set) var media: MeetingMediaSettings
    /// Every audio producer's sink: the loudest go into each subscriber's speaker slots.
    private(set) var speakers: SpeakerFanout
    private var owners: [String: Int] = [:]
    /// The pipes carrying this meeting to other workers and SFUs.
    var pipeLinks: [PipeLink] = []
    /// Grows whenever a producer comes or goes: pipes announce the change on their next tick.
    private(set) var producersVersion = 0

    init(meetingID: String, media: MeetingMediaSettings = .defaults) {
        self.meetingID = meetingID
        self.media = media
        self.speakers = SpeakerFanout(speakers: media.audioSpeakers)
    }

    var isEmpty: Bool { transports.isEmpty && pipeLinks.isEmpty }

    /// A participant's number in this meeting (the same for each of its transports).
    func owner(of participantID: String) -> Int {
        if let owner = owners[participantID] { return owner }
        let owner = owners.count
        owners[participantID] = owner
        return owner
    }

    /// Takes the meeting's slot counts from a negotiation. A new speaker count re-ranks from
    /// scratch (the slots keep what they hold until the next loud packet).
    func update(media: MeetingMediaSettings) {
        guard media != self.media else { return }
        if media.audioSpeakers != self.media.audioSpeakers {
            let fanout = SpeakerFanout(speakers: media.audioSpeakers)
            for subscriber in speakers.subscribers { fanout.setSlots(subscriber.slots, of: subscriber.transport, owner: subscriber.owner) }
            for producer in producers where producer.kind == .audio {
                producer.sinks = producer.sinks.map { if case .speakers = $0 { .speakers(fanout) } else { $0 } }
            }
            speakers = fanout
        }
        self.media = media
    }

    /// A transport's audio consumers become its speaker slots (WHEP players' and participants').
    func updateSpeakerSlots(of transport: WebRtcTransport) {
        guard transport.role != .whip else { return }
        speakers.setSlots(transport.consumers.filter { $0.kind == .audio }, of: transport, owner: transport.owner)
    }

    /// Feeds a new producer to whoever waits for one: WHEP players (they follow the newest
    /// publisher) and web participants' idle consumers. Returns the web participants' consumers
    /// that now show something else.
    func producerAdded(_ producer: Producer, now: Nanoseconds) -> [Consumer] {
        producers.append(producer)
        producersVersion += 1
        if producer.kind == .audio {
            // Audio reaches subscribers through their speaker slots, filled packet by packet.
            producer.sinks = [.speakers(speakers)]
            return []
        }
        var changed: [Consumer] = []
        for transport in transports.values where transport.participantID != producer.participantID {
            switch transport.role {
            case .whep:
                for consumer in transport.consumers where consumer.canConsume(producer) { consumer.attach(to: producer, now: now) }
            case .participant where transport.videoSelection != nil:
                changed += reconcileSelectedVideos(of: transport, now: now)
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
        var emptiedSlots: [Consumer] = []
        for producer in removed {
            if producer.kind == .audio { emptiedSlots += speakers.remove(producer) }
            orphaned += producer.consumers
            producers.removeAll { $0 === producer }
            switch producer.origin {
            case .publisher(let transport): transport.object.removeProducer(producer)
            case .pipe(let link): link.object.removePiped(producer)
            }
        }
        producersVersion += 1
        var changed = emptiedSlots.filter { $0.transport.role == .participant }
        var selecting: [WebRtcTransport] = []
        for consumer in orphaned where consumer.transport.router === self {
            if consumer.transport.videoSelection != nil {
                // Its slot frees; the selection decides what, if anything, takes it.
                if !selecting.contains(where: { $0 === consumer.transport }) { selecting.append(consumer.transport) }
                consumer.detach()
                changed.append(consumer)
                continue
            }
            let next = consumer.transport.role == .whep ? latestProducer(for: consumer) : unassignedProducer(for: consumer)
            if let next { consumer.attach(to: next, now: now) }
            if consumer.transport.role == .participant { changed.append(consumer) }
        }
        for transport in selecting { changed += reconcileSelectedVideos(of: transport, now: now) }
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
