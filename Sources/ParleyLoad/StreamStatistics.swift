import Histogram
import ParleyBase
import ParleyTransport

/// What one participant measured of one stream it received.
public struct ReceivedStream: Sendable {
    public var packets = 0
    public var firstProbe: UInt32?
    public var highestProbe: UInt32 = 0
    public var firstPacketAt: Nanoseconds?
    /// RFC 3550 interarrival jitter, in nanoseconds.
    public var jitter: Double = 0
    private var lastTransit: Int64?
    public var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)

    public init() {}

    public mutating func record(_ probe: Probe, arrivedAt now: Nanoseconds) {
        packets += 1
        if firstPacketAt == nil { firstPacketAt = now }
        if firstProbe == nil { firstProbe = probe.sequence; highestProbe = probe.sequence }
        if probe.sequence > highestProbe { highestProbe = probe.sequence }
        if let first = firstProbe, probe.sequence < first { firstProbe = probe.sequence }
        let transit = Int64(bitPattern: now &- probe.sentAt)
        latency.record(UInt64(max(0, transit)) / 1000)  // microseconds
        if let lastTransit { jitter += (Double(abs(transit - lastTransit)) - jitter) / 16 }
        lastTransit = transit
    }

    /// Packets the sender numbered between the first and last seen, that never came.
    public var lost: Int {
        guard let firstProbe else { return 0 }
        return max(0, Int(highestProbe - firstProbe) + 1 - packets)
    }
}
