import ParleyBase
import ParleyMediaAPI

/// A meeting's audio on one Router: every audio Producer has this as its one sink. Each packet is
/// ranked (`LoudestSpeakers`); a source among the loudest goes to each subscriber's speaker slots
/// (a fixed set of audio Consumers per subscriber, stable mid and SSRC), taking a slot that is
/// empty or whose holder is no longer among that subscriber's loudest others. A subscriber never
/// gets its own audio, and a source not among the loudest is sent to nobody.
final class SpeakerFanout {
    /// One subscriber's speaker slots.
    final class Subscriber {
        unowned let transport: WebRtcTransport
        let owner: Int
        var slots: [Consumer]
        init(transport: WebRtcTransport, owner: Int, slots: [Consumer]) {
            self.transport = transport; self.owner = owner; self.slots = slots
        }
    }

    private(set) var loudest: LoudestSpeakers<ObjectIdentifier>
    private(set) var subscribers: [Subscriber] = []
    /// Slots that changed hands since signaling was last told (sent with the layer check).
    private(set) var changedSlots: [Consumer] = []

    init(speakers: Int) {
        // One more than a subscriber hears: a subscriber who is among the loudest itself still
        // hears `speakers` others.
        loudest = LoudestSpeakers(capacity: speakers + 1)
    }

    /// Sets (or replaces) a transport's speaker slots; no slots removes it.
    func setSlots(_ slots: [Consumer], of transport: WebRtcTransport, owner: Int) {
        if let existing = subscribers.first(where: { $0.transport === transport }) {
            for slot in existing.slots where !slots.contains(where: { $0 === slot }) {
                slot.detach()
                changedSlots.removeAll { $0 === slot }
            }
            existing.slots = slots
            if slots.isEmpty { subscribers.removeAll { $0 === existing } }
        } else if !slots.isEmpty {
            subscribers.append(Subscriber(transport: transport, owner: owner, slots: slots))
        }
    }

    /// A producer closed: it leaves the ranking and every slot it held (now empty, until the
    /// next loud packet of someone else). Returns the slots that changed.
    func remove(_ producer: Producer) -> [Consumer] {
        loudest.remove(ObjectIdentifier(producer))
        var emptied: [Consumer] = []
        for subscriber in subscribers {
            for slot in subscriber.slots where slot.producer === producer {
                slot.detach()
                emptied.append(slot)
            }
        }
        return emptied
    }

    /// Whether `producer` is among the loudest now (its last packet was ranked in): what a pipe
    /// carries of the audio to the meeting's other workers and SFUs.
    func isListed(_ producer: Producer) -> Bool { loudest.entry(ObjectIdentifier(producer)) != nil }

    /// The slots changed since the last call, for one `assignments` update per subscriber.
    func takeChangedSlots() -> [Consumer] {
        defer { changedSlots.removeAll(keepingCapacity: true) }
        return changedSlots
    }

    /// Ranks one packet and forwards it to the subscribers it is among the loudest for.
    func forward(_ packet: IncomingPacket, of producer: Producer, owner: Int, now: Nanoseconds, output: any DatagramOutput,
                 counters: inout PacketCounters) {
        let key = ObjectIdentifier(producer)
        guard loudest.hear(key, owner: owner, level: packet.audioLevel, now: now) else {
            counters.audioNotLoudest += 1
            return
        }
        // Just heard: its energy is what the ranking holds, the same for every subscriber.
        let energy = loudest.entry(key)?.energy ?? 0
        for subscriber in subscribers where subscriber.owner != owner {
            guard let slot = slot(for: producer, key: key, energy: energy, in: subscriber, now: now, counters: &counters) else { continue }
            if slot.forward(packet, now: now, output: output, counters: &counters) { counters.rtpForwarded += 1 }
        }
    }

    /// The slot of `subscriber` that carries `producer`'s packet: the one already holding it, or
    /// one it takes over, or nil when the subscriber's slots all hold sources as loud.
    private func slot(for producer: Producer, key: ObjectIdentifier, energy: Double, in subscriber: Subscriber, now: Nanoseconds,
                      counters: inout PacketCounters) -> Consumer? {
        var empty: Consumer?
        for slot in subscriber.slots {
            if slot.producer === producer { return slot }
            if slot.producer == nil, empty == nil, slot.canConsume(producer) { empty = slot }
        }
        let target: Consumer
        if let empty {
            target = empty
        } else {
            guard let rank = loudest.rank(of: key, excludingOwner: subscriber.owner), rank < subscriber.slots.count,
                  let evicted = evictable(in: subscriber, energy: energy, now: now) else { return nil }
            target = evicted
        }
        let switched = target.producer != nil
        guard target.takeSpeakerSlot(for: producer, now: now) else { return nil }
        if switched { counters.speakerSwitches += 1 }
        changedSlots.append(target)
        return target
    }

    /// The slot whose holder gives way to a source of `energy`: a holder no longer listed, or ranked beyond the
    /// subscriber's slots and clearly quieter (hysteresis: two voices of about the same loudness
    /// do not take a slot from each other packet by packet).
    private func evictable(in subscriber: Subscriber, energy: Double, now: Nanoseconds) -> Consumer? {
        var quietest: (slot: Consumer, energy: Double)?
        for slot in subscriber.slots {
            guard let holder = slot.producer else { continue }
            let holderKey = ObjectIdentifier(holder)
            guard let holderRank = loudest.rank(of: holderKey, excludingOwner: subscriber.owner) else { return slot }
            guard holderRank >= subscriber.slots.count else { continue }
            let holderEnergy = loudest.entry(holderKey).map { loudest.effectiveEnergy($0, now: now) } ?? 0
            if holderEnergy + LoudestSpeakers<ObjectIdentifier>.margin <= energy || holderEnergy == 0,
               holderEnergy < quietest?.energy ?? .infinity {
                quietest = (slot, holderEnergy)
            }
        }
        return quietest?.slot
    }
}
