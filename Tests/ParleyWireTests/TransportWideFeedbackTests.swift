import Testing
@testable import ParleyWire

@Suite struct TransportWideFeedbackTests {
    /// A feedback packet Chrome sent (capture in olivermichel/webrtc-analysis, decoded by
    /// Wireshark): base 1, 9 packets, all received, run-length chunk, one byte of RTCP padding.
    @Test func aBrowsersFeedbackIsRead() throws {
        let packets = try RTCPPacket.parseCompound(bytes("afcd0007 00000001 dd586eb6 0001 0009 5e911000 2009 1c0c2c38 00040008 1801"))
        guard case .transportWideFeedback(let feedback) = packets.first else { Issue.record("\(packets)"); return }
        #expect(feedback.mediaSSRC == 0xDD586EB6 && feedback.baseSequence == 1 && feedback.referenceTime == 6_197_520 && feedback.feedbackCount == 0)
        #expect(feedback.arrivals.map { $0.map { Double($0) / 1000 } } == [7, 10, 21, 35, 35, 36, 36, 38, 44])
    }

    @Test func lossesLargeAndNegativeDeltasAndLongRunsSurviveARoundTrip() throws {
        var arrivals: [Int64?] = [1000, nil, nil, 2250, 100_000, 99_000, nil]   // a 97.75 ms gap, then 1 ms back
        arrivals += Array(repeating: nil, count: 40)                          // a long run of losses
        arrivals += (0..<30).map { Int64(200_000 + $0 * 500) }                // a long run of small deltas
        let feedback = TransportWideFeedback(senderSSRC: 1, mediaSSRC: 2, baseSequence: 65530, referenceTime: 0xFFFFFF, feedbackCount: 9,
                                             arrivals: arrivals)
        var wire: [UInt8] = []
        feedback.write(into: &wire)
        #expect(wire.count % 4 == 0)
        guard case .transportWideFeedback(let parsed) = try RTCPPacket.parseCompound(wire).first else { Issue.record("not feedback"); return }
        #expect(parsed == feedback)
        // Arrival times are carried in 250 µs ticks.
        let odd = TransportWideFeedback(senderSSRC: 1, mediaSSRC: 2, baseSequence: 0, referenceTime: 1, feedbackCount: 0, arrivals: [1100, 1400])
        var oddWire: [UInt8] = []
        odd.write(into: &oddWire)
        guard case .transportWideFeedback(let rounded) = try RTCPPacket.parseCompound(oddWire).first else { Issue.record("not feedback"); return }
        #expect(rounded.arrivals == [1000, 1250])
    }

    @Test func malformedFeedbackIsAnError() {
        // Fewer deltas than the chunks announce; status symbol 3; a chunk missing.
        for hex in ["8fcd0005 00000001 00000002 0000 0003 00000100 2003 0100",
                    "8fcd0005 00000001 00000002 0000 0001 00000100 7fff 0000",
                    "8fcd0004 00000001 00000002 0000 0010 00000100"] {
            #expect(throws: WireError.self) { try RTCPPacket.parseCompound(bytes(hex)) }
        }
    }
}
