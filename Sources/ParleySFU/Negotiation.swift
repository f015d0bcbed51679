import Foundation
import ParleyBase
import ParleyMediaAPI
import ParleyWire
import ParleyTransport

/// The codecs, feedback and extensions Parley's SFU speaks.
enum MediaCapabilities {
    static let videoFeedback: Set<String> = ["nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"]
    static let audioFeedback: Set<String> = ["transport-cc"]

    static func isSupported(_ codec: RTPCodec, kind: MediaKind) -> Bool {
        switch (kind, codec.name.uppercased()) {
        case (.audio, "OPUS"): return codec.clockRate == 48000
        case (.audio, "RED"): return codec.clockRate == 48000
        case (.video, "VP8"): return true
        case (.video, "H264"): return codec.parameter("packetization-mode") == "1"
        default: return false
        }
    }

    /// The one codec a publisher will send: Opus; VP8, else H.264 (baseline/constrained first).
    static func publishCodec(from offered: [RTPCodec], kind: MediaKind) -> RTPCodec? {
        let supported = offered.filter { isSupported($0, kind: kind) }
        if kind == .video {
            if let vp8 = supported.first(where: { $0.name.uppercased() == "VP8" }) { return vp8 }
            return supported.first { ($0.parameter("profile-level-id") ?? "").lowercased().hasPrefix("42e0") } ?? supported.first
        }
        return supported.first
    }

    /// RFC 2198 redundancy wrapping `codec` (`a=fmtp:R P/P`), if offered.
    static func red(for codec: RTPCodec, in offered: [RTPCodec]) -> RTPCodec? {
        offered.first { candidate in
            guard candidate.name.uppercased() == "RED", candidate.clockRate == codec.clockRate, let fmtp = candidate.fmtp else { return false }
            return fmtp.split(separator: "/").first.flatMap { UInt8($0) } == codec.payloadType
        }
    }

    static func rtx(for codec: RTPCodec, in offered: [RTPCodec]) -> RTPCodec? {
        offered.first { $0.name.lowercased() == "rtx" && $0.associatedPayloadType == codec.payloadType }
    }

    static func answerFeedback(_ codec: RTPCodec, kind: MediaKind) -> RTPCodec {
        var codec = codec
        codec.feedback = codec.feedback.filter((kind == .video ? videoFeedback : audioFeedback).contains)
        if codec.name.uppercased() == "OPUS" {
            // In-band FEC rebuilds a lost packet from the next one; DTX sends almost nothing in
            // silence (RFC 7587 §7): asked of every Opus sender.
            var parameters = (codec.fmtp ?? "").split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("useinbandfec=") && !$0.hasPrefix("usedtx=") }
            if !parameters.contains(where: { $0.hasPrefix("minptime=") }) { parameters.insert("minptime=10", at: 0) }
            codec.fmtp = (parameters + ["useinbandfec=1", "usedtx=1"]).joined(separator: ";")
        }
        return codec
    }

    static func extensionURIs(kind: MediaKind, publishing: Bool) -> Set<String> {
        var uris: Set<String> = [HeaderExtensionURI.mid]
        if kind == .audio { uris.insert(HeaderExtensionURI.audioLevel) }
        if publishing && kind == .video { uris.formUnion([HeaderExtensionURI.rid, HeaderExtensionURI.repairedRid]) }
        // Both ways: publishers get transport-wide feedback (their estimators learn the path to
        // us); subscribers send it (ours learns the path to them).
        uris.insert(HeaderExtensionURI.transportWideCC)
        return uris
    }
}

/// One answered m-line before it is written out.
struct AnswerSection {
    var media: MediaDescription
    var mid: String?
    var accepted: Bool
    var direction: MediaDirection
    var codecs: [RTPCodec]
    var extensions: [(id: UInt8, uri: String)]
    var consumer: Consumer?
    var streamID: String?
    /// Simulcast layers received, answered `a=rid:X recv` and `a=simulcast:recv`.
    var receiveRids: [String] = []
}

extension WorkerCore {
    /// Answers an offer: creates the transport on the first one, then a Producer per sending
    /// m-line and a Consumer per receiving m-line, attached to the producers it should play.
    public func negotiate(_ request: NegotiationRequest, now: Nanoseconds) throws(NegotiationError) -> NegotiationResult {
        assertOnOwnerThread()
        let offer = request.offer
        guard !offer.media.isEmpty else { throw .badOffer("no media sections") }
        let first = offer.media[0]
        guard let ufrag = first.attribute("ice-ufrag") ?? offer.attribute("ice-ufrag"),
              let password = first.attribute("ice-pwd") ?? offer.attribute("ice-pwd") else { throw .badOffer("missing a=ice-ufrag or a=ice-pwd") }
        guard let fingerprintLine = first.attribute("fingerprint") ?? offer.attribute("fingerprint") else { throw .badOffer("missing a=fingerprint") }
        let fingerprintParts = fingerprintLine.split(separator: " ")
        guard fingerprintParts.count == 2, fingerprintParts[0].lowercased() == "sha-256" else {
            throw .badOffer("a=fingerprint must be sha-256, got \(fingerprintLine.prefix(40))")
        }
        let setup = first.attribute("setup") ?? offer.attribute("setup") ?? "actpass"
        let remoteFingerprint = String(fingerprintParts[1])

        let transport: WebRtcTransport
        if let id = request.transportID {
            guard let existing = transports[id], existing.meetingID == request.meetingID, existing.participantID == request.participantID else {
                throw .unknownTransport(id)
            }
            transport = existing
            if existing.secure.dtls.expectedRemoteFingerprint?.uppercased() != remoteFingerprint.uppercased() {
                throw .badOffer("the DTLS fingerprint changed; start a new peer connection instead")
            }
            if existing.secure.ice.remoteUfrag != ufrag {
                // An ICE restart: the credentials before it stay answered until the new ones nominate.
                for stale in existing.registeredUfrags where stale != existing.secure.ice.localUfrag { byUfrag[stale] = nil }
                existing.secure.ice.restart(remoteUfrag: ufrag, remotePassword: password)
                byUfrag[existing.secure.ice.localUfrag] = existing
                existing.registeredUfrags = [existing.secure.ice.previous?.localUfrag, existing.secure.ice.localUfrag].compactMap { $0 }
            }
        } else {
            guard ["actpass", "active", "passive"].contains(setup) else { throw .badOffer("a=setup:\(setup)") }
            let secure: SecureTransport
            do {
                secure = try SecureTransport(context: dtlsContext, role: setup == "passive" ? .client : .server, remoteFingerprint: remoteFingerprint)
            } catch {
                throw .failed("DTLS setup: \(error)")
            }
            secure.ice.remoteUfrag = ufrag
            secure.ice.remotePassword = password
            let router = routers[request.meetingID] ?? Router(meetingID: request.meetingID, media: request.media)
            routers[request.meetingID] = router
            transport = WebRtcTransport(id: RandomToken.make(length: 12), meetingID: request.meetingID, participantID: request.participantID,
                                        role: request.role, secure: secure, router: router)
            router.transports[transport.id] = transport
            transports[transport.id] = transport
            byUfrag[secure.ice.localUfrag] = transport
            transport.registeredUfrags = [secure.ice.localUfrag]
        }
        let router = transport.router
        router.update(media: request.media)
        // A subscriber's receiving sections are bounded, whatever the meeting's size: the
        // speakers it hears and the videos it shows at once. Sections past these are inactive.
        let slotLimit: [MediaKind: Int] = [.audio: router.media.audioSpeakers, .video: router.media.videoSlots]
        var slotsTaken: [MediaKind: Int] = [:]

        var sections: [AnswerSection] = []
        var removedProducers: [Producer] = []
        var addedProducers: [Producer] = []
        var seenMids = Set<String>()
        for (index, media) in offer.media.enumerated() {
            guard let mid = media.mid, !mid.isEmpty else { throw .badOffer("m-line \(index) has no a=mid") }
            guard seenMids.insert(mid).inserted else { throw .badOffer("mid \(mid) appears twice") }
            var section = AnswerSection(media: media, mid: mid, accepted: false, direction: .inactive, codecs: [], extensions: [])
            let existingProducer = transport.producers.first { $0.mid == mid }
            let existingConsumer = transport.consumers.first { $0.mid == mid }
            guard let kind = MediaKind(rawValue: media.kind), !media.isRejected, media.proto.contains("RTP") else {
                // A stopped transceiver (port 0) ends what was negotiated on it.
                if let producer = existingProducer { removedProducers.append(producer) }
                if let consumer = existingConsumer { transport.removeConsumer(consumer) }
                sections.append(section)
                continue
            }
            let offered = media.codecs
            let direction = media.direction

            if direction.sends && request.role != .whep {
                guard let codec = MediaCapabilities.publishCodec(from: offered, kind: kind) else {
                    sections.append(section)
                    continue
                }
                let rtx = MediaCapabilities.rtx(for: codec, in: offered)
                // Audio redundancy: listed first, so browsers send it (each packet carries the
                // previous one too); subscribers without RED get the primary block alone.
                let red = kind == .audio ? MediaCapabilities.red(for: codec, in: offered) : nil
                section.accepted = true
                section.direction = .recvonly
                section.codecs = (red.map { [MediaCapabilities.answerFeedback($0, kind: kind)] } ?? []) + [MediaCapabilities.answerFeedback(codec, kind: kind)]
                    + (rtx.map { [MediaCapabilities.answerFeedback($0, kind: kind)] } ?? [])
                let allowed = MediaCapabilities.extensionURIs(kind: kind, publishing: true)
                section.extensions = media.extensions.filter { allowed.contains($0.uri) }
                func extensionID(_ uri: String) -> UInt8? { section.extensions.first { $0.uri == uri }?.id }
                if let midID = extensionID(HeaderExtensionURI.mid) { transport.midExtensionID = midID }
                if let ridID = extensionID(HeaderExtensionURI.rid) { transport.ridExtensionID = ridID }
                if let repairedID = extensionID(HeaderExtensionURI.repairedRid) { transport.repairedRidExtensionID = repairedID }
                if let feedbackID = extensionID(HeaderExtensionURI.transportWideCC) { transport.transportWideCCExtensionID = feedbackID }
                // Simulcast (RFC 8853): one encoding per rid, lowest first as offered; their SSRCs
                // come with the first packets (rid header extension).
                let rids = kind == .video && extensionID(HeaderExtensionURI.rid) != nil ? Array(media.sendRids.prefix(4)) : []
                section.receiveRids = rids.count > 1 ? rids : []
                if existingProducer == nil {
                    var encodings: [ReceiveStream]
                    if rids.count > 1 {
                        encodings = rids.map { ReceiveStream(rid: $0) }
                    } else {
                        let rtxPairs = media.rtxPairs
                        let rtxSSRCs = Set(rtxPairs.map(\.rtx))
                        let primary = media.ssrcs.first { !rtxSSRCs.contains($0) }
                        encodings = [ReceiveStream(rid: rids.first, ssrc: primary, rtxSSRC: rtxPairs.first { $0.primary == primary }?.rtx)]
                    }
                    let producer = Producer(
                        id: RandomToken.make(length: 12), kind: kind, mid: mid,
                        source: request.sources[mid] ?? (kind == .audio ? "microphone" : "camera"),
                        codec: codec, rtxPayloadType: rtx?.payloadType, redPayloadType: red?.payloadType, encodings: encodings,
                        audioLevelExtensionID: section.extensions.first { $0.uri == HeaderExtensionURI.audioLevel }?.id,
                        transport: transport, now: now)
                    transport.addProducer(producer)
                    addedProducers.append(producer)
                }
                if let consumer = existingConsumer { transport.removeConsumer(consumer) }
            } else if direction.receives && request.role != .whip && slotsTaken[kind, default: 0] < slotLimit[kind, default: 0] {
                slotsTaken[kind, default: 0] += 1
                let supported = offered.filter { MediaCapabilities.isSupported($0, kind: kind) }
                // RED only around a codec accepted too.
                let accepted = supported.filter { codec in
                    codec.name.uppercased() != "RED" || supported.contains { MediaCapabilities.red(for: $0, in: [codec]) != nil }
                }
                guard !accepted.isEmpty else {
                    sections.append(section)
                    continue
                }
                let rtxCodecs = accepted.compactMap { MediaCapabilities.rtx(for: $0, in: offered) }
                section.codecs = (accepted + rtxCodecs).map { MediaCapabilities.answerFeedback($0, kind: kind) }
                let allowed = MediaCapabilities.extensionURIs(kind: kind, publishing: false)
                section.extensions = media.extensions.filter { allowed.contains($0.uri) }
                let consumer: Consumer
                if let existingConsumer {
                    consumer = existingConsumer
                } else {
                    consumer = Consumer(id: RandomToken.make(length: 12), mid: mid, kind: kind, transport: transport, codecs: section.codecs,
                                        midExtensionID: section.extensions.first { $0.uri == HeaderExtensionURI.mid }?.id,
                                        audioLevelExtensionID: section.extensions.first { $0.uri == HeaderExtensionURI.audioLevel }?.id,
                                        transportWideCCExtensionID: section.extensions.first { $0.uri == HeaderExtensionURI.transportWideCC }?.id)
                    transport.addConsumer(consumer)
                }
                section.accepted = true
                section.direction = .sendonly
                section.consumer = consumer
                if let producer = existingProducer { removedProducers.append(producer) }
            } else {
                section.accepted = true
                section.direction = .inactive
                section.codecs = Array(offered.filter { MediaCapabilities.isSupported($0, kind: kind) }.prefix(1))
                if section.codecs.isEmpty { section.accepted = false }
                if let producer = existingProducer { removedProducers.append(producer) }
                if let consumer = existingConsumer { transport.removeConsumer(consumer) }
            }
            sections.append(section)
        }

        // Producers of m-lines the offer no longer sends on, or dropped altogether.
        for producer in transport.producers where !seenMids.contains(producer.mid) && !removedProducers.contains(where: { $0 === producer }) {
            removedProducers.append(producer)
        }
        applyBlockedMedia(to: transport)
        var changed = router.producersRemoved(removedProducers, now: now)
        for producer in addedProducers { changed += router.producerAdded(producer, now: now) }

        router.updateSpeakerSlots(of: transport)
        // Feed idle video consumers: web clients take producers nobody on this connection shows
        // yet, WHEP players the most recent publisher. (Speaker slots fill from loud packets.)
        // A subscriber that chose its videos gets those (its own assignments list the change).
        if transport.videoSelection != nil {
            _ = router.reconcileSelectedVideos(of: transport, now: now)
        } else {
            var taken = Router.producersShown(by: transport)
            for consumer in transport.consumers where consumer.kind == .video && (consumer.producer == nil || consumer.producer!.closed) {
                let source = transport.role == .whep ? router.latestProducer(for: consumer) : router.unassignedProducer(for: consumer, taken: taken)
                if let source {
                    consumer.attach(to: source, now: now)
                    taken.insert(ObjectIdentifier(source))
                }
            }
        }
        for index in sections.indices {
            if let consumer = sections[index].consumer { sections[index].streamID = consumer.producer?.participantID }
        }
        let answer = writeAnswer(sections: sections, offer: offer, transport: transport, setup: setup)
        let own = transport.assignments()
        let published = transport.producers.map {
            PublishedTrack(id: $0.id, mid: $0.mid, kind: $0.kind, source: $0.source, sourceID: $0.kind == .audio ? $0.sourceID : nil)
        }
        let updates = Self.updates(for: changed.filter { $0.transport !== transport })
        return NegotiationResult(transportID: transport.id, answer: answer, assignments: own.list, published: published,
                                 assignmentsVersion: own.version, changedAssignments: updates)
    }

    /// Groups changed consumers by participant into one update each.
    static func updates(for changed: [Consumer]) -> [AssignmentUpdate] {
        var byTransport: [ObjectIdentifier: [Consumer]] = [:]
        var order: [WebRtcTransport] = []
        for consumer in changed {
            let key = ObjectIdentifier(consumer.transport)
            if byTransport[key] == nil { order.append(consumer.transport) }
            if !(byTransport[key]?.contains { $0 === consumer } ?? false) { byTransport[key, default: []].append(consumer) }
        }
        return order.map { transport in
            let (version, list) = transport.assignments(only: byTransport[ObjectIdentifier(transport)])
            return AssignmentUpdate(participantID: transport.participantID, version: version, assignments: list)
        }
    }

    private func writeAnswer(sections: [AnswerSection], offer: SessionDescription, transport: WebRtcTransport, setup: String) -> String {
        let ice = transport.secure.ice
        let acceptedMids = sections.filter(\.accepted).compactMap(\.mid)
        var session = SessionDescription(
            lines: [
                SDPLine(type: "v", value: "0"),
                SDPLine(type: "o", value: "- \(transport.sessionID) \(transport.answerVersion) IN IP4 127.0.0.1"),
                SDPLine(type: "s", value: "parley"),
                SDPLine(type: "t", value: "0 0"),
            ],
            attributes: [SDPAttribute("ice-lite")] + (offer.bundleMids.isEmpty ? [] : [SDPAttribute("group", (["BUNDLE"] + acceptedMids).joined(separator: " "))])
                + [SDPAttribute("msid-semantic", " WMS *")],
            media: [])
        transport.answerVersion += 1
        let candidateAddress = announceAddress
        for section in sections {
            let offered = section.media
            guard section.accepted else {
                var rejected = MediaDescription(kind: offered.kind, port: 0, proto: offered.proto, formats: Array(offered.formats.prefix(1)))
                rejected.lines = [SDPLine(type: "c", value: "IN IP4 0.0.0.0")]
                if let mid = section.mid { rejected.attributes = [SDPAttribute("mid", mid)] }
                session.media.append(rejected)
                continue
            }
            var media = MediaDescription(kind: offered.kind, port: 9, proto: offered.proto, formats: section.codecs.map { String($0.payloadType) })
            media.lines = [SDPLine(type: "c", value: "IN IP4 0.0.0.0")]
            var a: [SDPAttribute] = [
                SDPAttribute("rtcp", "9 IN IP4 0.0.0.0"),
                SDPAttribute("ice-ufrag", ice.localUfrag),
                SDPAttribute("ice-pwd", ice.localPassword),
                SDPAttribute("fingerprint", "sha-256 \(transport.secure.localFingerprint)"),
                SDPAttribute("setup", setup == "passive" ? "active" : "passive"),
            ]
            if let mid = section.mid { a.append(SDPAttribute("mid", mid)) }
            for ext in section.extensions { a.append(SDPAttribute("extmap", "\(ext.id) \(ext.uri)")) }
            a.append(SDPAttribute(section.direction.rawValue))
            if !section.receiveRids.isEmpty {
                for rid in section.receiveRids { a.append(SDPAttribute("rid", "\(rid) recv")) }
                a.append(SDPAttribute("simulcast", "recv " + section.receiveRids.joined(separator: ";")))
            }
            if let consumer = section.consumer {
                a.append(SDPAttribute("msid", "\(section.streamID ?? "parley") \(consumer.id)"))
            }
            a.append(SDPAttribute("rtcp-mux"))
            if offered.has("rtcp-rsize") { a.append(SDPAttribute("rtcp-rsize")) }
            for codec in section.codecs {
                a.append(SDPAttribute("rtpmap", "\(codec.payloadType) \(codec.name)/\(codec.clockRate)" + (codec.channels.map { "/\($0)" } ?? "")))
                for feedback in codec.feedback { a.append(SDPAttribute("rtcp-fb", "\(codec.payloadType) \(feedback)")) }
                if let fmtp = codec.fmtp { a.append(SDPAttribute("fmtp", "\(codec.payloadType) \(fmtp)")) }
            }
            if let consumer = section.consumer {
                let hasRTX = section.codecs.contains { $0.name.lowercased() == "rtx" }
                if hasRTX { a.append(SDPAttribute("ssrc-group", "FID \(consumer.ssrc) \(consumer.rtxSSRC)")) }
                for ssrc in hasRTX ? [consumer.ssrc, consumer.rtxSSRC] : [consumer.ssrc] {
                    a.append(SDPAttribute("ssrc", "\(ssrc) cname:\(transport.cname)"))
                    a.append(SDPAttribute("ssrc", "\(ssrc) msid:\(section.streamID ?? "parley") \(consumer.id)"))
                }
            }
            a.append(SDPAttribute("candidate", "1 1 udp 2130706431 \(candidateAddress) \(port) typ host"))
            // RFC 6544 passive TCP on the same port, for networks that block UDP: lower priority.
            if iceTCP { a.append(SDPAttribute("candidate", "2 1 tcp 1518280447 \(candidateAddress) \(port) typ host tcptype passive")) }
            a.append(SDPAttribute("end-of-candidates"))
            media.attributes = a
            session.media.append(media)
        }
        return session.serialized
    }
}
