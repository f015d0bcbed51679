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
