import ParleyBase

/// Something with an address on a `SimulatedNetwork`: the SFU's worker core, a test peer, a load
/// peer. The network hands it datagrams and the time; it hands back what it sent.
public protocol NetworkEndpoint: AnyObject {
    var address: PeerAddress { get }
    /// A datagram arriving at `now`.
    func receive(_ datagram: [UInt8], from sender: PeerAddress, now: Nanoseconds)
    /// Time has come to `now`: run timers.
    func tick(now: Nanoseconds)
    /// What it sent since last asked, each datagram with its destination.
    func takeSent() -> [(bytes: [UInt8], to: PeerAddress)]
}

/// How a link treats the datagrams it carries. Only datagrams `applies` selects (say, RTP) are
/// lost, reordered or delayed; the others pass at once, so handshakes stay quick unless asked.
public struct LinkConditions {
    /// Every n-th selected datagram is lost (0: none).
    public var dropEvery = 0
    /// A share of selected datagrams lost at random (seeded, so a run repeats).
    public var lossRate = 0.0
    /// One-way delay of each selected datagram.
    public var delay: Nanoseconds = 0
    /// Bits per second the link carries; datagrams queue behind each other (nil: no limit).
    public var rate: Int?
    /// Every n-th selected datagram is held back behind the next one (0: never).
    public var reorderEvery = 0
    public var applies: (_ datagram: [UInt8]) -> Bool = { _ in true }

    public init(dropEvery: Int = 0, lossRate: Double = 0, delay: Nanoseconds = 0, rate: Int? = nil, reorderEvery: Int = 0,
                applies: @escaping (_ datagram: [UInt8]) -> Bool = { _ in true }) {
        self.dropEvery = dropEvery; self.lossRate = lossRate; self.delay = delay; self.rate = rate; self.reorderEvery = reorderEvery
        self.applies = applies
    }

    /// A link that loses, delays and reorders nothing.
    public static var clean: LinkConditions { LinkConditions() }
}

/// Endpoints on fake addresses and fake time, joined by links with loss, delay, a rate limit and
/// reordering: the one network the SFU's and the load generator's tests run on. Time moves only
/// when the test says; everything is deterministic for a seed.
public final class SimulatedNetwork {
    public private(set) var now: Nanoseconds
    public private(set) var endpoints: [any NetworkEndpoint] = []
    /// What each direction has done: selected datagrams carried and lost.
    public private(set) var carried: [Direction: Int] = [:]
    public private(set) var lost: [Direction: Int] = [:]

    public struct Direction: Hashable, Sendable {
        public var from: PeerAddress
        public var to: PeerAddress
        public init(from: PeerAddress, to: PeerAddress) { self.from = from; self.to = to }
    }

    private var conditions: [Direction: LinkConditions] = [:]
    private var defaultConditions = LinkConditions.clean
    private var inFlight: [(at: Nanoseconds, order: Int, bytes: [UInt8], direction: Direction)] = []
    private var heldBack: [Direction: [UInt8]] = [:]
    private var linkFreeAt: [Direction: Nanoseconds] = [:]
    private var counts: [Direction: Int] = [:]
    private var sequence = 0
    private var random: SeededGenerator

    public init(now: Nanoseconds = .seconds(1000), seed: UInt64 = 1) {
        self.now = now
        random = SeededGenerator(seed: seed)
    }

    public func attach(_ endpoint: any NetworkEndpoint) { endpoints.append(endpoint) }

    /// Conditions from `from` to `to`; nil for either means every address.
    public func setConditions(_ link: LinkConditions, from: PeerAddress? = nil, to: PeerAddress? = nil) {
        if from == nil && to == nil {
            defaultConditions = link
            conditions.removeAll()
            return
        }
        for source in from.map({ [$0] }) ?? endpoints.map(\.address) {
            for destination in to.map({ [$0] }) ?? endpoints.map(\.address) where source != destination {
                conditions[Direction(from: source, to: destination)] = link
            }
        }
    }

    /// Sends `bytes` from `address` (an endpoint, or anyone) over the network.
    public func send(_ bytes: [UInt8], from address: PeerAddress, to destination: PeerAddress) {
        let direction = Direction(from: address, to: destination)
        let link = conditions[direction] ?? defaultConditions
        guard link.applies(bytes) else {
            schedule(bytes, direction, at: now)
            return
        }
        carried[direction, default: 0] += 1
        counts[direction, default: 0] += 1
        let count = counts[direction]!
        if (link.dropEvery > 0 && count % link.dropEvery == 0) || (link.lossRate > 0 && Double.random(in: 0..<1, using: &random) < link.lossRate) {
            lost[direction, default: 0] += 1
            return
        }
        // When its last bit is on the wire: behind what the link is still sending, at its rate.
        var sent = now
        if let rate = link.rate, rate > 0 {
            sent = max(now, linkFreeAt[direction] ?? 0) + UInt64(bytes.count * 8) * 1_000_000_000 / UInt64(rate)
            linkFreeAt[direction] = sent
        }
        if link.reorderEvery > 0, count % link.reorderEvery == 0, heldBack[direction] == nil {
            heldBack[direction] = bytes
            return
        }
        schedule(bytes, direction, at: sent + link.delay)
        if let held = heldBack.removeValue(forKey: direction) { schedule(held, direction, at: sent + link.delay) }
    }

    /// Carries what every endpoint sent and delivers what is due now, until nothing moves.
    public func pump() {
        for _ in 0..<64 {
            var moved = false
            for endpoint in endpoints {
                for (bytes, destination) in endpoint.takeSent() {
                    send(bytes, from: endpoint.address, to: destination)
                    moved = true
                }
            }
            moved = deliverDue() || moved
            if !moved { return }
        }
    }

    /// Moves time on by `duration` in steps of `step`, ticking every endpoint and carrying their
    /// datagrams at each step.
    public func run(for duration: Nanoseconds, step: Nanoseconds = .milliseconds(5)) {
        let end = now + duration
        while now < end {
            now = min(end, now + step)
            for endpoint in endpoints { endpoint.tick(now: now) }
            pump()
        }
    }

    /// Moves time to `time` without ticking anyone (a test that drives timers itself).
    public func setTime(_ time: Nanoseconds) { now = time }

    private func schedule(_ bytes: [UInt8], _ direction: Direction, at time: Nanoseconds) {
        sequence += 1
        inFlight.append((time, sequence, bytes, direction))
    }

    private func deliverDue() -> Bool {
        let due = inFlight.filter { $0.at <= now }.sorted { ($0.at, $0.order) < ($1.at, $1.order) }
        guard !due.isEmpty else { return false }
        inFlight.removeAll { $0.at <= now }
        for datagram in due {
            endpoints.first { $0.address == datagram.direction.to }?.receive(datagram.bytes, from: datagram.direction.from, now: now)
        }
        return true
    }
}
