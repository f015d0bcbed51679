import ParleyBase

/// The loudest audio sources of a meeting, updated on every packet from its audio level (RFC 6464),
/// in the manner of Jitsi's loudest list: energy 127 − level, an entry not heard for `expiry`
/// counting as silent. Unlike an averaging interval (or Jitsi's smoothing of every change), the
/// packet that makes someone loud is itself ranked loud: energy rises at once and falls smoothed
/// (α = ½ per packet), a source heard again after `expiry` restarts at that packet's energy, and a
/// newcomer takes the weakest place at once when it is louder by `margin` (or that place went
/// quiet). Fixed capacity, no allocation after the first fill.
struct LoudestSpeakers<Key: Equatable> {
    struct Entry: Equatable where Key: Equatable {
        var key: Key
        /// Who the source belongs to: a subscriber's own sources are not ranked for it.
        var owner: Int
        var energy: Double
        var lastHeard: Nanoseconds
    }

    /// Below this energy (about −50 dBov, as the active-speaker check) nobody is speaking.
    static var speechThreshold: Double { 77 }
    /// How much louder a newcomer must be than the weakest listed source to take its place.
    static var margin: Double { 5 }
    static var expiry: Nanoseconds { .milliseconds(150) }

    let capacity: Int
    /// Loudest first (an entry not heard for `expiry` ranks as silent).
    private(set) var entries: [Entry] = []

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        entries.reserveCapacity(self.capacity)
    }

    static func energy(ofLevel level: UInt8?) -> Double {
        level.map { Double(127 - Int($0 & 0x7F)) } ?? 0
    }

    func effectiveEnergy(_ entry: Entry, now: Nanoseconds) -> Double {
        now &- entry.lastHeard > Self.expiry ? 0 : entry.energy
    }

    /// Ranks one packet of `key`; true when the source is listed afterwards (its packet may
    /// matter to somebody), false when it is not among the loudest (it costs nothing downstream).
    mutating func hear(_ key: Key, owner: Int, level: UInt8?, now: Nanoseconds) -> Bool {
        let energy = Self.energy(ofLevel: level)
        if let index = entries.firstIndex(where: { $0.key == key }) {
            let resumed = now &- entries[index].lastHeard > Self.expiry
            // Fast attack, smoothed release: a voice rising is loud on its first loud packet;
            // falling, it fades over a few packets (a pause between words keeps its place).
            entries[index].energy = resumed ? energy : max(energy, 0.5 * entries[index].energy + 0.5 * energy)
            entries[index].lastHeard = now
        } else if entries.count < capacity {
            entries.append(Entry(key: key, owner: owner, energy: energy, lastHeard: now))
        } else {
            // The weakest place as of now, found by a scan: most packets of a big meeting are of
            // sources that stay out, and they need no sort.
            var weakest = entries.count - 1, weakestEnergy = effectiveEnergy(entries[weakest], now: now)
            for index in entries.indices.dropLast() where effectiveEnergy(entries[index], now: now) < weakestEnergy {
                weakest = index
                weakestEnergy = effectiveEnergy(entries[index], now: now)
            }
            guard weakestEnergy == 0 && now &- entries[weakest].lastHeard > Self.expiry
                    || energy >= Self.speechThreshold && energy >= weakestEnergy + Self.margin else { return false }
            entries[weakest] = Entry(key: key, owner: owner, energy: energy, lastHeard: now)
        }
        sort(now: now)
        return true
    }

    /// Forgets a source (its producer closed).
    mutating func remove(_ key: Key) {
        entries.removeAll { $0.key == key }
    }

    /// Where `key` ranks among the sources not owned by `owner` (0 loudest), or nil if unlisted.
    func rank(of key: Key, excludingOwner owner: Int) -> Int? {
        var rank = 0
        for entry in entries where entry.owner != owner {
            if entry.key == key { return rank }
            rank += 1
        }
        return nil
    }

    func entry(_ key: Key) -> Entry? { entries.first { $0.key == key } }

    /// Insertion sort by energy as of `now`: a handful of entries, nearly sorted already.
    private mutating func sort(now: Nanoseconds) {
        guard entries.count > 1 else { return }
        for index in 1..<entries.count {
            var position = index
            let moving = entries[index], movingEnergy = effectiveEnergy(moving, now: now)
            while position > 0, effectiveEnergy(entries[position - 1], now: now) < movingEnergy {
                entries[position] = entries[position - 1]
                position -= 1
            }
            entries[position] = moving
        }
    }
}
