import Foundation
import Logging
import ParleyBase
import ParleyMediaAPI
import ParleySFU
import ParleyTransport
import ParleyWire

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

    public init(udpHost: String = "", udpPort: UInt16 = 40000, announceAddress: String = "127.0.0.1", workers: Int = ProcessInfo.processInfo.activeProcessorCount,
                iceTCP: Bool = true) {
        self.udpHost = udpHost; self.udpPort = udpPort; self.announceAddress = announceAddress; self.workers = max(1, workers); self.iceTCP = iceTCP
    }
}

/// The SFU role: its workers, which meeting lives on which worker, and the events they report.
public final class SFU: Sendable {
    public let workers: [Worker]
    public let events: AsyncStream<SFUEvent>
    private let continuation: AsyncStream<SFUEvent>.Continuation
    private let logger: Logger
    private let dtlsContext: DTLSContext

    public init(configuration: SFUConfiguration, logger: Logger) throws {
        let (events, continuation) = AsyncStream<SFUEvent>.makeStream()
        self.events = events
        self.continuation = continuation
        self.logger = logger
        let context = try DTLSContext(certificate: DTLSCertificate(commonName: "parley-sfu"))
        var workers: [Worker] = []
        for index in 0..<configuration.workers {
            let port = configuration.udpPort == 0 ? 0 : configuration.udpPort + UInt16(index)
            workers.append(try Worker(index: index, host: configuration.udpHost, port: port, announceAddress: configuration.announceAddress,
                                      iceTCP: configuration.iceTCP, dtlsContext: context, logger: logger, events: { continuation.yield($0) }))
        }
        self.workers = workers
        self.dtlsContext = context
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

    /// The worker a meeting lives on: a stable hash of its id, so every transport of a meeting
    /// shares one loop and one port.
    public func worker(for meetingID: String) -> Worker {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in meetingID.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return workers[Int(hash % UInt64(workers.count))]
    }

    public func negotiate(_ request: NegotiationRequest) async throws -> NegotiationResult {
        try await worker(for: request.meetingID).submit { (core, _) throws(NegotiationError) in
            try core.negotiate(request, now: MonotonicClock.now())
        }
    }

    public func closeTransport(meetingID: String, transportID: String, reason: String) {
        worker(for: meetingID).execute { core, output in
            core.closeTransport(id: transportID, reason: reason, now: MonotonicClock.now(), output: output)
        }
    }

    public func closeParticipant(meetingID: String, participantID: String) {
        worker(for: meetingID).execute { core, output in
            core.closeParticipant(meetingID: meetingID, participantID: participantID, now: MonotonicClock.now(), output: output)
        }
    }

    /// Host controls, enforced where the media flows: what this participant sends of these kinds is dropped.
    public func setBlockedMedia(meetingID: String, participantID: String, blocked: Set<BlockedMedia>) {
        worker(for: meetingID).execute { core, _ in
            core.setBlockedMedia(meetingID: meetingID, participantID: participantID, blocked: blocked)
        }
    }

    /// A subscriber's tile sizes by receiving mid (simulcast layer choice).
    public func setViewport(meetingID: String, participantID: String, sizes: [String: VideoSize]) {
        worker(for: meetingID).execute { core, _ in
            core.setViewport(meetingID: meetingID, participantID: participantID, sizes: sizes, now: MonotonicClock.now())
        }
    }

    /// A subscriber's gallery page: the videos its slots carry.
    public func selectVideos(meetingID: String, participantID: String, sources: [VideoSource]) {
        worker(for: meetingID).execute { core, _ in
            core.selectVideos(meetingID: meetingID, participantID: participantID, sources: sources, now: MonotonicClock.now())
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
        var meetingIDs: [String] = [], transports = 0, producers = 0
        var counters = PacketCounters()
        for worker in workers {
            let (m, t, p, c) = (try? await worker.submit { (core, _) throws(Never) in
                (core.meetingIDs, core.transportCount, core.producerCount, core.counters)
            }) ?? ([], 0, 0, PacketCounters())
            meetingIDs += m; transports += t; producers += p; counters = counters + c
        }
        var status = SFUStatus(workers: workers.count, ports: workers.map(\.port), meetings: meetingIDs.count, transports: transports,
                               producers: producers, counters: counters.dictionary)
        status.meetingIDs = meetingIDs.sorted()
        status.liveCObjects = ["dtls": LiveCObjects.dtls, "srtp": LiveCObjects.srtp]
        return status
    }
}
