import ParleyBase
import ParleyMediaAPI
import ParleyTransport
import ParleyWire

/// A pipe from this worker to one other worker (of this process, or of another SFU node): RTP
/// and RTCP over UDP between the two workers' own ports, protected by SRTP with keys the two
/// sides exchanged through the control plane (AES-128-GCM, one key per direction). One pipe
/// carries every meeting the two workers share (`PipeLink`); its streams are told apart by SSRC.
/// Only its peer's address is accepted: a datagram from elsewhere never reaches it, one that
/// fails SRTP is counted and dropped.
final class PipeTrunk {
    let remote: PeerAddress
    let reach: PipeReach
    let sendKey: [UInt8]
    let receiveKey: [UInt8]
    private let outbound: SRTPSession
    private let inbound: SRTPSession
    let rtcpSSRC = UInt32.random(in: 1...UInt32.max)
    private(set) var links: [String: PipeLink] = [:]
    /// Incoming: the piped producers' layers by SSRC.
    private var streamBySSRC: [UInt32: StreamRoute] = [:]
    /// Outgoing: the sinks' layers by SSRC (NACK, PLI and reports from the far side name them).
    private var sinkBySSRC: [UInt32: (sink: PipeSink, layer: Int)] = [:]
    private(set) var packetsSent = 0
    private(set) var packetsReceived = 0
    /// The far side's loss on what we send (its receiver reports), 0...1.
    private(set) var remoteLoss = 0.0
    /// What the far side can take, from that loss: how many temporal layers of video cross.
    private(set) var bandwidth = PipeBandwidth()
    /// Since the last receiver report: packets sent, and packets the far side asked for again.
    /// Repairs hide loss from the report's fraction (a resent packet counts as received), so the
    /// loss the pipe suffered before repair is read off the NACKs.
    private var sentAtLastReport = 0
    private var nackedSinceReport = 0
    private var nextReportAt: Nanoseconds = 0

    init(remote: PeerAddress, reach: PipeReach, sendKey: [UInt8], receiveKey: [UInt8]) throws(SRTPError) {
        precondition(sendKey.count == PipeEndpoint.keyLength && receiveKey.count == PipeEndpoint.keyLength)
        self.remote = remote
        self.reach = reach
        self.sendKey = sendKey
        self.receiveKey = receiveKey
        outbound = try SRTPSession(profile: .aeadAES128GCM, key: Array(sendKey[0..<16]), salt: Array(sendKey[16...]), direction: .outbound)
        inbound = try SRTPSession(profile: .aeadAES128GCM, key: Array(receiveKey[0..<16]), salt: Array(receiveKey[16...]), direction: .inbound)
    }

    func link(for meetingID: String) -> PipeLink? { links[meetingID] }

    func addLink(_ link: PipeLink) { links[link.meetingID] = link }

    func removeLink(meetingID: String) { links[meetingID] = nil }

    func register(_ sink: PipeSink) {
        for (index, layer) in sink.layers.enumerated() { sinkBySSRC[layer.ssrc] = (sink, index) }
    }

    func unregister(_ sink: PipeSink) {
        for layer in sink.layers where sinkBySSRC[layer.ssrc]?.sink === sink { sinkBySSRC[layer.ssrc] = nil }
    }

    func register(piped producer: Producer) {
        for (index, encoding) in producer.encodings.enumerated() {
            if let ssrc = encoding.ssrc { streamBySSRC[ssrc] = StreamRoute(producer: producer, layer: index, isRepair: false) }
        }
    }

    func unregister(piped producer: Producer) {
        for encoding in producer.encodings {
            if let ssrc = encoding.ssrc, streamBySSRC[ssrc]?.producer === producer { streamBySSRC[ssrc] = nil }
        }
    }

    /// One datagram from the peer's address: SRTP or SRTCP, decrypted in place.
    func receive(_ buffer: UnsafeMutableRawBufferPointer, length: Int, now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters,
                 messages: inout [(PipeLink, PipeMessage)]) {
        let packet = UnsafeRawBufferPointer(rebasing: buffer[0..<length])
        switch PacketClass(packet) {
        case .rtp:
            guard let plain = try? inbound.unprotectRTP(buffer.baseAddress!, length: length) else {
                counters.dropped[.unauthenticated] += 1
                return
            }
            let bytes = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<plain])
            guard let header = try? RTPHeader(parsing: UnsafeRawBufferPointer(bytes)) else {
                counters.dropped[.malformed] += 1
                return
            }
            guard let route = streamBySSRC[header.ssrc] else {
                // Before its announcement came (or after its withdrawal).
                counters.dropped[.unroutable] += 1
                return
            }
            packetsReceived += 1
            counters.pipedPacketsReceived += 1
            route.producer.receive(bytes, header: header, layer: route.layer, isRepair: false, now: now, output: output, counters: &counters)
        case .rtcp:
            guard let plain = try? inbound.unprotectRTCP(buffer.baseAddress!, length: length) else {
                counters.dropped[.unauthenticated] += 1
                return
            }
            counters.rtcpReceived += 1
            let packets: [RTCPPacket]
            do {
                packets = try RTCPPacket.parseCompound(UnsafeRawBufferPointer(rebasing: buffer[0..<plain]))
            } catch {
                counters.dropped[.malformed] += 1
                return
            }
            handleRTCP(packets, now: now, output: output, counters: &counters, messages: &messages)
        default:
            counters.dropped[.malformed] += 1
        }
    }

    private func handleRTCP(_ packets: [RTCPPacket], now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters,
                            messages: inout [(PipeLink, PipeMessage)]) {
        for packet in packets {
            switch packet {
            case .application(let application):
                guard let message = try? PipeMessage(application), let link = links[message.meetingID] else {
                    counters.pipeMessagesRejected += 1
                    continue
                }
                messages.append((link, message))
            case .pictureLossIndication(let pli):
                sinkBySSRC[pli.mediaSSRC]?.sink.producer.requestKeyframe(now: now, output: output, counters: &counters)
            case .fullIntraRequest(let fir):
                for entry in fir.entries { sinkBySSRC[entry.ssrc]?.sink.producer.requestKeyframe(now: now, output: output, counters: &counters) }
            case .nack(let nack):
                if let (sink, layer) = sinkBySSRC[nack.mediaSSRC] {
                    nackedSinceReport += nack.lostSequenceNumbers.count
                    sink.retransmit(layer: layer, nack.lostSequenceNumbers, output: output, counters: &counters)
                }
            case .receiverReport(let report):
                let blocks = report.reports.filter { sinkBySSRC[$0.ssrc] != nil }
                guard !blocks.isEmpty else { continue }
                remoteLoss = Double(blocks.map(\.fractionLost).max() ?? 0) / 256
                let sent = packetsSent - sentAtLastReport
                let beforeRepair = sent > 0 ? min(1, Double(nackedSinceReport) / Double(sent)) : 0
                sentAtLastReport = packetsSent
                nackedSinceReport = 0
                bandwidth.report(loss: max(remoteLoss, beforeRepair), sending: sendingBitrate)
            default:
                break
            }
        }
    }

    /// What this side sends across now (every meeting's sinks), bits per second.
    var sendingBitrate: Int { links.values.reduce(0) { $0 + $1.sendingBitrate } }

    /// Encrypts `length` bytes of RTP in `slot` and queues them for the peer.
    func sendRTP(_ slot: UnsafeMutableRawBufferPointer, length: Int, output: any DatagramOutput, counters: inout PacketCounters) -> Bool {
        guard let protected = try? outbound.protectRTP(slot.baseAddress!, length: length, capacity: slot.count) else {
            counters.dropped[.encryptionFailed] += 1
            return false
        }
        output.commitSlot(length: protected, to: remote)
        packetsSent += 1
        return true
    }

    func sendRTCP(_ bytes: [UInt8], output: any DatagramOutput, counters: inout PacketCounters) {
        output.sendRTCP(bytes, to: remote, counters: &counters) { try? outbound.protectRTCP($0, length: $1, capacity: $2) }
    }

    /// Sends control messages, as many APP packets to a datagram as fit.
    func send(_ messages: [PipeMessage], output: any DatagramOutput, counters: inout PacketCounters) {
        var bytes: [UInt8] = []
        for message in messages {
            var packet: [UInt8] = []
            message.packet(ssrc: rtcpSSRC).write(into: &packet)
            if !bytes.isEmpty, bytes.count + packet.count > ApplicationDefined.maximumData {
                sendRTCP(bytes, output: output, counters: &counters)
                bytes.removeAll(keepingCapacity: true)
            }
            bytes += packet
        }
        if !bytes.isEmpty { sendRTCP(bytes, output: output, counters: &counters) }
    }

    /// Receiver reports on the piped streams, once a second: the far side sees its loss.
    func sendReports(now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters) {
        guard now >= nextReportAt else { return }
        nextReportAt = now + 1_000_000_000
        var blocks: [ReportBlock] = []
        for link in links.values {
            for producer in link.pipedProducers {
                for index in producer.encodings.indices {
                    guard let ssrc = producer.encodings[index].ssrc, producer.encodings[index].statistics.hasData else { continue }
                    blocks.append(producer.encodings[index].statistics.reportBlock(ssrc: ssrc, now: now))
                }
            }
        }
        var bytes: [UInt8] = []
        for chunk in stride(from: 0, to: max(blocks.count, 1), by: 31) {
            ReceiverReport(ssrc: rtcpSSRC, reports: Array(blocks[chunk..<min(chunk + 31, blocks.count)])).write(into: &bytes)
            if bytes.count > ApplicationDefined.maximumData {
                sendRTCP(bytes, output: output, counters: &counters)
                bytes.removeAll()
            }
        }
        if !bytes.isEmpty { sendRTCP(bytes, output: output, counters: &counters) }
    }

    /// The pipe as one meeting's operator sees it: its own streams only (the pipe's totals count
    /// every meeting on it; the other meetings are not named).
    func status(meetingID: String) -> PipeStatus {
        PipeStatus(remote: "\(remote)", reach: reach, meetings: [meetingID], packetsSent: packetsSent, packetsReceived: packetsReceived,
                   lossPercent: remoteLoss * 100, sendBitrate: sendingBitrate, bandwidthEstimate: bandwidth.estimate,
                   temporalCap: bandwidth.temporalCap, streams: links[meetingID]?.status() ?? [])
    }
}

extension PipeMessage {
    var meetingID: String {
        switch self {
        case .announce(let body): body.meeting
        case .withdraw(let meeting, _): meeting
        case .state(let body): body.meeting
        case .wants(let body): body.meeting
        case .alive(let meeting): meeting
        }
    }
}
