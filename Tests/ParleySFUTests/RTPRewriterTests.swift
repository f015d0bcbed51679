import ParleyTransport
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

    @Test func keyframeRequestsAreThrottledAndRememberedWithinTheInterval() {
        var throttle = KeyframeRequestThrottle(interval: .milliseconds(300))
        let answers = [throttle.request(now: 0), throttle.request(now: .milliseconds(100)), throttle.poll(now: .milliseconds(200)),
                       throttle.poll(now: .milliseconds(300)), throttle.poll(now: .milliseconds(700))]
        #expect(answers == [true, false, false, true, false])
    }
}
