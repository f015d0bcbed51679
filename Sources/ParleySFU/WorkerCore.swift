import ParleyBase
import ParleyMediaAPI
import ParleyWire
import ParleyTransport
#if canImport(Glibc)
import Glibc
#endif

/// The protocol core of one worker, free of I/O: demultiplexes datagrams to transports (RFC 7983,
/// then STUN USERNAME, then remote address), runs the timers and answers offers. The `Worker`
/// drives it from its socket; tests drive it directly.
public final class WorkerCore {
    public let announceAddress: String
    public let port: UInt16
    /// Whether the worker also takes ICE-TCP connections on `port` (a passive TCP candidate).
    public let iceTCP: Bool
    let dtlsContext: DTLSContext
    var routers: [String: Router] = [:]
    var transports: [String: WebRtcTransport] = [:]
    var byUfrag: [String: WebRtcTransport] = [:]
    var byAddress: [PeerAddress: WebRtcTransport] = [:]
    /// Pipes to other workers and SFUs, by the far worker's address (the only one each accepts).
    var pipes: [PeerAddress: PipeTrunk] = [:]
    /// Host controls: per meeting, per participant, what the SFU must not forward.
    var blockedMedia: [String: [String: Set<BlockedMedia>]] = [:]
    public var counters = PacketCounters()
    /// The wall clock of sender reports, which the loop keeps set (the core reads no clock).
    public var ntpClock: NTPClock
    var nextLayerCheckAt: Nanoseconds = 0
    let emit: (SFUEvent) -> Void
    /// The loop thread driving this core, once one does: the transports' OpenSSL and libsrtp2
    /// objects are made, used and freed on it alone (checked in debug builds).
    private var ownerThread: pthread_t?

    public init(announceAddress: String, port: UInt16, iceTCP: Bool = false, dtlsContext: DTLSContext, ntpClock: NTPClock,
                events: @escaping (SFUEvent) -> Void) {
        self.announceAddress = announceAddress
        self.ntpClock = ntpClock
        self.port = port
        self.iceTCP = iceTCP
        self.dtlsContext = dtlsContext
        self.emit = events
    }

    /// A core dropped with transports still open (tests; a worker that never ran) breaks the
    /// producer ⇄ consumer references, which would otherwise keep them, and their retransmission
    /// buffers, alive for ever. A running worker closes every transport before this.
    deinit {
        for transport in transports.values {
            for producer in transport.producers { producer.close() }
        }
        for router in routers.values {
            for producer in router.producers { producer.close() }
        }
    }

    public var transportCount: Int { transports.count }
    public var meetingCount: Int { routers.count }
    public var meetingIDs: [String] { Array(routers.keys) }
    public var producerCount: Int { routers.values.reduce(0) { $0 + $1.producers.count } }

    /// Binds this core to the calling thread: from now on only it may drive the core.
    public func adoptCurrentThread() { ownerThread = pthread_self() }

    /// Traps in debug builds when the core is used off its loop thread.
    @inline(__always)
    func assertOnOwnerThread() {
        assert(ownerThread.map { pthread_equal($0, pthread_self()) != 0 } ?? true, "WorkerCore used off its worker thread")
    }

    /// Handles one datagram; `buffer` may be decrypted in place.
    public func receive(_ buffer: UnsafeMutableRawBufferPointer, length: Int, from address: PeerAddress, now: Nanoseconds, output: any DatagramOutput) {
        assertOnOwnerThread()
        counters.datagramsReceived += 1
        let packet = UnsafeRawBufferPointer(rebasing: buffer[0..<length])
        let transport: WebRtcTransport
        if PacketClass(packet) == .stun {
            guard let found = transportForSTUN(packet) else {
                counters.dropped[.unknownSender] += 1
                return
            }
            transport = found
        } else {
            guard let found = byAddress[address] else {
                if let trunk = pipes[address] {
                    receivePipe(trunk, buffer, length: length, now: now, output: output)
                } else {
                    counters.dropped[.unknownSender] += 1
                }
                return
            }
            transport = found
        }
        switch transport.secure.receive(buffer, length: length, from: address, now: now) {
        case .rtp(let plainLength):
            transport.handleRTP(buffer, length: plainLength, now: now, output: output, counters: &counters)
        case .rtcp(let plainLength):
            transport.handleRTCP(buffer, length: plainLength, now: now, output: output, counters: &counters)
        case .control:
            transport.flushOutbox(output: output)
            if let selected = transport.remoteAddress, selected != transport.registeredAddress {
                let moved = transport.registeredAddress != nil
                if let old = transport.registeredAddress, byAddress[old] === transport { byAddress[old] = nil }
                byAddress[selected] = transport
                transport.registeredAddress = selected
                if moved { transport.pathChanged(now: now, output: output, counters: &counters) }
            }
            checkState(transport, now: now, output: output)
        case .dropped(let reason):
            counters.dropped[Self.dropReason(reason)] += 1
        }
    }

    static func dropReason(_ reason: SecureTransport.DropReason) -> DropReason {
        switch reason {
        case .stun(.notSTUN), .unknown: .malformed
        case .stun, .srtp: .unauthenticated
        case .dtlsBeforeICE: .dtlsBeforeICE
        case .mediaBeforeSRTP: .mediaBeforeSRTP
        case .wrongAddress: .wrongAddress
        }
    }

    private func transportForSTUN(_ packet: UnsafeRawBufferPointer) -> WebRtcTransport? {
        guard let message = try? STUNMessage(parsing: packet), let username = message.username,
              let ufrag = ICELiteAgent.localUfrag(ofUsername: username) else { return nil }
        return byUfrag[String(ufrag)]
    }

    private func checkState(_ transport: WebRtcTransport, now: Nanoseconds, output: any DatagramOutput) {
        switch transport.secure.state {
        case .connected where !transport.connectedReported:
            transport.connectedReported = true
            emit(.transportConnected(meetingID: transport.meetingID, participantID: transport.participantID, transportID: transport.id))
        case .failed(let reason):
            closeTransport(transport, reason: reason, now: now, output: output)
        case .closed:
            closeTransport(transport, reason: "peer closed DTLS", now: now, output: output)
        default:
            break
        }
    }

    /// Runs every transport's timers; call every few tens of milliseconds.
    public func tick(now: Nanoseconds, output: any DatagramOutput) {
        assertOnOwnerThread()
        // Closing changes `transports`, so the failed ones are closed after the walk; the list is
        // made only when there is one (this runs 50 times a second).
        var ended: [WebRtcTransport]?
        for transport in transports.values {
            transport.tick(now: now, ntpClock: ntpClock, output: output, counters: &counters)
            switch transport.secure.state {
            case .failed, .closed: ended = (ended ?? []) + [transport]
            default: checkState(transport, now: now, output: output)
            }
        }
        for transport in ended ?? [] { checkState(transport, now: now, output: output) }
        let layerCheck = now >= nextLayerCheckAt
        if layerCheck {
            nextLayerCheckAt = now + Self.layerCheckInterval
            checkLayers(now: now)
            checkSpeakers()
            reportSpeakerSlotChanges()
        }
        if !pipes.isEmpty { tickPipes(now: now, layerCheck: layerCheck, output: output) }
    }

    /// Tells signaling which speaker each participant's audio slots carry now: at most one
    /// update per subscriber per layer check, however often its slots changed hands.
    private func reportSpeakerSlotChanges() {
        for router in routers.values {
            let changed = router.speakers.takeChangedSlots()
            guard !changed.isEmpty else { continue }
            for update in Self.updates(for: changed.filter { $0.transport.role == .participant }) {
                emit(.assignmentsChanged(meetingID: router.meetingID, update: update))
            }
        }
    }

    /// Closes a transport: its producers stop, their consumers elsewhere look for another source.
    public func closeTransport(id: String, reason: String, now: Nanoseconds, output: any DatagramOutput) {
        assertOnOwnerThread()
        guard let transport = transports[id] else { return }
        closeTransport(transport, reason: reason, now: now, output: output)
    }

    /// Closes every transport of a participant in a meeting.
    public func closeParticipant(meetingID: String, participantID: String, now: Nanoseconds, output: any DatagramOutput) {
        assertOnOwnerThread()
        blockedMedia[meetingID]?[participantID] = nil
        if blockedMedia[meetingID]?.isEmpty == true { blockedMedia[meetingID] = nil }
        for transport in transports.values where transport.meetingID == meetingID && transport.participantID == participantID {
            closeTransport(transport, reason: "participant left", now: now, output: output)
        }
    }

    /// Closes every transport (the SFU is stopping): each peer is sent a DTLS close_notify, and
    /// the transports' C objects are freed now, by this call.
    public func closeAll(reason: String, now: Nanoseconds, output: any DatagramOutput) {
        assertOnOwnerThread()
        for transport in Array(transports.values) { closeTransport(transport, reason: reason, now: now, output: output) }
        for (remote, trunk) in pipes {
            for meetingID in trunk.links.keys { closePipe(meetingID: meetingID, remote: remote, now: now, output: output) }
        }
        blockedMedia.removeAll()
    }

    private func closeTransport(_ transport: WebRtcTransport, reason: String, now: Nanoseconds, output: any DatagramOutput) {
        guard transports[transport.id] != nil else { return }
        transports[transport.id] = nil
        for ufrag in transport.registeredUfrags where byUfrag[ufrag] === transport { byUfrag[ufrag] = nil }
        if let address = transport.registeredAddress, byAddress[address] === transport { byAddress[address] = nil }
        transport.secure.close()
        transport.flushOutbox(output: output)
        let router = transport.router
        for consumer in transport.consumers { transport.removeConsumer(consumer) }
        router.updateSpeakerSlots(of: transport)
        let changed = router.producersRemoved(transport.producers, now: now)
        router.transports[transport.id] = nil
        if router.isEmpty { routers[router.meetingID] = nil }
        emit(.transportClosed(meetingID: transport.meetingID, participantID: transport.participantID, transportID: transport.id, reason: reason))
        for update in Self.updates(for: changed.filter { $0.transport !== transport }) {
            emit(.assignmentsChanged(meetingID: transport.meetingID, update: update))
        }
    }
}

extension WorkerCore {
    /// What this worker carries of a meeting, for operators; nil when it carries none of it.
    public func meetingStatus(meetingID: String, node: String, worker: Int) -> RouterStatus? {
        assertOnOwnerThread()
        guard let router = routers[meetingID] else { return nil }
        let transports = router.transports.values.sorted { $0.id < $1.id }.map { transport in
            TransportStatus(
                id: transport.id, participantID: transport.participantID, role: transport.role, connected: transport.isConnected,
                estimatedBitrate: transport.estimator.estimate,
                producers: transport.producers.map { producer in
                    ProducerStatus(id: producer.id, kind: producer.kind, source: producer.source, blocked: producer.blocked,
                                   layers: producer.encodings.map { encoding in
                                       .init(rid: encoding.rid, bitrate: encoding.bitrate, packetsReceived: Int(encoding.statistics.received),
                                             packetsLost: encoding.statistics.cumulativeLost, width: encoding.width, height: encoding.height)
                                   })
                },
                consumers: transport.consumers.map { consumer in
                    ConsumerStatus(mid: consumer.mid, kind: consumer.kind, producerID: consumer.producer?.id, participantID: consumer.producer?.participantID,
                                   layer: consumer.currentLayer, packetsSent: Int(consumer.packetsSent), pausedForBandwidth: consumer.pausedForBandwidth)
                })
        }
        return RouterStatus(node: node, worker: worker, port: port, transports: transports, pipes: pipeStatus(of: router))
    }
}
