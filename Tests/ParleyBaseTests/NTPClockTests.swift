import ParleyBase
import Testing

@Suite struct NTPClockTests {
    let clock = NTPClock(ntp: 3_900_000_000 << 32 | 0x8000_0000, at: .seconds(100))

    @Test func monotonicTimeAfterTheReferenceAdvancesTheNTPTime() {
        #expect(clock.ntp(at: .seconds(100)) == clock.ntpAtReference)
        // 1.25 s later: one second more and a quarter of 2^32 in the fraction.
        #expect(clock.ntp(at: .seconds(101) + .milliseconds(250)) == (UInt64(3_900_000_001) << 32 | 0xC000_0000))
        // Whole days do not overflow the conversion.
        #expect(clock.ntp(at: .seconds(100 + 86_400 * 30)) == clock.ntpAtReference + UInt64(86_400 * 30) << 32)
    }

    @Test func monotonicTimeBeforeTheReferenceGoesBack() {
        #expect(clock.ntp(at: .seconds(99) + .milliseconds(750)) == (UInt64(3_900_000_000) << 32 | 0x4000_0000))
        #expect(clock.ntp(at: 0) == clock.ntpAtReference - UInt64(100) << 32)
    }

    @Test func theSystemClockIsNearTheWallClock() {
        let system = NTPClock.system()
        let difference = Int64(bitPattern: WallClock.ntpNow() &- system.ntp(at: MonotonicClock.now()))
        // Within a second (2^32 NTP units) of reading the wall clock directly.
        #expect(abs(difference) < 1 << 32)
    }
}
