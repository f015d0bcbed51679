import Testing
@testable import ParleyWire

@Suite struct RTCPTests {
    @Test func pictureLossIndicationMatchesTheRFCLayout() throws {
        // v=2, p=0, FMT=1, PSFB(206), length=2; sender 0x11111111, media 0x22222222
        let wire = bytes("81 ce 0002 11111111 22222222")
        var out: [UInt8] = []
        PictureLossIndication(senderSSRC: 0x1111_1111, mediaSSRC: 0x2222_2222).write(into: &out)
        #expect(out == wire)
        #expect(try RTCPPacket.parseCompound(wire) == [.pictureLossIndication(.init(senderSSRC: 0x1111_1111, mediaSSRC: 0x2222_2222))])
    }

    @Test func nackPacksRunsIntoBitmasksAcrossWraparound() throws {
        let nack = GenericNACK(senderSSRC: 1, mediaSSRC: 2, lost: [65534, 65535, 0, 3, 40])
        // 65535, 0 and 3 are 1, 2 and 5 after 65534: bits 0, 1 and 4.
        #expect(nack.pairs == [.init(65534, 0b1_0011), .init(40, 0)])
        var out: [UInt8] = []
        nack.write(into: &out)
        // v=2, FMT=1, RTPFB(205), length=4
        #expect(Array(out[0..<4]) == [0x81, 0xCD, 0x00, 0x04])
        guard case .nack(let parsed) = try RTCPPacket.parseCompound(out).first else { Issue.record("not a NACK"); return }
        #expect(parsed.lostSequenceNumbers == [65534, 65535, 0, 3, 40])
    }

    @Test func compoundReportsRoundTrip() throws {
        let block = ReportBlock(ssrc: 9, fractionLost: 25, cumulativeLost: -3, highestSequence: 70000, jitter: 12, lastSenderReport: 0xABCD, delaySinceLastSenderReport: 65536)
        let packets: [RTCPPacket] = [
            .senderReport(.init(ssrc: 7, ntpTimestamp: 0x0102_0304_0506_0708, rtpTimestamp: 90000, packetCount: 10, octetCount: 1000, reports: [block])),
            .receiverReport(.init(ssrc: 8, reports: [block, block])),
            .sourceDescription(.init(chunks: [.init(ssrc: 7, cname: "parley-cname"), .init(ssrc: 8, cname: "x")])),
            .remb(.init(senderSSRC: 8, bitrate: 2_500_000, ssrcs: [1, 2])),
            .fullIntraRequest(.init(senderSSRC: 8, entries: [.init(ssrc: 5, sequenceNumber: 3)])),
            .goodbye(.init(sources: [7])),
        ]
        var out: [UInt8] = []
        for packet in packets { packet.write(into: &out) }
        let parsed = try RTCPPacket.parseCompound(out)
        #expect(parsed.count == packets.count)
        #expect(parsed[0] == packets[0] && parsed[1] == packets[1] && parsed[2] == packets[2] && parsed[4] == packets[4] && parsed[5] == packets[5])
        guard case .remb(let remb) = parsed[3] else { Issue.record("not REMB"); return }
        #expect(remb.ssrcs == [1, 2])
        #expect(remb.bitrate <= 2_500_000 && remb.bitrate > 2_490_000)  // 18-bit mantissa
        if case .senderReport(let sr) = parsed[0] { #expect(sr.compactNTP == 0x0304_0506) }
    }

    @Test func malformedCompoundsAreRejected() {
        #expect(throws: WireError.self) { try RTCPPacket.parseCompound(bytes("81 c9 0007 00000001")) }      // length beyond the datagram
        #expect(throws: WireError.self) { try RTCPPacket.parseCompound(bytes("41 c9 0001 00000001")) }      // version 1
        #expect(throws: WireError.self) { try RTCPPacket.parseCompound(bytes("81 c8 0001 00000001")) }      // SR too short
        #expect(throws: WireError.self) { try RTCPPacket.parseCompound(bytes("82 c9 0001 00000001")) }      // RR says 2 blocks, has none
        #expect(throws: WireError.self) { try RTCPPacket.parseCompound(bytes("81 cd 0002 00000001")) }      // NACK cut short
    }

    @Test func tenThousandMutatedCompoundsNeverCrash() {
        var sample: [UInt8] = []
        ReceiverReport(ssrc: 1, reports: [ReportBlock(ssrc: 2, fractionLost: 0, cumulativeLost: 0, highestSequence: 1, jitter: 0, lastSenderReport: 0, delaySinceLastSenderReport: 0)]).write(into: &sample)
        GenericNACK(senderSSRC: 1, mediaSSRC: 2, lost: [1, 2, 3]).write(into: &sample)
        SourceDescription(chunks: [.init(ssrc: 1, cname: "abc")]).write(into: &sample)
        var parsedSome = 0
        for input in fuzzCorpus(from: [sample], count: 10_000) {
            if (try? RTCPPacket.parseCompound(input)) != nil { parsedSome += 1 }
        }
        #expect(parsedSome > 0)
    }
}
