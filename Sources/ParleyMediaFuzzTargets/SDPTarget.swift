import ParleyBase
import ParleyMediaAPI
import ParleySFU
import ParleyTransport
import ParleyWire

/// SDP: the parser and writer, then the offer handling of WHIP, WHEP and the web client's
/// signaling — `WorkerCore.negotiate` on fake time, with no socket — whose answer must be SDP
/// the parser reads back, one m-line per offered one.
package enum SDPTarget {
    /// One certificate for every input: making one costs milliseconds.
    static let dtlsContext: DTLSContext = {
        do { return try DTLSContext(certificate: DTLSCertificate(commonName: "parley-fuzz")) } catch { fatalError("DTLS context: \(error)") }
    }()

    static func run(_ data: UnsafeRawBufferPointer) {
        let text = String(decoding: data, as: UTF8.self)
        guard let offer = parse(text) else { return }
        // One way of answering per input, picked by its length (answering costs most of the time):
        // a web client that offers again and is watched by a WHEP player, a WHIP publisher, a WHEP player.
        switch data.count % 3 {
        case 0: negotiate(offer, role: .participant, renegotiate: true)
        case 1: negotiate(offer, role: .whip, renegotiate: false)
        default: negotiate(offer, role: .whep, renegotiate: false)
        }
    }

    /// Parses `text`; on success checks that writing loses nothing: every line comes back byte
    /// for byte (m-lines as their fields), and the written form parses the same.
    package static func parse(_ text: String) -> SessionDescription? {
        guard let description = try? SessionDescription(parsing: text) else { return nil }
        let serialized = description.serialized
        guard let again = try? SessionDescription(parsing: serialized) else { fatalError("a serialized SDP does not parse") }
        require(again == description, "SDP round trip changed the description")
        // Writing puts a level's other lines before its attributes; each kind keeps its order.
        require(lines(of: serialized) == lines(of: text, normalizingMedia: true), "SDP lines were lost or changed in writing")
        return description
    }

    /// Non-empty lines as the parser cuts them (on CR and LF bytes), `a=` lines apart from the
    /// others; `m=` lines reduced to what the parser keeps of them.
    static func lines(of text: String, normalizingMedia: Bool = false) -> (attributes: [ArraySlice<UInt8>], others: [ArraySlice<UInt8>]) {
        let bytes = Array(text.utf8)
        var attributes: [ArraySlice<UInt8>] = [], others: [ArraySlice<UInt8>] = []
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != 0x0A, bytes[end] != 0x0D { end += 1 }
            if end > start {
                var line = bytes[start..<end]
                let type = line.first!, isTyped = line.count >= 2 && line[start + 1] == UInt8(ascii: "=")
                if isTyped && type == UInt8(ascii: "a") {
                    attributes.append(line)
                } else {
                    if normalizingMedia, isTyped, type == UInt8(ascii: "m") {
                        let parts = String(decoding: line.dropFirst(2), as: UTF8.self).split(separator: " ").map(String.init)
                        let port = Int(parts[1].split(separator: "/").first ?? "")!
                        line = Array("m=\(parts[0]) \(port) \(parts[2]) \(parts.dropFirst(3).joined(separator: " "))".utf8)[...]
                    }
                    others.append(line)
                }
            }
            start = end + 1
        }
        return (attributes, others)
    }

    /// What the SFU does with an offer: answer it on a new transport; with `renegotiate`, as the
    /// web client does, offer the same again on that transport, then let a WHEP player into the
    /// meeting. Every answer must parse and match the offer's m-lines.
    static func negotiate(_ offer: SessionDescription, role: TransportRole, renegotiate: Bool) {
        let core = WorkerCore(announceAddress: "192.0.2.1", port: 40_000, dtlsContext: dtlsContext, ntpClock: NTPClock(ntp: 3_900_000_000 << 32, at: 0), events: { _ in })
        let output = CollectingOutput()
        defer { core.closeAll(reason: "fuzz input done", now: 9_000_000, output: output) }
        let request = NegotiationRequest(meetingID: "m", participantID: "p", transportID: nil, role: role, offer: offer)
        guard let first = try? core.negotiate(request, now: 1_000_000) else { return }
        check(first, answering: offer)
        guard renegotiate else { return }
        var again = request
        again.transportID = first.transportID
        if let second = try? core.negotiate(again, now: 2_000_000) {
            check(second, answering: offer)
            require(second.transportID == first.transportID, "a renegotiation moved to another transport")
        }
        let player = NegotiationRequest(meetingID: "m", participantID: "whep", transportID: nil, role: .whep, offer: offer)
        if let third = try? core.negotiate(player, now: 3_000_000) { check(third, answering: offer) }
        core.tick(now: 4_000_000, output: output)
    }

    static func check(_ result: NegotiationResult, answering offer: SessionDescription) {
        guard let answer = try? SessionDescription(parsing: result.answer) else { fatalError("the SFU's answer is not SDP it can read") }
        require(answer.media.count == offer.media.count, "the answer has \(answer.media.count) m-lines for \(offer.media.count) offered")
        require(answer.media.map(\.mid) == offer.media.map(\.mid), "the answer's mids are not the offer's")
    }
}
