import ParleyBase
import ParleyMediaAPI
import ParleyWire
import ParleyTransport

/// One peer connection on the SFU (mediasoup's WebRtcTransport): the secure transport plus the
/// Producers and Consumers negotiated on it, and its RTCP.
public final class WebRtcTransport {
    public let id: String
    public let meetingID: String
    public let participantID: String
    /// The participant as a number within its Router: what speaker selection compares per packet.
    let owner: Int
    public let role: TransportRole
    let secure: SecureTransport
    unowned let router: Router
    var registeredAddress: PeerAddress?
    /// The local ICE ufrags this transport is found by (two for a while after an ICE restart).
    var registeredUfrags: [String] = []
    public internal(set) var producers: [Producer] = []
    /// Which producer and encoding each incoming SSRC is (and whether it carries repairs): the
    /// one lookup per received packet.
    var streamBySSRC: [UInt32: StreamRoute] = [:]
    public internal(set) var consumers: [Consumer] = []
    /// The videos the subscriber chose to see (`select-videos`); nil: whatever arrives, in order.
    var videoSelection: [VideoSource]?
    var consumerBySSRC: [UInt32: Consumer] = [:]
    /// The publisher's id for the mid header extension, to learn SSRCs its SDP did not list.
    var midExtensionID: UInt8?
    /// Simulcast publishers name each layer's stream (and its repairs) in header extensions.
    var ridExtensionID: UInt8?
    var repairedRidExtensionID: UInt8?
    /// Publishers number every packet transport-wide; we report arrivals back.
    var transportWideCCExtensionID: UInt8?
    var arrivals = TransportFeedbackRecorder()
    /// Towards the subscriber: where its send streams write and what they sent; and what its
    /// feedback says the path carries.
    let sendPath: SendPath
    var estimator = BandwidthEstimator()
    /// Whether the subscriber sends transport-wide feedback (else REMB, if anything, bounds us).
    var hasTransportFeedback = false
    /// Padding to add (bits per second) to find out whether the path carries what the subscriber's
    /// tiles want, and until when; set by the allocation when the estimate holds video back.
    var probeBitrate = 0
    var probeUntil: Nanoseconds = 0
    var nextProbeAt: Nanoseconds = 0
    private var probeCredit = 0.0
    private var lastProbeTick: Nanoseconds?
    let rtcpSSRC = UInt32.random(in: 1...UInt32.max)
    let cname = RandomToken.make(length: 16)
    var nextReportAt: Nanoseconds = 0
    var connectedReported = false
    private var assignmentVersion = 0
    /// Session version for the o= line of successive answers.
    var answerVersion = 1
    let sessionID = UInt64.random(in: 1...UInt64(Int64.max))

    init(id: String, meetingID: String, participantID: String, role: TransportRole, secure: SecureTransport, router: Router) {
        self.id = id
        self.meetingID = meetingID
        self.participantID = participantID
        self.role = role
        self.secure = secure
        self.sendPath = SendPath(secure: secure)
        self.router = router
        self.owner = router.owner(of: participantID)
    }

    public var isConnected: Bool { secure.isConnected }
    public var remoteAddress: PeerAddress? { secure.remoteAddress }

    func handleRTP(_ buffer: UnsafeMutableRawBufferPointer, length: Int, now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters) {
        let packet = UnsafeRawBufferPointer(rebasing: buffer[0..<length])
        guard let header = try? RTPHeader(parsing: packet) else {
            counters.dropped[.malformed] += 1
            return
        }
        counters.rtpReceived += 1
        if let transportWideCCExtensionID {
            header.forEachExtension(in: packet) { id, offset, length in
                if id == transportWideCCExtensionID, let number = try? TransportWideSequenceExtension(parsing: UnsafeRawBufferPointer(rebasing: packet[offset..<(offset + length)])) {
                    arrivals.record(number.sequence, ssrc: header.ssrc, at: now)
                }
            }
        }
        guard let route = streamBySSRC[header.ssrc] ?? learnSSRC(header, packet: packet) else {
            counters.dropped[.unroutable] += 1
            return
        }
        route.producer.receive(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length]), header: header, layer: route.layer, isRepair: route.isRepair,
                               now: now, output: output, counters: &counters)
    }

    /// Finds the producer of an unsignaled SSRC through the mid header extension (BUNDLE demux),
    /// and its simulcast layer through the rid (or, for repairs, repaired-rid) extension.
    private func learnSSRC(_ header: RTPHeader, packet: UnsafeRawBufferPointer) -> StreamRoute? {
        guard let midExtensionID else { return nil }
        var mid: String?, rid: String?, repairedRid: String?
        header.forEachExtension(in: packet) { id, offset, length in
            let element = UnsafeRawBufferPointer(rebasing: packet[offset..<(offset + length)])
            if id == midExtensionID {
                mid = (try? MidExtension(parsing: element))?.mid
            } else if id == ridExtensionID {
                rid = (try? RidExtension(parsing: element))?.rid
            } else if id == repairedRidExtensionID {
                repairedRid = (try? RidExtension(parsing: element))?.rid
            }
        }
        guard let mid, let producer = producers.first(where: { $0.mid == mid }) else { return nil }
        let index: Int
        if let name = repairedRid ?? rid, let named = producer.encodings.firstIndex(where: { $0.rid == name }) {
            index = named
        } else if !producer.isSimulcast {
            index = 0
        } else {
            return nil
        }
        let isRepair = repairedRid != nil || header.payloadType == producer.rtxPayloadType
        if isRepair {
            guard producer.encodings[index].rtxSSRC == nil else { return nil }
            producer.encodings[index].rtxSSRC = header.ssrc
        } else {
            guard producer.encodings[index].ssrc == nil else { return nil }
            producer.encodings[index].ssrc = header.ssrc
        }
        let route = StreamRoute(producer: producer, layer: index, isRepair: isRepair)
        streamBySSRC[header.ssrc] = route
        return route
    }

    func handleRTCP(_ buffer: UnsafeMutableRawBufferPointer, length: Int, now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters) {
        counters.rtcpReceived += 1
        let packets: [RTCPPacket]
        do {
            packets = try RTCPPacket.parseCompound(UnsafeRawBufferPointer(rebasing: buffer[0..<length]))
        } catch {
            counters.dropped[.malformed] += 1
            return
        }
        for packet in packets {
            switch packet {
            case .senderReport(let report):
                if let route = streamBySSRC[report.ssrc], !route.isRepair {
                    route.producer.encodings[route.layer].statistics.senderReportArrived(report, at: now)
                }
            case .pictureLossIndication(let pli):
                consumerBySSRC[pli.mediaSSRC]?.producer?.requestKeyframe(now: now, output: output, counters: &counters)
            case .fullIntraRequest(let fir):
                for entry in fir.entries {
                    consumerBySSRC[entry.ssrc]?.producer?.requestKeyframe(now: now, output: output, counters: &counters)
                }
            case .nack(let nack):
                consumerBySSRC[nack.mediaSSRC]?.retransmit(nack.lostSequenceNumbers, now: now, output: output, counters: &counters)
            case .transportWideFeedback(let feedback):
                hasTransportFeedback = true
                estimator.update(sendPath.history.results(for: feedback), now: now)
            case .remb(let remb):
                // A subscriber without transport-wide feedback says what it can take.
                if !hasTransportFeedback { estimator.bound(by: Int(clamping: remb.bitrate)) }
            default:
                break
            }
        }
    }

    /// Media now goes to another address (an ICE restart, a NAT rebinding): the bandwidth
    /// estimate starts over, as libwebrtc's does on a route change, without counting what was
    /// lost on the old path. What was lost while the path was down is not worth repairing:
    /// keyframes refresh the videos it receives and the ones it sends.
    func pathChanged(now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters) {
        estimator = BandwidthEstimator()
        sendPath.history.startNewPath()
        probeBitrate = 0
        for consumer in consumers where consumer.kind == .video {
            consumer.producer?.requestKeyframe(now: now, output: output, counters: &counters)
        }
        for producer in producers where producer.kind == .video {
            producer.requestKeyframe(now: now, output: output, counters: &counters)
        }
    }

    /// Padding at `probeBitrate` while a probe runs, spread over the ticks.
    private func sendProbe(now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters) {
        defer { lastProbeTick = now }
        guard probeBitrate > 0, now < probeUntil, let last = lastProbeTick else {
            probeCredit = 0
            return
        }
        probeCredit = min(probeCredit + Double(probeBitrate) * Double(now &- last) / 8e9, 20_000)
        guard let padder = consumers.first(where: { $0.kind == .video && $0.producer != nil }) else { return }
        while probeCredit >= 250 {
            guard let sent = padder.sendPadding(bytes: 250, now: now, output: output, counters: &counters) else { return }
            probeCredit -= Double(sent)
            counters.probePacketsSent += 1
        }
    }

    /// Encrypts and sends an RTCP compound packet to the peer.
    func sendRTCP(_ bytes: [UInt8], output: any DatagramOutput, counters: inout PacketCounters) {
        guard let address = sendPath.address else { return }
        output.sendRTCP(bytes, to: address, counters: &counters) { secure.protectRTCP($0, length: $1, capacity: $2) }
    }

    func flushOutbox(output: any DatagramOutput) {
        for (bytes, address) in secure.outbox { output.send(bytes, to: address) }
        secure.outbox.removeAll(keepingCapacity: true)
    }

    /// Timers: DTLS retransmission, consent, keyframe requests, and RTCP reports once a second.
    func tick(now: Nanoseconds, ntpClock: NTPClock, output: any DatagramOutput, counters: inout PacketCounters) {
        secure.handleTimeout(now: now)
        flushOutbox(output: output)
        guard isConnected else { return }
        for producer in producers {
            producer.pollKeyframeRequest(now: now, output: output, counters: &counters)
            producer.sendNACKs(now: now, output: output, counters: &counters)
        }
        for consumer in consumers where consumer.keyframeOverdue(now: now) {
            consumer.producer?.requestKeyframe(now: now, output: output, counters: &counters)
        }
        sendProbe(now: now, output: output, counters: &counters)
        if let feedback = arrivals.feedback(senderSSRC: rtcpSSRC, now: now) {
            var bytes: [UInt8] = []
            feedback.write(into: &bytes)
            sendRTCP(bytes, output: output, counters: &counters)
            counters.transportFeedbackSent += 1
        }
        guard now >= nextReportAt else { return }
        nextReportAt = now + .seconds(1)
        sendReports(now: now, ntp: ntpClock.ntp(at: now), output: output, counters: &counters)
    }

    private func sendReports(now: Nanoseconds, ntp: UInt64, output: any DatagramOutput, counters: inout PacketCounters) {
        var bytes: [UInt8] = []
        var senderSSRCs: [UInt32] = []
        for consumer in consumers {
            guard let report = consumer.senderReport(now: now, ntp: ntp) else { continue }
            report.write(into: &bytes)
            senderSSRCs.append(consumer.ssrc)
        }
        var blocks: [ReportBlock] = []
        var videoSSRCs: [UInt32] = []
        for producer in producers {
            for index in producer.encodings.indices {
                guard let ssrc = producer.encodings[index].ssrc, producer.encodings[index].statistics.hasData else { continue }
                blocks.append(producer.encodings[index].statistics.reportBlock(ssrc: ssrc, now: now))
                if producer.kind == .video { videoSSRCs.append(ssrc) }
            }
        }
        if !blocks.isEmpty || bytes.isEmpty {
            ReceiverReport(ssrc: rtcpSSRC, reports: Array(blocks.prefix(31))).write(into: &bytes)
        }
        SourceDescription(chunks: [.init(ssrc: rtcpSSRC, cname: cname)] + senderSSRCs.map { .init(ssrc: $0, cname: cname) }).write(into: &bytes)
        if !videoSSRCs.isEmpty {
            // A fixed ceiling lets publishers ramp up to a sharp picture; per-subscriber estimates come later.
            ReceiverEstimatedMaximumBitrate(senderSSRC: rtcpSSRC, bitrate: 2_500_000, ssrcs: videoSSRCs).write(into: &bytes)
        }
        sendRTCP(bytes, output: output, counters: &counters)
    }

    /// Which remote track each receiving mid (of `only`, else all) shows, stamped with a version
    /// that grows with every change, so a client keeps, per mid, the newest it heard of.
    func assignments(only: [Consumer]? = nil) -> (version: Int, list: [MidAssignment]) {
        assignmentVersion += 1
        return (assignmentVersion, (only ?? consumers).map { consumer in
            MidAssignment(mid: consumer.mid, kind: consumer.kind, producerID: consumer.producer?.id,
                          participantID: consumer.producer?.participantID, source: consumer.producer?.source)
        })
    }

    func addConsumer(_ consumer: Consumer) {
        consumers.append(consumer)
        consumerBySSRC[consumer.ssrc] = consumer
        consumerBySSRC[consumer.rtxSSRC] = consumer
    }

    func removeConsumer(_ consumer: Consumer) {
        consumer.detach()
        consumers.removeAll { $0 === consumer }
        consumerBySSRC[consumer.ssrc] = nil
        consumerBySSRC[consumer.rtxSSRC] = nil
    }

    func addProducer(_ producer: Producer) {
        producers.append(producer)
        for (layer, encoding) in producer.encodings.enumerated() {
            if let ssrc = encoding.ssrc { streamBySSRC[ssrc] = StreamRoute(producer: producer, layer: layer, isRepair: false) }
            if let rtx = encoding.rtxSSRC { streamBySSRC[rtx] = StreamRoute(producer: producer, layer: layer, isRepair: true) }
        }
    }

    func removeProducer(_ producer: Producer) {
        producer.close()
        producers.removeAll { $0 === producer }
        streamBySSRC = streamBySSRC.filter { $0.value.producer !== producer }
    }
}

/// Where an incoming SSRC's packets go: its producer, the encoding (layer), and whether it is
/// that encoding's repair stream.
struct StreamRoute {
    let producer: Producer
    let layer: Int
    let isRepair: Bool
}
