import Testing
@testable import ParleySFU

@Suite struct GaplessNumberingTests {
    @Test func dropsCloseTheGapAndLateNumbersKeepTheirPlace() {
        var numbering = GaplessNumbering(mask: 0xFFFF)
        numbering.reset(offset: 100)
        #expect(numbering.outgoing(10) == 110)
        numbering.drop(11)
        numbering.drop(12)
        #expect(numbering.outgoing(13) == 111)
        // 9 came late: numbered as before the drops.
        #expect(numbering.outgoing(9) == 109)
        numbering.drop(14)
        #expect(numbering.outgoing(15) == 112)
        // Retransmission requests map back across the drops.
        #expect([109, 110, 111, 112].map { numbering.incoming(of: $0) } == [9, 10, 13, 15])
    }

    /// A drop remembered from long ago must not lend its offset to numbers half the space later,
    /// when it would look newer than them again (for 16-bit sequence numbers and 7-bit picture IDs).
    @Test(arguments: [UInt16(0xFFFF), 0x7FFF, 0x7F])
    func oldDropsDoNotRenumberTheStreamLater(mask: UInt16) {
        var numbering = GaplessNumbering(mask: mask)
        numbering.reset(offset: 0)
        _ = numbering.outgoing(0)
        numbering.drop(1)
        numbering.drop(3)
        var previous = numbering.outgoing(2)
        #expect(numbering.outgoing(4) == (previous &+ 1) & mask)
        previous = (previous &+ 1) & mask
        for step in 5..<(Int(mask) * 3) {
            let out = numbering.outgoing(UInt16(truncatingIfNeeded: step) & mask)
            if out != (previous &+ 1) & mask {
                Issue.record("number \(step): outgoing \(out) after \(previous)")
                return
            }
            previous = out
        }
    }

    @Test func fifteenBitPictureIDsWrap() {
        var numbering = GaplessNumbering(mask: 0x7FFF)
        numbering.reset(offset: 0)
        #expect(numbering.outgoing(0x7FFE) == 0x7FFE)
        numbering.drop(0x7FFF)
        #expect(numbering.outgoing(0) == 0x7FFF)
        numbering.drop(1)
        #expect(numbering.outgoing(2) == 0)
        #expect(numbering.incoming(of: 0) == 2 && numbering.incoming(of: 0x7FFF) == 0 && numbering.incoming(of: 0x7FFE) == 0x7FFE)
    }

    @Test func aDuplicateDropOrAResetChangesNothingBack() {
        var numbering = GaplessNumbering(mask: 0xFFFF)
        numbering.reset(offset: 0)
        _ = numbering.outgoing(65534)
        numbering.drop(65535)
        numbering.drop(65535)  // another packet of the same dropped picture
        #expect(numbering.outgoing(0) == 65535)
        numbering.reset(offset: 5)
        #expect(numbering.outgoing(0) == 5 && numbering.incoming(of: 5) == 0)
    }

    @Test func moreDropsThanRememberedStillNumberTheNewestRight() {
        var numbering = GaplessNumbering(mask: 0xFFFF)
        numbering.reset(offset: 0)
        var outgoing: [UInt16] = []
        for incoming in UInt16(0)..<400 {
            if incoming % 2 == 1 { numbering.drop(incoming) } else { outgoing.append(numbering.outgoing(incoming)) }
        }
        #expect(outgoing == Array(0..<200))
        #expect(numbering.incoming(of: 199) == 398)
    }
}
