import ParleyBase
import ParleyTransport
import ParleyWire

/// Why a simulated participant could not join.
public enum LoadError: Error, Equatable, Sendable, CustomStringConvertible {
    case badAnswer(String)
    case refused(String)
    case unreachable(String)
    case timeout(String)

    public var description: String {
        switch self {
        case .badAnswer(let reason): return "bad answer: \(reason)"
        case .refused(let reason): return "refused: \(reason)"
        case .unreachable(let reason): return "unreachable: \(reason)"
        case .timeout(let reason): return "timed out: \(reason)"
        }
    }
}

/// What a simulated participant sends and receives.
public struct LoadPeerOptions: Sendable {
    public var publishAudio = true
    public var publishVideo = true
    public var videoBitrate = 500_000
    public var frameRate = 25
    public var audioReceivers = 0
    /// The audio level its microphone sends (0 loudest, 127 silence); nil: no level extension.
    public var audioLevel: UInt8?
    public var videoReceivers = 0
    /// Goes quiet the moment its DTLS ClientHello is out (`--leave mid-handshake`): ICE done,
    /// the handshake never finished.
    public var stopMidHandshake = false
    public init() {}
}

/// One simulated participant's peer connection, built from Parley's own pieces (the client side
/// of ParleyTransport): ICE controlling agent that also answers the server's checks, DTLS client,
/// SRTP, synthetic media out, measured media in. Sans-I/O: datagrams in, `outbox` out.
public final class LoadPeer {
    public let label: String
    public var options: LoadPeerOptions
    let transport: SecureTransport
    private var remoteUfrag: String?
    private var remotePassword: String?
    public private(set) var remoteAddress: PeerAddress?
    private var audio: SyntheticStream?
    private var video: SyntheticStream?
    /// Received streams by SSRC.
    /// By sender: the SSRC, or in a speaker slot the speaker's CSRC.
    public private(set) var received: [UInt32: ReceivedStream] = [:]
    public let createdAt: Nanoseconds
    public private(set) var connectedAt: Nanoseconds?
    private var iceConfirmed = false
    /// Whether this peer nominates (it offered) or is the controlled side (it answered).
    public private(set) var controlling = true
    /// Put in this peer's SDP when its socket is bound to a definite address (needed by full-ICE
    /// servers such as Janus, which check towards it; Parley, ICE-lite, does not need it).
    public var localCandidate: (host: String, port: UInt16)?
    private var nextCheckAt: Nanoseconds = 0
    private var sessionVersion = 1
    /// Datagrams to send to `remoteAddress`.
    public var outbox: [[UInt8]] = []
    /// Set by `hangUp`, `silence` or a stop mid-handshake: nothing more is sent (beyond what is
    /// already in the outbox) and nothing received is looked at.
    public private(set) var hungUp = false
    /// Went quiet right after its ClientHello (`LoadPeerOptions.stopMidHandshake`).
    public private(set) var stoppedMidHandshake = false
    /// Video frames received (packets with the marker bit), counted once each.
    public private(set) var framesReceived = 0
    public private(set) var malformed = 0
    /// Repair (RFC 4585 NACK, answered by plain retransmission, as negotiated): what this peer
    /// sent recently, to send again when the server asks; what it misses of each video stream it
    /// receives, to ask for.
    private var sentVideo = [[UInt8]](repeating: [], count: 1024)
    private var missing: [UInt32: NACKGenerator] = [:]
    private var nextNACKAt: Nanoseconds = 0
    public private(set) var nacksSent = 0
    public private(set) var retransmissionsSent = 0
    /// Packets that came after a later one (a repair, or reordering): lost on the way, recovered.
    public private(set) var packetsRepaired = 0
    static let context: DTLSContext = try! DTLSContext(certificate: DTLSCertificate(commonName: "parley-load"))
    static let midExtensionID: UInt8 = 4
    static let audioLevelExtensionID: UInt8 = 1

    public init(label: String, options: LoadPeerOptions, now: Nanoseconds) throws {
        self.label = label
        self.options = options
        self.createdAt = now
        transport = try SecureTransport(context: Self.context, role: .client, remoteFingerprint: nil)
        if options.publishAudio {
            audio = .audio(ssrc: UInt32.random(in: 1...UInt32.max), payloadType: 111)
            audio?.midExtensionID = Self.midExtensionID
            if let level = options.audioLevel { audio?.audioLevel = (Self.audioLevelExtensionID, level) }
        }
        if options.publishVideo {
            video = .video(ssrc: UInt32.random(in: 1...UInt32.max), payloadType: 96, bitrate: options.videoBitrate, frameRate: options.frameRate)
            video?.midExtensionID = Self.midExtensionID
        }
    }

    public var isConnected: Bool { transport.isConnected }
    public var packetsSent: Int { (audio?.packetsSent ?? 0) + (video?.packetsSent ?? 0) }

    /// The offer: publishing m-lines first, then one receiving m-line per wanted remote track.
    /// Successive offers keep the credentials and mids, as a browser's renegotiations do.
    public func offer() -> String {
        var sections: [(kind: String, direction: String, ssrc: UInt32?)] = []
        if let audio { sections.append(("audio", "sendonly", audio.ssrc)) }
        if let video { sections.append(("video", "sendonly", video.ssrc)) }
        sections += Array(repeating: ("audio", "recvonly", nil), count: options.audioReceivers)
        sections += Array(repeating: ("video", "recvonly", nil), count: options.videoReceivers)
        let mids = sections.indices.map(String.init)
        // Publishing sections come first: audio, then video.
        audio?.mid = "0"
        video?.mid = audio == nil ? "0" : "1"
        var sdp = "v=0\r\no=- \(UInt32(truncatingIfNeeded: createdAt)) \(sessionVersion) IN IP4 0.0.0.0\r\ns=parley-load\r\nt=0 0\r\n"
        sessionVersion += 1
        sdp += "a=group:BUNDLE \(mids.joined(separator: " "))\r\n"
        for (index, section) in sections.enumerated() {
            let formats = section.kind == "audio" ? "111" : "96"
            sdp += "m=\(section.kind) 9 UDP/TLS/RTP/SAVPF \(formats)\r\nc=IN IP4 0.0.0.0\r\n"
            sdp += sectionTransport(mid: mids[index])
            sdp += "a=extmap:\(Self.midExtensionID) urn:ietf:params:rtp-hdrext:sdes:mid\r\na=\(section.direction)\r\na=rtcp-mux\r\n"
            if section.kind == "audio" && options.audioLevel != nil {
                sdp += "a=extmap:\(Self.audioLevelExtensionID) urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
            }
            if section.kind == "audio" {
                sdp += "a=rtpmap:111 opus/48000/2\r\n"
            } else {
                sdp += "a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\n"
            }
            if let ssrc = section.ssrc { sdp += "a=ssrc:\(ssrc) cname:\(label)\r\n" }
        }
        return sdp
    }

    /// Takes the server's answer: its credentials, fingerprint and the one host candidate to use.
    /// `allowedHost` refuses any candidate address other than the one the user gave.
    public func apply(answer text: String, allowedHost: String?) throws(LoadError) {
        let answer: SessionDescription
        do { answer = try SessionDescription(parsing: text) } catch { throw .badAnswer("\(error)") }
        try applyRemote(answer, allowedHost: allowedHost)
    }

    /// Answers a server that offers (Janus's subscriber sessions): one receive-only section per
    /// offered one, its first codec, and this peer as the ICE controlled side. Still the DTLS client.
    public func answer(offer text: String, allowedHost: String?) throws(LoadError) -> String {
        let offer: SessionDescription
        do { offer = try SessionDescription(parsing: text) } catch { throw .badAnswer("offer: \(error)") }
        try applyRemote(offer, allowedHost: allowedHost)
        controlling = false
        var sdp = "v=0\r\no=- \(UInt32(truncatingIfNeeded: createdAt)) \(sessionVersion) IN IP4 0.0.0.0\r\ns=parley-load\r\nt=0 0\r\n"
        sessionVersion += 1
        let bundled = offer.bundleMids
        if !bundled.isEmpty { sdp += "a=group:BUNDLE \(bundled.joined(separator: " "))\r\n" }
        for media in offer.media {
            guard !media.isRejected, let mid = media.mid, let codec = media.codecs.first else {
                sdp += "m=\(media.kind) 0 \(media.proto) \(media.formats.first ?? "0")\r\nc=IN IP4 0.0.0.0\r\n"
                if let mid = media.mid { sdp += "a=mid:\(mid)\r\n" }
                sdp += "a=inactive\r\n"
                continue
            }
            sdp += "m=\(media.kind) 9 UDP/TLS/RTP/SAVPF \(codec.payloadType)\r\nc=IN IP4 0.0.0.0\r\n"
            sdp += sectionTransport(mid: mid)
            sdp += "a=\(media.direction.sends ? "recvonly" : "inactive")\r\na=rtcp-mux\r\n"
            sdp += "a=rtpmap:\(codec.payloadType) \(codec.name)/\(codec.clockRate)\(codec.channels.map { "/\($0)" } ?? "")\r\n"
            if codec.name.uppercased() == "VP8" || codec.name.uppercased() == "H264" {
                sdp += "a=rtcp-fb:\(codec.payloadType) nack\r\na=rtcp-fb:\(codec.payloadType) nack pli\r\n"
            }
        }
        return sdp
    }

    /// The transport lines every section of this peer's descriptions repeats (BUNDLE).
    private func sectionTransport(mid: String) -> String {
        var lines = "a=ice-ufrag:\(transport.ice.localUfrag)\r\na=ice-pwd:\(transport.ice.localPassword)\r\n"
        lines += "a=fingerprint:sha-256 \(transport.localFingerprint)\r\na=setup:active\r\na=mid:\(mid)\r\n"
        if let localCandidate {
            lines += "a=candidate:1 1 udp 2130706431 \(localCandidate.host) \(localCandidate.port) typ host\r\na=end-of-candidates\r\n"
        }
        return lines
    }

    private func applyRemote(_ description: SessionDescription, allowedHost: String?) throws(LoadError) {
        guard let media = description.media.first(where: { !$0.isRejected }) else { throw .badAnswer("every media section was rejected") }
        guard let ufrag = media.attribute("ice-ufrag") ?? description.attribute("ice-ufrag"),
              let password = media.attribute("ice-pwd") ?? description.attribute("ice-pwd") else { throw .badAnswer("no ICE credentials") }
        guard let fingerprint = (media.attribute("fingerprint") ?? description.attribute("fingerprint"))?.split(separator: " ").last else {
            throw .badAnswer("no fingerprint")
        }
        let candidates = description.media.flatMap { $0.values("candidate") }.compactMap(Self.hostCandidate)
        guard let candidate = candidates.first(where: { allowedHost == nil || $0.host == allowedHost }) else {
            throw .badAnswer("no UDP host candidate at \(allowedHost ?? "any address") (offered: \(candidates.map(\.host)))")
        }
        guard let address = Self.address(host: candidate.host, port: candidate.port) else { throw .badAnswer("candidate address \(candidate.host)") }
        if remoteUfrag != ufrag {
            remoteUfrag = ufrag
            remotePassword = password
            iceConfirmed = false
            nextCheckAt = 0
        }
        transport.ice.remoteUfrag = ufrag
        transport.ice.remotePassword = password
        transport.dtls.expectedRemoteFingerprint = String(fingerprint)
        remoteAddress = address
    }

    static func hostCandidate(_ line: String) -> (host: String, port: UInt16)? {
        let parts = line.split(separator: " ")
        guard parts.count >= 8, parts[2].lowercased() == "udp", parts[6] == "typ", parts[7] == "host", let port = UInt16(parts[5]) else { return nil }
        return (String(parts[4]), port)
    }

    static func address(host: String, port: UInt16) -> PeerAddress? {
        let octets = host.split(separator: ".").compactMap { UInt8($0) }
        guard octets.count == 4 else { return nil }
        return PeerAddress(ipv4: (octets[0], octets[1], octets[2], octets[3]), port: port)
    }

    /// Hangs up as a browser closing its peer connection does: a DTLS close_notify, then silence.
    public func hangUp() {
        guard !hungUp else { return }
        hungUp = true
        transport.close()
        drainTransport()
    }

    /// Stops sending anything, without a close_notify: a peer whose network or process went away.
    /// The server notices only when ICE consent expires.
    public func silence() {
        hungUp = true
    }

    /// Timers: connectivity checks (then consent every 2.5 s), DTLS retransmissions, media.
    public func tick(now: Nanoseconds) {
        guard !hungUp, remoteAddress != nil, let remoteUfrag, let remotePassword else { return }
        if now >= nextCheckAt {
            nextCheckAt = now + (iceConfirmed ? .milliseconds(2500) : .milliseconds(200))
            let tieBreaker = (0..<8).map { _ in UInt8.random(in: 0...255) }
            var attributes: [STUNMessage.Attribute] = [
                .init(.username, Array("\(remoteUfrag):\(transport.ice.localUfrag)".utf8)),
                .init(.priority, [0x6E, 0x00, 0x01, 0xFF]),
            ]
            attributes += controlling ? [.init(.useCandidate, []), .init(.iceControlling, tieBreaker)] : [.init(.iceControlled, tieBreaker)]
            let check = STUNMessage(messageClass: .request, transactionID: (0..<12).map { _ in UInt8.random(in: 0...255) }, attributes: attributes)
            outbox.append(check.encoded(integrityKey: Array(remotePassword.utf8), fingerprint: true))
        }
        transport.handleTimeout(now: now)
        drainTransport()
        guard transport.isConnected else { return }
        if connectedAt == nil { connectedAt = now }
        for packet in audio?.packets(now: now) ?? [] { sendRTP(packet) }
        for packet in video?.packets(now: now) ?? [] {
            sentVideo[Int(UInt16(packet[2]) << 8 | UInt16(packet[3])) % sentVideo.count] = packet
            sendRTP(packet)
        }
        if now >= nextNACKAt {
            nextNACKAt = now + .milliseconds(20)
            askForMissing(now: now)
        }
    }

    /// One NACK per video stream with packets due to be asked for (again).
    private func askForMissing(now: Nanoseconds) {
        for ssrc in missing.keys {
            let lost = missing[ssrc]!.due(now: now)
            guard !lost.isEmpty else { continue }
            var bytes: [UInt8] = []
            GenericNACK(senderSSRC: 1, mediaSSRC: ssrc, lost: lost).write(into: &bytes)
            sendRTCP(bytes)
            nacksSent += 1
        }
    }

    /// Sends again what the server asked for and this peer still has.
    private func retransmit(_ sequences: [UInt16]) {
        for sequence in sequences {
            let packet = sentVideo[Int(sequence) % sentVideo.count]
            guard packet.count >= 12, UInt16(packet[2]) << 8 | UInt16(packet[3]) == sequence else { continue }
            sendRTP(packet)
            retransmissionsSent += 1
        }
    }

    private func sendRTCP(_ packet: [UInt8]) { send(packet, rtcp: true) }

    private func sendRTP(_ packet: [UInt8]) { send(packet, rtcp: false) }

    /// Encrypts a packet (SRTP or SRTCP) into the outbox.
    private func send(_ packet: [UInt8], rtcp: Bool) {
        var buffer = packet + [UInt8](repeating: 0, count: SRTPSession.maximumTrailer)
        guard let length = buffer.withUnsafeMutableBytes({ raw in
            rtcp ? transport.protectRTCP(raw.baseAddress!, length: packet.count, capacity: raw.count)
                 : transport.protectRTP(raw.baseAddress!, length: packet.count, capacity: raw.count)
        }) else { return }
        outbox.append(Array(buffer[0..<length]))
    }

    private func drainTransport() {
        for (bytes, _) in transport.outbox { outbox.append(bytes) }
        transport.outbox.removeAll()
    }

    /// Handles one datagram from the server.
    public func receive(_ datagram: UnsafeRawBufferPointer, from address: PeerAddress, now: Nanoseconds) {
        guard !hungUp, address == remoteAddress else { return }  // only the server we were told about, while in the call
        if PacketClass(datagram) == .stun, let message = try? STUNMessage(parsing: datagram), message.messageClass == .success {
            guard let remotePassword, STUNMessage.verifyIntegrity(datagram, key: Array(remotePassword.utf8)) else { malformed += 1; return }
            if !iceConfirmed {
                iceConfirmed = true
                transport.startClient(to: address)
                drainTransport()
                if options.stopMidHandshake {
                    // The ClientHello is in the outbox and still goes out; then nothing more.
                    hungUp = true
                    stoppedMidHandshake = true
                }
            }
            return
        }
        var buffer = Array(datagram) + [UInt8](repeating: 0, count: 16)
        let result = buffer.withUnsafeMutableBytes { transport.receive($0, length: datagram.count, from: address, now: now) }
        drainTransport()
        switch result {
        case .rtp(let length):
            buffer.withUnsafeBytes { raw in
                let packet = UnsafeRawBufferPointer(rebasing: raw[0..<length])
                guard let header = try? RTPHeader(parsing: packet),
                      let probe = Probe(payload: UnsafeRawBufferPointer(rebasing: packet[header.payloadOffset..<(header.payloadOffset + header.payloadLength)])) else {
                    malformed += 1
                    return
                }
                if header.payloadType == 96 {
                    var generator = missing[header.ssrc] ?? NACKGenerator()
                    let late = generator.missingCount > 0 && !generator.isNewest(header.sequenceNumber)
                    guard generator.received(header.sequenceNumber, now: now) else { return }  // a duplicate
                    if late { packetsRepaired += 1 }
                    if header.marker { framesReceived += 1 }
                    missing[header.ssrc] = generator
                }
                // A speaker slot carries one sender after another; its CSRC names the sender, whose
                // probes are numbered on their own.
                let source = header.csrcCount > 0 ? packet.readU32(at: 12) : header.ssrc
                received[source, default: ReceivedStream()].record(probe, arrivedAt: now)
            }
        case .rtcp(let length):
            let packets = (try? RTCPPacket.parseCompound(Array(buffer[0..<length]))) ?? []
            for packet in packets {
                switch packet {
                case .pictureLossIndication, .fullIntraRequest: video?.requestKeyframe()
                case .nack(let nack) where nack.mediaSSRC == video?.ssrc: retransmit(nack.lostSequenceNumbers)
                default: break
                }
            }
        default:
            break
        }
    }
}
