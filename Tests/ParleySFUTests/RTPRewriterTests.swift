import ParleyBase
import ParleyTransport
import ParleyWire
import Testing
@testable import ParleySFU

@Suite struct RTPRewriterTests {
    @Test func switchingSourcesKeepsSequenceAndTimestampContinuous() {
        var rewriter = RTPRewriter()
        var out: [(UInt16, UInt32)] = []
        for i in 0..<5 { out.append(rewriter.rewrite(sequence: 65533 &+ UInt16(i), timestamp: 1000 + UInt32(i) * 3000, now: UInt64(i) * 33_000_000, clockRate: 90000)!) }
        rewriter.switchSource()
        for i in 0..<5 { out.append(rewriter.rewrite(sequence: 100 + UInt16(i), timestamp: 4_000_000_000 &+ UInt32(i) * 3000, now: 200_000_000 + UInt64(i) * 33_000_000, clockRate: 90000)!) }
        for (a, b) in zip(out, out.dropFirst()) { #expect(b.0 == a.0 &+ 1) }
        // 200 ms − 132 ms of silence between sources becomes 68 ms of RTP time (6120 ticks).
        #expect(out[5].1 &- out[4].1 == 6120)
        #expect(out[6].1 &- out[5].1 == 3000)
    }

    @Test func packetsFromBeforeTheSwitchPointAreDroppedAndNACKsMapBack() {
        var rewriter = RTPRewriter()
        _ = rewriter.rewrite(sequence: 10, timestamp: 0, now: 0, clockRate: 48000)
        rewriter.switchSource()
        let first = rewriter.rewrite(sequence: 500, timestamp: 0, now: 20_000_000, clockRate: 48000)!
        let late = rewriter.rewrite(sequence: 499, timestamp: 0, now: 21_000_000, clockRate: 48000)
        #expect(late == nil)
        #expect(rewriter.incomingSequence(of: first.sequence) == 500)
        #expect(rewriter.incomingSequence(of: first.sequence &- 1) == nil)
    }

    /// The soak found audio dropped for 32,768 packets once a stream had gone half the sequence
    /// space past the packet it started with (its sync point looked newer than everything).
    @Test func aStreamIsForwardedWholeForLongerThanTheSequenceSpace() {
        var rewriter = RTPRewriter()
        var last: UInt16?
        for i in 0..<140_000 {
            let sequence = UInt16(truncatingIfNeeded: 40_000 + i)
            guard let out = rewriter.rewrite(sequence: sequence, timestamp: UInt32(i) * 960, now: UInt64(i) * 20_000_000, clockRate: 48000) else {
                Issue.record("packet \(i) (sequence \(sequence)) was dropped")
                return
            }
            if let last, out.sequence != last &+ 1 {
                Issue.record("packet \(i): outgoing \(out.sequence) after \(last)")
                return
            }
            last = out.sequence
        }
        // Late packets are still forwarded and map back; one from further back than anything useful is not.
        let newest = UInt16(truncatingIfNeeded: 40_000 + 139_999)
        #expect(rewriter.rewrite(sequence: newest &- 100, timestamp: 0, now: 2_800_000_000_000, clockRate: 48000) != nil)
        #expect(rewriter.incomingSequence(of: last! &- 100) == newest &- 100)
        #expect(rewriter.rewrite(sequence: newest &- 30_000, timestamp: 0, now: 2_800_000_000_000, clockRate: 48000) == nil)
    }

    @Test func keyframeRequestsAreThrottledAndRememberedWithinTheInterval() {
        var throttle = KeyframeRequestThrottle(interval: .milliseconds(300))
        let answers = [throttle.request(now: 0), throttle.request(now: .milliseconds(100)), throttle.poll(now: .milliseconds(200)),
                       throttle.poll(now: .milliseconds(300)), throttle.poll(now: .milliseconds(700))]
        #expect(answers == [true, false, false, true, false])
    }
}

@Suite struct VP8RewriterTests {
    /// A VP8 payload with a 15-bit picture id and a TL0PICIDX.
    func payload(pictureID: UInt16, tl0: UInt8) -> [UInt8] {
        [0x90, 0xC0, 0x80 | UInt8(pictureID >> 8), UInt8(pictureID & 0xFF), tl0, 0x9D, 0x01, 0x2A]
    }

    func read(_ bytes: [UInt8]) -> (UInt16, UInt8) {
        let descriptor = try! bytes.withUnsafeBytes { try VP8PayloadDescriptor(parsing: $0) }
        return (descriptor.pictureID!, descriptor.tl0PictureIndex!)
    }

    @Test func pictureNumberingContinuesAcrossASourceChangeAndResendsKeepTheirNumbers() {
        var rewriter = VP8Rewriter()
        var sent: [(UInt16, UInt8)] = []
        func send(_ pictureID: UInt16, _ tl0: UInt8, resend: Bool = false) {
            var bytes = payload(pictureID: pictureID, tl0: tl0)
            bytes.withUnsafeMutableBytes { rewriter.rewrite($0, retransmission: resend) }
            sent.append(read(bytes))
        }
        send(30000, 10); send(30001, 11)
        #expect(sent.map(\.0) == [30000, 30001], "the first source keeps its numbers")
        // Another layer, numbered far behind: it continues from the last picture sent.
        rewriter.switchSource()
        send(100, 200); send(101, 201)
        #expect(sent.suffix(2).map(\.0) == [30002, 30003] && sent.suffix(2).map(\.1) == [12, 13])
        send(100, 200, resend: true)
        #expect(sent.last! == (30002, 12))
        // Wrapping at 15 bits.
        rewriter.switchSource()
        send(0x7FFF, 0); send(0, 1)
        #expect(sent.suffix(2).map(\.0) == [30004, 30005])
    }
}
