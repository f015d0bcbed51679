import ParleyBase
import ParleyWire
import ParleyTransport

/// Reception statistics of one incoming RTP stream (RFC 3550 Appendix A.1, A.3, A.8), from which
/// receiver reports are built.
public struct ReceiveStatistics: Sendable {
    private var started = false
    private var baseSequence: UInt16 = 0
    public private(set) var maxSequence: UInt16 = 0
    private var cycles: UInt32 = 0
    public private(set) var received: UInt32 = 0
    private var expectedPrior: UInt32 = 0
    private var receivedPrior: UInt32 = 0
    private var jitter: Double = 0
    private var lastTransit: Int64?
    private var lastSenderReport: UInt32 = 0
    private var lastSenderReportArrival: Nanoseconds = 0

    public init() {}

    public mutating func update(sequence: UInt16, timestamp: UInt32, arrival: Nanoseconds, clockRate: UInt32) {
        if !started {
            started = true
            baseSequence = sequence
            maxSequence = sequence
        } else if SequenceNumber.isNewer(sequence, than: maxSequence) {
            if sequence < maxSequence { cycles &+= 1 << 16 }
            maxSequence = sequence
        }
        received &+= 1
        let arrivalTicks = Int64(arrival / 1000) * Int64(clockRate) / 1_000_000
        let transit = arrivalTicks &- Int64(timestamp)
        if let lastTransit {
            let d = Double(abs(transit &- lastTransit))
            jitter += (d - jitter) / 16
        }
        lastTransit = transit
    }

    public mutating func senderReportArrived(_ report: SenderReport, at now: Nanoseconds) {
        lastSenderReport = report.compactNTP
        lastSenderReportArrival = now
    }

    public var hasData: Bool { started }

    /// Packets the sender numbered that never came (RFC 3550 §A.3), without closing a report interval.
    public var cumulativeLost: Int {
        guard started else { return 0 }
        return max(0, Int(cycles + UInt32(maxSequence)) - Int(baseSequence) + 1 - Int(received))
    }

    public mutating func reportBlock(ssrc: UInt32, now: Nanoseconds) -> ReportBlock {
        let extendedMax = cycles + UInt32(maxSequence)
        let expected = extendedMax &- UInt32(baseSequence) &+ 1
        let lost = Int64(expected) - Int64(received)
        let expectedInterval = expected &- expectedPrior
        let receivedInterval = received &- receivedPrior
        expectedPrior = expected
        receivedPrior = received
        let lostInterval = Int64(expectedInterval) - Int64(receivedInterval)
        let fraction: UInt8 = expectedInterval == 0 || lostInterval <= 0 ? 0 : UInt8(min(255, (lostInterval << 8) / Int64(expectedInterval)))
        var delay: UInt32 = 0
        if lastSenderReport != 0 {
            // DLSR in units of 1/65536 s.
            delay = UInt32(truncatingIfNeeded: (now &- lastSenderReportArrival) * 65536 / 1_000_000_000)
        }
        return ReportBlock(ssrc: ssrc, fractionLost: fraction, cumulativeLost: Int32(clamping: lost),
                           highestSequence: extendedMax, jitter: UInt32(jitter), lastSenderReport: lastSenderReport,
                           delaySinceLastSenderReport: delay)
    }
}

/// At most one keyframe request per interval; a request inside the interval is remembered and sent
/// when it ends (after mediasoup's KeyFrameRequestManager).
public struct KeyframeRequestThrottle: Sendable {
    public var interval: Nanoseconds
    private var lastSent: Nanoseconds?
    public private(set) var pending = false

    public init(interval: Nanoseconds = .milliseconds(300)) { self.interval = interval }

    /// True if a request should go out now.
    public mutating func request(now: Nanoseconds) -> Bool {
        if let lastSent, now < lastSent + interval {
            pending = true
            return false
        }
        lastSent = now
        pending = false
        return true
    }

    /// True if a remembered request is due.
    public mutating func poll(now: Nanoseconds) -> Bool {
        guard pending else { return false }
        return request(now: now)
    }

    /// A keyframe arrived: nothing is owed any more.
    public mutating func satisfied() { pending = false }
}
