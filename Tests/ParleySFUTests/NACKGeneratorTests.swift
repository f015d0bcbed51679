import ParleyBase
import Testing
import ParleyTransport
@testable import ParleySFU

@Suite struct NACKGeneratorTests {
    @Test(arguments: [UInt16(0), 32767, 65533])
    func gapsAreAskedForAndRepairsClearThem(start: UInt16) {
        var generator = NACKGenerator()
        generator.received(start, now: 0)
        generator.received(start &+ 3, now: 0)  // start+1 and start+2 lost, across 65535 → 0 when start is 65533
        #expect(generator.due(now: 0) == [start &+ 1, start &+ 2])
        #expect(generator.due(now: .milliseconds(50)).isEmpty)  // not again before the retry interval
        generator.received(start &+ 1, now: .milliseconds(60))  // repaired
        #expect(generator.due(now: .milliseconds(120)) == [start &+ 2])
        generator.received(start &+ 2, now: .milliseconds(130))
        #expect(generator.missingCount == 0)
    }

    @Test func hopelessPacketsAreGivenUp() {
        var generator = NACKGenerator()
        generator.received(10, now: 0)
        generator.received(12, now: 0)
        var asked = 0
        var now: Nanoseconds = 0
        while now < .seconds(2) {
            asked += generator.due(now: now).count
            now += .milliseconds(20)
        }
        #expect(asked == generator.maximumTries)
        #expect(generator.missingCount == 0)
        // A jump too large to repair starts over instead of asking for hundreds of packets.
        generator.received(5000, now: now)
        #expect(generator.due(now: now).isEmpty)
    }
}

@Suite struct NACKGeneratorStreamTests {
    @Test func everyLossInALongStreamIsAskedForOnce() {
        var generator = NACKGenerator()
        var lost: Set<UInt16> = []
        var asked: Set<UInt16> = []
        var now: Nanoseconds = 0
        var sequence: UInt16 = 65000
        for index in 0..<3000 {
            // About one packet in twenty lost, scattered (single losses and runs), the same every run.
            if index > 0, (index &* 7919) % 97 < 5 { lost.insert(sequence) } else { generator.received(sequence, now: now) }
            sequence &+= 1
            now += .milliseconds(5)
            if now % .milliseconds(20) == 0 { asked.formUnion(generator.due(now: now)) }
        }
        #expect(!lost.isEmpty)
        #expect(asked == lost)
    }
}
