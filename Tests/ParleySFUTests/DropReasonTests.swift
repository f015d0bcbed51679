import ParleyBase
import ParleyMediaAPI
@testable import ParleySFU
import ParleyTransport
import ParleyWire
import Testing

/// Every dropped packet is counted under its reason, and `/healthz` shows each reason.
@Suite struct DropReasonTests {
    /// An RTP-looking datagram (version 2, payload type 96) that is not SRTP of anyone's.
    let fakeRTP: [UInt8] = [0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7] + [UInt8](repeating: 0xAB, count: 40)

    @Test func mediaAfterTheICECheckButBeforeDTLSIsCountedAsMediaBeforeSRTP() throws {
        let network = FakeNetwork()
        let peer = try TestPeer(port: 5001)
        network.add(peer)
        let result = try network.core.negotiate(NegotiationRequest(meetingID: "m", participantID: "p", transportID: nil, role: .whip,
                                                                   offer: SessionDescription(parsing: peer.offer(sending: true))), now: network.now)
        peer.answer = try SessionDescription(parsing: result.answer)
        network.send(peer.bindingRequest(), from: peer.address)
        network.send(fakeRTP, from: peer.address)
        #expect(network.core.counters.dropped[.mediaBeforeSRTP] == 1)
        // The same bytes from an address no check came from belong to nobody.
        network.send(fakeRTP, from: PeerAddress(ipv4: (127, 0, 0, 9), port: 9))
        #expect(network.core.counters.dropped[.unknownSender] == 1)
        #expect(network.core.counters.dropped.total == 2)
    }

    @Test func theSecureTransportTellsDTLSBeforeICEAndAWrongAddressApart() throws {
        let dtlsRecord: [UInt8] = [22, 0xFE, 0xFD] + [UInt8](repeating: 0, count: 20)
        let fresh = try SecureTransport(context: DTLSContext(certificate: DTLSCertificate()), remoteFingerprint: nil)
        #expect(receive(dtlsRecord, by: fresh, from: PeerAddress(ipv4: (127, 0, 0, 1), port: 5001)) == .dropped(.dtlsBeforeICE))

        let network = FakeNetwork()
        let (publisher, _) = try network.whipPublisherAndWHEPPlayer()
        let transport = try #require(network.core.transports.values.first { $0.remoteAddress == publisher.address })
        let elsewhere = PeerAddress(ipv4: (127, 0, 0, 1), port: 7777)
        #expect(receive(dtlsRecord, by: transport.secure, from: elsewhere) == .dropped(.wrongAddress))
        #expect(receive(fakeRTP, by: transport.secure, from: elsewhere) == .dropped(.wrongAddress))
    }

    @Test func eachWayATransportRefusesADatagramHasItsCounter() {
        let cases: [(SecureTransport.DropReason, DropReason)] = [
            (.stun(.notSTUN(.truncated("header"))), .malformed), (.stun(.badIntegrity), .unauthenticated),
            (.stun(.wrongUsername("x")), .unauthenticated), (.srtp(.refused(7)), .unauthenticated), (.dtlsBeforeICE, .dtlsBeforeICE),
            (.mediaBeforeSRTP, .mediaBeforeSRTP), (.wrongAddress, .wrongAddress), (.unknown, .malformed),
        ]
        for (refusal, counter) in cases { #expect(WorkerCore.dropReason(refusal) == counter, "\(refusal)") }
    }

    @Test func aPacketThatCannotBeEncryptedIsCountedNotSent() throws {
        // Not connected: no SRTP keys to encrypt with.
        let secure = try SecureTransport(context: DTLSContext(certificate: DTLSCertificate()), remoteFingerprint: nil)
        let stream = SendStream(path: SendPath(secure: secure))
        let output = CollectingOutput()
        let slot = output.reserveSlot()
        let length = RTPHeader.writeFixed(into: slot, hasExtension: false, marker: false, payloadType: 96, sequenceNumber: 1, timestamp: 0, ssrc: stream.ssrc)
        var counters = PacketCounters()
        #expect(stream.send(slot, length: length + 20, repair: false, to: PeerAddress(ipv4: (127, 0, 0, 1), port: 1), output: output, counters: &counters) == nil)
        #expect(counters.dropped[.encryptionFailed] == 1)
        #expect(output.sent.isEmpty)
    }

    @Test func healthShowsEveryCounterAndSumsLoseNone() {
        var counters = PacketCounters()
        for (offset, (_, keyPath)) in PacketCounters.counts.enumerated() { counters[keyPath: keyPath] = offset + 1 }
        for (offset, reason) in DropReason.allCases.enumerated() { counters.dropped[reason] = 100 + offset }
        // Every stored count is listed (a new field left out of `counts` fails here).
        let stored = Mirror(reflecting: counters).children.filter { $0.value is Int }.compactMap(\.label)
        #expect(Set(stored) == Set(PacketCounters.counts.map(\.name)))
        let shown = counters.dictionary
        #expect(shown.count == PacketCounters.counts.count + DropReason.allCases.count)
        #expect(Set(DropReason.allCases.map(\.counterName)).count == DropReason.allCases.count)
        for reason in DropReason.allCases { #expect(shown[reason.counterName] == counters.dropped[reason]) }
        let doubled = (counters + counters).dictionary
        for (name, value) in shown { #expect(doubled[name] == 2 * value, "\(name)") }
        // The names operators and tests already read stay as they were.
        for name in ["droppedBlocked", "droppedDuplicate", "droppedMalformed", "droppedUnauthenticated", "droppedUnknownSender", "droppedUnroutable",
                     "rtpReceived", "rtpForwarded"] {
            #expect(shown[name] != nil, "\(name)")
        }
    }

    private func receive(_ bytes: [UInt8], by secure: SecureTransport, from address: PeerAddress) -> SecureTransport.Received {
        var buffer = bytes + [UInt8](repeating: 0, count: 64)
        return buffer.withUnsafeMutableBytes { secure.receive($0, length: bytes.count, from: address, now: .seconds(1000)) }
    }
}
