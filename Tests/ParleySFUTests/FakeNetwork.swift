import ParleyBase
import ParleyMediaAPI
import ParleyTestSupport
import ParleyTransport
import ParleyWire
@testable import ParleySFU

/// A client peer built from Parley's own pieces: ICE controlling side, DTLS client, SRTP.
final class TestPeer {
    let address: PeerAddress
    let transport: SecureTransport
    var ufrag = RandomToken.make(length: 8)
    var password = RandomToken.make(length: 24)
    var answer: SessionDescription?
    var receivedRTP: [(header: RTPHeader, bytes: [UInt8])] = []
    var receivedRTCP: [RTCPPacket] = []
    var sequence: UInt16 = 1000
    var timestamp: UInt32 = 5000
    let audioSSRC = UInt32.random(in: 1...UInt32.max)
    let videoSSRC = UInt32.random(in: 1...UInt32.max)
    let rtxSSRC = UInt32.random(in: 1...UInt32.max)
    static let context = try! DTLSContext(certificate: DTLSCertificate(commonName: "test-peer"))

    /// Where what its transport sends goes (set when it joins a network).
    var sfuAddress = PeerAddress(ipv4: (127, 0, 0, 1), port: 40000)

    init(port: UInt16) throws {
        address = PeerAddress(ipv4: (127, 0, 0, 1), port: port)
        transport = try SecureTransport(context: Self.context, role: .client, remoteFingerprint: nil)
    }

    /// An offer like a browser's: BUNDLE, mid extension, Opus and VP8 with RTX.
    /// Video feedback the offer lists; a FIR-only publisher is tested with `["ccm fir"]`.
    var videoFeedback = ["nack", "nack pli"]
    /// Audio: Opus's payload type, and RFC 2198 redundancy around it if offered.
    var opusPayloadType: UInt8 = 111
    var redPayloadType: UInt8?
    /// Simulcast as a browser offers it: rids, lowest first, no SSRCs (they come with the packets).
    var simulcastRids: [String] = []
    lazy var layerSSRCs: [UInt32] = simulcastRids.map { _ in UInt32.random(in: 1...UInt32.max) }
    lazy var layerSequences: [UInt16] = simulcastRids.map { _ in UInt16.random(in: 0...60000) }
    lazy var layerTimestamps: [UInt32] = simulcastRids.map { _ in UInt32.random(in: 0...UInt32.max / 2) }

    /// Receiving audio sections after the first (a subscriber that hears several speakers): mids 2, 3, …
    var extraAudioReceivers = 0
    /// Receiving video sections after the first: mids v2, v3, …
    var extraVideoReceivers = 0

    func offer(sending: Bool) -> String {
        let direction = sending ? "sendonly" : "recvonly"
        let extraMids = sending ? [] : (0..<extraAudioReceivers).map { String($0 + 2) }
        let extraVideoMids = sending ? [] : (0..<extraVideoReceivers).map { "v\($0 + 2)" }
        var sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE \((["0", "1"] + extraMids + extraVideoMids).joined(separator: " "))\r\n"
        let common = "c=IN IP4 0.0.0.0\r\na=ice-ufrag:\(ufrag)\r\na=ice-pwd:\(password)\r\na=fingerprint:sha-256 \(Self.context.certificate.fingerprint)\r\na=setup:actpass\r\na=rtcp-mux\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:5 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=\(direction)\r\n"
        if let red = redPayloadType {
            sdp += "m=audio 9 UDP/TLS/RTP/SAVPF \(opusPayloadType) \(red)\r\n" + common + "a=mid:0\r\na=rtpmap:\(opusPayloadType) opus/48000/2\r\n"
                + "a=rtpmap:\(red) red/48000/2\r\na=fmtp:\(red) \(opusPayloadType)/\(opusPayloadType)\r\n"
        } else {
            sdp += "m=audio 9 UDP/TLS/RTP/SAVPF \(opusPayloadType)\r\n" + common + "a=mid:0\r\na=rtpmap:\(opusPayloadType) opus/48000/2\r\n"
        }
        if sending { sdp += "a=ssrc:\(audioSSRC) cname:peer\r\n" }
        sdp += "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n" + common + "a=mid:1\r\na=rtpmap:96 VP8/90000\r\n" + videoFeedback.map { "a=rtcp-fb:96 \($0)\r\n" }.joined() + "a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n"
        if sending && !simulcastRids.isEmpty {
            sdp += "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\na=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\n"
            sdp += simulcastRids.map { "a=rid:\($0) send\r\n" }.joined() + "a=simulcast:send \(simulcastRids.joined(separator: ";"))\r\n"
        } else if sending {
            sdp += "a=ssrc-group:FID \(videoSSRC) \(rtxSSRC)\r\na=ssrc:\(videoSSRC) cname:peer\r\na=ssrc:\(rtxSSRC) cname:peer\r\n"
        }
        for mid in extraMids {
            sdp += "m=audio 9 UDP/TLS/RTP/SAVPF \(opusPayloadType)\r\n" + common + "a=mid:\(mid)\r\na=rtpmap:\(opusPayloadType) opus/48000/2\r\n"
        }
        for mid in extraVideoMids {
            sdp += "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n" + common + "a=mid:\(mid)\r\na=rtpmap:96 VP8/90000\r\n"
                + videoFeedback.map { "a=rtcp-fb:96 \($0)\r\n" }.joined() + "a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n"
        }
        return sdp
    }

    /// The connectivity check an ICE controlling agent sends, nominating the pair.
    func bindingRequest(password override: String? = nil) -> [UInt8] {
        let media = answer!.media[0]
        let message = STUNMessage(messageClass: .request, transactionID: (0..<12).map { _ in UInt8.random(in: 0...255) }, attributes: [
            .init(.username, Array("\(media.attribute("ice-ufrag")!):\(ufrag)".utf8)),
            .init(.useCandidate, []),
            .init(.priority, [0x6E, 0, 1, 0xFF]),
            .init(.iceControlling, [1, 2, 3, 4, 5, 6, 7, 8]),
        ])
        return message.encoded(integrityKey: Array((override ?? media.attribute("ice-pwd")!).utf8))
    }

    /// A VP8 packet: keyframe or not, with the payload descriptor the SFU reads.
    func videoPacket(keyframe: Bool, marker: Bool = true) -> [UInt8] {
        var packet: [UInt8] = [0x80, (marker ? 0x80 : 0) | 96]
        packet += [UInt8(sequence >> 8), UInt8(sequence & 0xFF)]
        packet += withUnsafeBytes(of: timestamp.bigEndian, Array.init)
        packet += withUnsafeBytes(of: videoSSRC.bigEndian, Array.init)
        packet += [0x10, keyframe ? 0x9C : 0x9D, 0x01, 0x2A] + [UInt8](repeating: 0x77, count: 200)
        sequence &+= 1
        timestamp &+= 3000
        return packet
    }

    /// One packet of a VP8 frame with temporal layers (RFC 7741: 15-bit picture ID, TL0PICIDX,
    /// TID); `first`: the frame's first packet, `last`: its last (marker, timestamp moves on).
    func temporalPacket(pictureID: UInt16, tl0PictureIndex: UInt8, temporalLayer: UInt8, keyframe: Bool, first: Bool, last: Bool) -> [UInt8] {
        var packet: [UInt8] = [0x80, (last ? 0x80 : 0) | 96]
        packet += [UInt8(sequence >> 8), UInt8(sequence & 0xFF)]
        packet += withUnsafeBytes(of: timestamp.bigEndian, Array.init)
        packet += withUnsafeBytes(of: videoSSRC.bigEndian, Array.init)
        packet += [first ? 0x90 : 0x80, 0xE0, 0x80 | UInt8(pictureID >> 8), UInt8(pictureID & 0xFF), tl0PictureIndex, temporalLayer << 6]
        packet += (first ? [keyframe ? 0x9C : 0x9D, 0x01, 0x2A] : []) + [UInt8](repeating: UInt8(pictureID & 0xFF), count: 100)
        sequence &+= 1
        if last { timestamp &+= 3000 }
        return packet
    }

    /// An Opus packet carrying its audio level (RFC 6464, extension id 1: 0 loudest, 127 silence).
    var audioSequence: UInt16 = 10
    var audioTimestamp: UInt32 = 0
    func audioPacket(level: UInt8, payload: [UInt8] = [UInt8](repeating: 0x55, count: 40), payloadType: UInt8? = nil) -> [UInt8] {
        var packet: [UInt8] = [0x90, payloadType ?? opusPayloadType, UInt8(audioSequence >> 8), UInt8(audioSequence & 0xFF)]
        packet += withUnsafeBytes(of: audioTimestamp.bigEndian, Array.init)
        packet += withUnsafeBytes(of: audioSSRC.bigEndian, Array.init)
        packet += [0xBE, 0xDE, 0x00, 0x01, 1 << 4, 0x80 | level, 0, 0] + payload
        audioSequence &+= 1
        audioTimestamp &+= 960
        return packet
    }

    /// The packet with a transport-wide sequence number (extension id 5) added.
    func numbered(_ packet: [UInt8], transportSequence: UInt16) -> [UInt8] {
        precondition(packet[0] & 0x10 == 0, "already has extensions")
        return [packet[0] | 0x10] + packet[1..<12] + [0xBE, 0xDE, 0x00, 0x01, 5 << 4 | 1, UInt8(transportSequence >> 8), UInt8(transportSequence & 0xFF), 0]
            + packet[12...]
    }

    /// A packet of simulcast layer `layer`, with the mid and rid extensions a browser adds; a
    /// keyframe announces `size`; the payload is filled with the layer's index.
    func simulcastPacket(layer: Int, keyframe: Bool, size: (Int, Int) = (0, 0)) -> [UInt8] {
        var packet: [UInt8] = [0x90, 0x80 | 96]
        packet += [UInt8(layerSequences[layer] >> 8), UInt8(layerSequences[layer] & 0xFF)]
        packet += withUnsafeBytes(of: layerTimestamps[layer].bigEndian, Array.init)
        packet += withUnsafeBytes(of: layerSSRCs[layer].bigEndian, Array.init)
        let rid = Array(simulcastRids[layer].utf8)
        var extensions: [UInt8] = [4 << 4, UInt8(ascii: "1"), 10 << 4 | UInt8(rid.count - 1)] + rid
        while extensions.count % 4 != 0 { extensions.append(0) }
        packet += [0xBE, 0xDE, 0, UInt8(extensions.count / 4)] + extensions
        if keyframe {
            packet += [0x10, 0x50, 0x02, 0x00, 0x9D, 0x01, 0x2A, UInt8(size.0 & 0xFF), UInt8(size.0 >> 8), UInt8(size.1 & 0xFF), UInt8(size.1 >> 8)]
        } else {
            packet += [0x10, 0x51, 0x02, 0x00]
        }
        packet += [UInt8](repeating: UInt8(layer), count: 100)
        layerSequences[layer] &+= 1
        layerTimestamps[layer] &+= 3000
        return packet
    }

    /// RFC 4588 retransmission of a packet this peer sent: RTX payload type and SSRC, original sequence first.
    var rtxSequence: UInt16 = 7
    func rtxPacket(of original: [UInt8]) -> [UInt8] {
        var packet: [UInt8] = [0x80, (original[1] & 0x80) | 97, UInt8(rtxSequence >> 8), UInt8(rtxSequence & 0xFF)]
        rtxSequence &+= 1
        packet += original[4..<8]
        packet += withUnsafeBytes(of: rtxSSRC.bigEndian, Array.init)
        return packet + original[2..<4] + original[12...]
    }

    /// A NACK, ready to send, asking the SFU again for a packet this peer received.
    func nack(for packet: (header: RTPHeader, bytes: [UInt8])) -> [UInt8] {
        var bytes: [UInt8] = []
        GenericNACK(senderSSRC: 1, mediaSSRC: packet.header.ssrc, lost: [packet.header.sequenceNumber]).write(into: &bytes)
        return protect(bytes)
    }

    func protect(_ packet: [UInt8]) -> [UInt8] {
        var buffer = packet + [UInt8](repeating: 0, count: SRTPSession.maximumTrailer)
        let length = buffer.withUnsafeMutableBytes { raw in
            PacketClass(UnsafeRawBufferPointer(raw)) == .rtcp
                ? transport.protectRTCP(raw.baseAddress!, length: packet.count, capacity: raw.count)!
                : transport.protectRTP(raw.baseAddress!, length: packet.count, capacity: raw.count)!
        }
        return Array(buffer[0..<length])
    }

    /// Handles a datagram from the SFU.
    func deliver(_ datagram: [UInt8], from sfu: PeerAddress, now: Nanoseconds) {
        var buffer = datagram + [UInt8](repeating: 0, count: 64)
        if datagram.withUnsafeBytes({ PacketClass($0) }) == .stun { return }
        let result = buffer.withUnsafeMutableBytes { transport.receive($0, length: datagram.count, from: sfu, now: now) }
        switch result {
        case .rtp(let length):
            let packet = Array(buffer[0..<length])
            if let header = try? packet.withUnsafeBytes({ try RTPHeader(parsing: $0) }) { receivedRTP.append((header, packet)) }
        case .rtcp(let length):
            receivedRTCP += (try? RTCPPacket.parseCompound(Array(buffer[0..<length]))) ?? []
        default:
            break
        }
    }
}

/// The SFU's worker core and its peers on the tests' simulated network (clean links unless a
/// test sets conditions), on fake time.
final class FakeNetwork {
    let sfuAddress = PeerAddress(ipv4: (127, 0, 0, 1), port: 40000)
    var events: [SFUEvent] = []
    let simulated = SimulatedNetwork(now: .seconds(1000))
    var now: Nanoseconds {
        get { simulated.now }
        set { simulated.setTime(newValue) }
    }
    /// The wall clock the SFU is given: 3.9 × 10⁹ s after 1900 at fake time zero.
    static let ntpClock = NTPClock(ntp: 3_900_000_000 << 32, at: 0)
    lazy var sfu: WorkerCoreEndpoint = {
        let core = WorkerCore(announceAddress: "127.0.0.1", port: 40000, dtlsContext: try! DTLSContext(certificate: DTLSCertificate()),
                              ntpClock: Self.ntpClock, events: { [unowned self] in self.events.append($0) })
        let endpoint = WorkerCoreEndpoint(core: core, address: sfuAddress)
        simulated.attach(endpoint)
        return endpoint
    }()
    var core: WorkerCore { sfu.core }
    var output: CollectingOutput { sfu.output }
    private(set) var peers: [TestPeer] = []
    /// Another worker (of this SFU or another), for pipes: its events go to `events` too.
    lazy var secondSFU: WorkerCoreEndpoint = {
        _ = sfu
        let core = WorkerCore(announceAddress: "127.0.0.1", port: 40001, dtlsContext: try! DTLSContext(certificate: DTLSCertificate()),
                              ntpClock: Self.ntpClock, events: { [unowned self] in self.events.append($0) })
        let endpoint = WorkerCoreEndpoint(core: core, address: PeerAddress(ipv4: (127, 0, 0, 1), port: 40001))
        simulated.attach(endpoint)
        return endpoint
    }()

    func add(_ peer: TestPeer, sfu endpoint: WorkerCoreEndpoint? = nil) {
        let endpoint = endpoint ?? sfu
        peers.append(peer)
        peer.sfuAddress = endpoint.address
        simulated.attach(peer)
    }

    /// Joins the two workers by a pipe carrying `meeting` (random keys, as the control plane makes).
    func pipe(meeting: String, media: MeetingMediaSettings = .defaults) throws {
        let first = (0..<PipeEndpoint.keyLength).map { _ in UInt8.random(in: 0...255) }
        let second = (0..<PipeEndpoint.keyLength).map { _ in UInt8.random(in: 0...255) }
        try core.openPipe(meetingID: meeting, media: media, remote: secondSFU.address, sendKey: first, receiveKey: second, now: now, output: output)
        try secondSFU.core.openPipe(meetingID: meeting, media: media, remote: sfu.address, sendKey: second, receiveKey: first, now: now,
                                    output: secondSFU.output)
    }

    /// Puts a datagram from a peer (or anyone) into the SFU at once, past the network.
    func send(_ bytes: [UInt8], from address: PeerAddress) {
        sfu.receive(bytes, from: address, now: now)
    }

    /// Carries what the SFU and the peers sent until nothing moves.
    func pump() { simulated.pump() }

    /// Moves time on and runs the SFU's timers once.
    func advance(milliseconds: UInt64) {
        now += .milliseconds(milliseconds)
        core.tick(now: now, output: output)
        if hasSecondSFU { secondSFU.core.tick(now: now, output: secondSFU.output) }
        pump()
    }

    private var hasSecondSFU: Bool { simulated.endpoints.contains { $0.address.port == 40001 && $0 is WorkerCoreEndpoint } }

    /// The most common cast: a WHIP publisher and a WHEP player, both connected.
    func whipPublisherAndWHEPPlayer() throws -> (publisher: TestPeer, player: TestPeer) {
        let publisher = try TestPeer(port: 5001), player = try TestPeer(port: 5002)
        try join(publisher, meeting: "m", participant: "pub", role: .whip, sending: true)
        try join(player, meeting: "m", participant: "play", role: .whep, sending: false)
        return (publisher, player)
    }

    /// `count` WHIP publishers of meeting "m", participants p0, p1, … on ports 5001, 5002, …
    func whipPublishers(_ count: Int) throws -> [TestPeer] {
        try (0..<count).map { index in
            let publisher = try TestPeer(port: UInt16(5001 + index))
            try join(publisher, meeting: "m", participant: "p\(index)", role: .whip, sending: true)
            return publisher
        }
    }

    /// Negotiates, checks connectivity and runs DTLS until the peer has SRTP.
    @discardableResult
    func join(_ peer: TestPeer, meeting: String, participant: String, role: TransportRole, sending: Bool,
              media: MeetingMediaSettings = .defaults, sfu endpoint: WorkerCoreEndpoint? = nil) throws -> NegotiationResult {
        let endpoint = endpoint ?? sfu
        add(peer, sfu: endpoint)
        let offer = try SessionDescription(parsing: peer.offer(sending: sending))
        let result = try endpoint.core.negotiate(NegotiationRequest(meetingID: meeting, participantID: participant, transportID: nil, role: role,
                                                                    offer: offer, media: media), now: now)
        peer.answer = try SessionDescription(parsing: result.answer)
        peer.transport.dtls.expectedRemoteFingerprint = String(peer.answer!.media[0].attribute("fingerprint")!.split(separator: " ")[1])
        endpoint.receive(peer.bindingRequest(), from: peer.address, now: now)
        peer.transport.startClient(to: endpoint.address)
        pump()
        return result
    }
}

extension TestPeer: NetworkEndpoint {
    func receive(_ datagram: [UInt8], from sender: PeerAddress, now: Nanoseconds) { deliver(datagram, from: sender, now: now) }

    func tick(now: Nanoseconds) {}

    func takeSent() -> [(bytes: [UInt8], to: PeerAddress)] {
        defer { transport.outbox.removeAll() }
        return transport.outbox.map { ($0.bytes, sfuAddress) }
    }
}
