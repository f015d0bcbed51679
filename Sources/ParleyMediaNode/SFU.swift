import Foundation
import Logging
import ParleyBase
import ParleyMediaAPI
import ParleySFU
import ParleyTransport
import ParleyWire
import Synchronization

/// Media-plane settings, from `parley serve` flags.
public struct SFUConfiguration: Sendable {
    /// Address the UDP sockets bind to; empty means every address.
    public var udpHost: String
    /// The first worker's port; worker i uses `udpPort + i`. 0 picks free ports (tests).
    public var udpPort: UInt16
    /// The address put in ICE candidates.
    public var announceAddress: String
    public var workers: Int
    /// Passive ICE-TCP candidates (RFC 6544) on the same port numbers, for clients whose network
    /// blocks UDP.
    public var iceTCP: Bool
    /// Participants of one meeting on one worker before the meeting spreads to another worker
    /// (piped to the first), so every core of the box serves one big meeting.
    public var workerCapacity: Int

    public init(udpHost: String = "", udpPort: UInt16 = 40000, announceAddress: String = "127.0.0.1", workers: Int = ProcessInfo.processInfo.activeProcessorCount,
                iceTCP: Bool = true, workerCapacity: Int = 100) {
        self.udpHost = udpHost; self.udpPort = udpPort; self.announceAddress = announceAddress; self.workers = max(1, workers); self.iceTCP = iceTCP
        self.workerCapacity = max(1, workerCapacity)
    }

    /// Where workers reach each other's sockets (pipes between workers): the bound address, or
    /// loopback when the sockets take every address.
    var pipeHost: String {
        switch udpHost {
        case "", "0.0.0.0": "127.0.0.1"
        case "::", "[::]": "::1"
        default: udpHost
        }
    }
}

/// A pipe between SFUs that cannot be set up as asked.
public struct PipeSetupError: Error, CustomStringConvertible {
    public var description: String
}

/// The SFU role: its workers, which meeting lives on which worker, and the events they report.
public final class SFU: Sendable {
    public let workers: [Worker]
    public let events: AsyncStream<SFUEvent>
    private let continuation: AsyncStream<SFUEvent>.Continuation
    private let logger: Logger
    private let dtlsContext: DTLSContext
    private let placement: Mutex<WorkerPlacement>
    /// The pipe keys between each pair of workers (lower index first), made once.
    private let pipeKeys = Mutex<[Pair: (lower: [UInt8], higher: [UInt8])]>([:])
    private let pipeHost: String

    struct Pair: Hashable { let lower: Int, higher: Int }

    public init(configuration: SFUConfiguration, logger: Logger) throws {
        let (events, continuation) = AsyncStream<SFUEvent>.makeStream()
        self.events = events
        self.continuation = continuation
        self.logger = logger
        self.pipeHost = configuration.pipeHost
        let context = try DTLSContext(certificate: DTLSCertificate(commonName: "parley-sfu"))
        let placement = Mutex(WorkerPlacement(workers: configuration.workers, capacity: configuration.workerCapacity))
        // Filled once the workers exist; a worker's transport closing may end its part of a meeting.
        let closedTransports = Mutex<(@Sendable (String) -> Void)?>(nil)
        var workers: [Worker] = []
        for index in 0..<configuration.workers {
            let port = configuration.udpPort == 0 ? 0 : configuration.udpPort + UInt16(index)
            workers.append(try Worker(index: index, host: configuration.udpHost, port: port, announceAddress: configuration.announceAddress,
                                      iceTCP: configuration.iceTCP, dtlsContext: context, logger: logger, events: { event in
                                          if case .transportClosed(_, _, let transportID, _) = event { closedTransports.withLock { $0 }?(transportID) }
                                          continuation.yield(event)
                                      }))
        }
        self.workers = workers
        self.dtlsContext = context
        self.placement = placement
        closedTransports.withLock { $0 = { [weak self] transportID in self?.transportClosed(transportID) } }
    }

    /// A transport closed (by its worker, or asked to): when the meeting has nobody left on that
    /// worker, its pipes between that worker and the others end. The meeting's home worker is its
    /// hub (it relays between sibling workers and other SFUs): it keeps its pipes until the
    /// meeting has left every worker.
    private func transportClosed(_ transportID: String) {
        guard let (meeting, worker) = placement.withLock({ $0.closed(transportID: transportID) }) else { return }
        let (others, home) = placement.withLock { ($0.workers(of: meeting), $0.homeWorker(of: meeting)) }
        // Pipes to other SFUs are the cascade's to end (a meeting may be empty here for a moment).
        if others.isEmpty {
            for index in Set([worker, home]) {
                workers[index].execute { core, output in
                    core.closePipe(meetingID: meeting, remote: nil, reach: .sameSFU, now: MonotonicClock.now(), output: output)
                }
            }
            return
        }
        guard worker != home else { return }
        workers[worker].execute { core, output in
            core.closePipe(meetingID: meeting, remote: nil, reach: .sameSFU, now: MonotonicClock.now(), output: output)
        }
        guard let remote = PeerAddress(host: pipeHost, port: workers[worker].port) else { return }
        for other in Set(others + [home]) {
            workers[other].execute { core, output in core.closePipe(meetingID: meeting, remote: remote, now: MonotonicClock.now(), output: output) }
        }
    }

    /// DTLS endpoints (one `SSL` each) of this SFU's transports still alive: 0 once `stop` returns.
    public var liveDTLSEndpoints: Int { dtlsContext.liveEndpoints }

    public func start() {
        for worker in workers { worker.start() }
        logger.info("SFU listening", metadata: ["udp-ports": "\(workers.map(\.port))", "ice-tcp": "\(workers.first?.iceTCP ?? false)"])
    }

    /// Stops every worker and waits for their threads: when this returns, every transport has
    /// been closed and freed on its own worker's thread.
    public func stop() {
        for worker in workers { worker.stop() }
        continuation.finish()
    }

    /// The worker a meeting starts on: a stable hash of its id. A meeting that outgrows it
    /// (`workerCapacity`) spreads to others, piped together.
    public func worker(for meetingID: String) -> Worker {
        workers[placement.withLock { $0.homeWorker(of: meetingID) }]
    }

    /// The workers carrying a meeting now (its home worker when it has no transport yet).
    private func workers(of meetingID: String) -> [Worker] {
        let indices = placement.withLock { $0.workers(of: meetingID) }
        return indices.isEmpty ? [worker(for: meetingID)] : indices.map { workers[$0] }
    }

    public func negotiate(_ request: NegotiationRequest) async throws -> NegotiationResult {
        let (index, reservation, carriers, home) = placement.withLock { placement in
            let carriers = placement.workers(of: request.meetingID)
            let (index, reservation) = placement.reserve(meetingID: request.meetingID, participantID: request.participantID, transportID: request.transportID)
            return (index, reservation, carriers, placement.homeWorker(of: request.meetingID))
        }
        do {
            if !carriers.isEmpty, !carriers.contains(index) {
                // A new worker for the meeting: piped to every worker carrying it, and to its hub.
                for other in Set(carriers + [home]) where other != index {
                    try await openPipe(meetingID: request.meetingID, media: request.media, between: index, and: other)
                }
            }
            let result = try await workers[index].submit { (core, _) throws(NegotiationError) in
                try core.negotiate(request, now: MonotonicClock.now())
            }
            if let reservation { placement.withLock { $0.settle(reservation, transportID: result.transportID) } }
            return result
        } catch {
            if let reservation { placement.withLock { $0.settle(reservation, transportID: nil) } }
            throw error
        }
    }

    /// Joins two workers' parts of a meeting by a pipe over loopback UDP: the same pipe as
    /// between SFU nodes, its keys made here. Both sides are set up before media flows.
    private func openPipe(meetingID: String, media: MeetingMediaSettings, between first: Int, and second: Int) async throws {
        let pair = Pair(lower: min(first, second), higher: max(first, second))
        let keys = pipeKeys.withLock { keys in
            if let existing = keys[pair] { return existing }
            let made = (lower: Self.randomKey(), higher: Self.randomKey())
            keys[pair] = made
            return made
        }
        let home = placement.withLock { $0.homeWorker(of: meetingID) }
        for (index, other) in [(pair.lower, pair.higher), (pair.higher, pair.lower)] {
            guard let remote = PeerAddress(host: pipeHost, port: workers[other].port) else {
                throw WorkerStartError(description: "no pipe address for worker \(other) (\(pipeHost))")
            }
            let (send, receive) = index == pair.lower ? (keys.lower, keys.higher) : (keys.higher, keys.lower)
            try await workers[index].submit { (core, output) throws(SRTPError) in
                try core.openPipe(meetingID: meetingID, media: media, remote: remote, reach: .sameSFU, relay: index == home ? .otherReach : .none, sendKey: send,
                                  receiveKey: receive, now: MonotonicClock.now(), output: output)
            }
        }
        logger.info("meeting spread over workers", metadata: ["meeting": "\(meetingID)", "workers": "\(pair.lower),\(pair.higher)"])
    }

    // MARK: Pipes to other SFU nodes (each SFU's end is the meeting's home worker, its hub)

    /// Whether a participant has a transport here (a new one replaces it: it takes no new place).
    public func carries(meetingID: String, participantID: String) -> Bool {
        placement.withLock { $0.transports.values.contains { $0.meeting == meetingID && $0.participant == participantID } }
    }

    /// Meetings with a transport on this SFU now.
    public var carriedMeetings: Set<String> { placement.withLock { Set($0.transports.values.map(\.meeting)) } }

    /// Transports on this SFU now (what its capacity counts, with the joins its control API lets
    /// in: those count once, there, not also by the place they hold here).
    public var transportCount: Int { placement.withLock { $0.settledCount } }

    /// The port of a meeting's hub worker on an SFU with `workers` workers (the same hash as here).
    public static func hubPort(of meetingID: String, ports: [Int]) -> Int? {
        guard !ports.isEmpty else { return nil }
        return ports[WorkerPlacement(workers: ports.count, capacity: 1).homeWorker(of: meetingID)]
    }

    /// The far end's offer of a pipe for a meeting (`POST /control/pipes`): this SFU's end is
    /// made on the meeting's hub worker, reusing the pipe to that worker if the keys match.
    public func acceptPipe(_ offer: PipeOffer, address: String) async throws -> PipeAnswer {
        guard let receive = offer.from.keyBytes else { throw PipeSetupError(description: "the pipe key is not base64 of \(PipeEndpoint.keyLength) bytes") }
        guard let remote = PeerAddress(host: offer.from.address, port: offer.from.port) else {
            throw PipeSetupError(description: "the pipe address \(offer.from.address.prefix(64)) is not a numeric IP address")
        }
        let hub = worker(for: offer.meetingID)
        let send = try await hub.submit { (core, output) throws(SRTPError) -> [UInt8] in
            let existing = core.pipeKeys(to: remote)
            let send = existing.flatMap { $0.receive == receive ? $0.send : nil } ?? Self.randomKey()
            try core.openPipe(meetingID: offer.meetingID, media: offer.media, remote: remote, reach: .otherSFU, relay: .otherReach, sendKey: send,
                              receiveKey: receive, now: MonotonicClock.now(), output: output)
            return send
        }
        logger.info("pipe accepted", metadata: ["meeting": "\(offer.meetingID)", "from": "\(offer.fromNode)", "remote": "\(remote)"])
        return PipeAnswer(endpoint: PipeEndpoint(address: address, port: hub.port, key: Data(send).base64EncodedString()))
    }

    /// This SFU's offer of a pipe for a meeting to the worker at `remote` (the key of the pipe
    /// there is, or a new one), and, with the far end's answer, the pipe itself.
    public func pipeOffer(meetingID: String, media: MeetingMediaSettings, to remote: PeerAddress, address: String, node: String) async -> PipeOffer {
        let hub = worker(for: meetingID)
        let found = try? await hub.submit { (core, _) throws(Never) in (core.pipeKeys(to: remote)?.send, core.mediaSettings(of: meetingID)) }
        let key = found?.0 ?? Self.randomKey()
        return PipeOffer(meetingID: meetingID, media: found?.1 ?? media, from: PipeEndpoint(address: address, port: hub.port, key: Data(key).base64EncodedString()),
                         fromNode: node)
    }

    /// `relay`: `.all` on the hub of a star (it passes each spoke's media to the others).
    public func connectPipe(_ offer: PipeOffer, answer: PipeAnswer, relay: PipeRelay = .otherReach) async throws {
        guard let send = offer.from.keyBytes, let receive = answer.endpoint.keyBytes,
              let remote = PeerAddress(host: answer.endpoint.address, port: answer.endpoint.port) else {
            throw PipeSetupError(description: "the pipe answer has no usable address or key")
        }
        try await worker(for: offer.meetingID).submit { (core, output) throws(SRTPError) in
            try core.openPipe(meetingID: offer.meetingID, media: offer.media, remote: remote, reach: .otherSFU, relay: relay, sendKey: send,
                              receiveKey: receive, now: MonotonicClock.now(), output: output)
        }
    }

    /// The other SFUs' workers a meeting is piped to from here.
    public func sfuPipes(of meetingID: String) async -> [PeerAddress] {
        let remotes = try? await worker(for: meetingID).submit { (core, _) throws(Never) in
            core.pipeRemotes(reach: .otherSFU).filter { $0.value.contains(meetingID) }.map(\.key)
        }
        return remotes ?? []
    }

    /// Ends a meeting's pipe to another SFU's worker (nil: to every one).
    public func closeSFUPipe(meetingID: String, remote: PeerAddress?) {
        worker(for: meetingID).execute { core, output in
            for (address, meetings) in core.pipeRemotes(reach: .otherSFU) where meetings.contains(meetingID) && (remote == nil || remote == address) {
                core.closePipe(meetingID: meetingID, remote: address, now: MonotonicClock.now(), output: output)
            }
        }
    }

    private static func randomKey() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<PipeEndpoint.keyLength).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    public func closeTransport(meetingID: String, transportID: String, reason: String) {
        for worker in workers(of: meetingID) {
            worker.execute { core, output in
                core.closeTransport(id: transportID, reason: reason, now: MonotonicClock.now(), output: output)
            }
        }
    }

    /// Every transport ends with `reason` (the node drains): its clients build new peer connections,
    /// which land on other SFUs.
    public func closeAllTransports(reason: String) {
        let transports = placement.withLock { $0.transports.map { (id: $0.key, meeting: $0.value.meeting) } }
        for transport in transports { closeTransport(meetingID: transport.meeting, transportID: transport.id, reason: reason) }
    }

    public func closeParticipant(meetingID: String, participantID: String) {
        for worker in workers(of: meetingID) {
            worker.execute { core, output in
                core.closeParticipant(meetingID: meetingID, participantID: participantID, now: MonotonicClock.now(), output: output)
            }
        }
    }

    /// Host controls, enforced where the media flows: what this participant sends of these kinds
    /// is dropped (on every worker, so a worker the meeting spreads to later knows it too).
    public func setBlockedMedia(meetingID: String, participantID: String, blocked: Set<BlockedMedia>) {
        for worker in workers {
            worker.execute { core, _ in
                core.setBlockedMedia(meetingID: meetingID, participantID: participantID, blocked: blocked)
            }
        }
    }

    /// A subscriber's tile sizes by receiving mid (simulcast layer choice).
    public func setViewport(meetingID: String, participantID: String, sizes: [String: VideoSize]) {
        for worker in workers(of: meetingID) {
            worker.execute { core, _ in
                core.setViewport(meetingID: meetingID, participantID: participantID, sizes: sizes, now: MonotonicClock.now())
            }
        }
    }

    /// A subscriber's gallery page: the videos its slots carry.
    public func selectVideos(meetingID: String, participantID: String, sources: [VideoSource]) {
        for worker in workers(of: meetingID) {
            worker.execute { core, _ in
                core.selectVideos(meetingID: meetingID, participantID: participantID, sources: sources, now: MonotonicClock.now())
            }
        }
    }

    /// A meeting on this SFU, worker by worker; `node` names this SFU in the answer.
    public func meetingStatus(meetingID: String, node: String) async -> MeetingMediaStatus? {
        var routers: [RouterStatus] = []
        for (index, worker) in workers.enumerated() {
            if let status = try? await worker.submit({ (core, _) throws(Never) in core.meetingStatus(meetingID: meetingID, node: node, worker: index) }) {
                routers.append(status)
            }
        }
        return routers.isEmpty ? nil : MeetingMediaStatus(routers: routers)
    }

    public func status() async -> SFUStatus {
        var meetingIDs = Set<String>(), transports = 0, producers = 0, pipes = 0
        var counters = PacketCounters()
        for worker in workers {
            let (m, t, p, c, n) = (try? await worker.submit { (core, _) throws(Never) in
                (core.meetingIDs, core.transportCount, core.producerCount, core.counters, core.pipeCount)
            }) ?? ([], 0, 0, PacketCounters(), 0)
            meetingIDs.formUnion(m); transports += t; producers += p; counters = counters + c; pipes += n
        }
        var status = SFUStatus(workers: workers.count, ports: workers.map(\.port), meetings: meetingIDs.count, transports: transports,
                               producers: producers, counters: counters.dictionary)
        status.meetingIDs = meetingIDs.sorted()
        status.pipes = pipes
        status.liveCObjects = ["dtls": LiveCObjects.dtls, "srtp": LiveCObjects.srtp]
        return status
    }
}
