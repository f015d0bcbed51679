import Foundation
import ParleyBase
import ParleyTransport

/// What one transport-wide feedback says of one packet we sent: when it left, its size, and when
/// it arrived (nil: lost).
struct PacketResult {
    var sentAt: Nanoseconds
    var size: Int
    var arrivedAt: Nanoseconds?
}

/// Send-side bandwidth estimation towards one subscriber, after Google Congestion Control
/// (draft-ietf-rmcat-gcc-02, and libwebrtc's trendline variant): a delay-based part — packets
/// grouped in 5 ms bursts, the growth of one-way delay between groups smoothed and fitted by a
/// trendline, over- and under-use against an adaptive threshold, AIMD on the rate the subscriber
/// acknowledged — and a loss-based part; the estimate is the lower of the two.
struct BandwidthEstimator {
    static let initialBitrate = 1_500_000
    static let minimumBitrate = 30_000
    static let maximumBitrate = 30_000_000

    enum Usage: Equatable { case normal, overusing, underusing }

    private(set) var estimate = initialBitrate
    private(set) var usage = Usage.normal
    private var delayBased = initialBitrate
    private var lossBased = initialBitrate

    // Packet groups: a burst of packets sent within 5 ms.
    private struct Group {
        var firstSent: Nanoseconds
        var lastSent: Nanoseconds
        var lastArrival: Nanoseconds
        var firstArrival: Nanoseconds
    }
    private var current: Group?
    private var previous: Group?

    // Trendline filter over the accumulated delay.
    private var accumulatedDelay = 0.0
    private var smoothedDelay = 0.0
    private var samples: [(time: Double, delay: Double)] = []
    private var firstArrival: Nanoseconds?
    private var deltaCount = 0
    private static let windowSize = 20
    private static let smoothing = 0.9
    private static let thresholdGain = 4.0

    // Overuse detector.
    private var threshold = 12.5
    private var lastThresholdUpdate: Nanoseconds?
    private var timeOverUsing = 0.0
    private var overuseCount = 0
    private var previousTrend = 0.0

    // Rate control.
    private var lastIncrease: Nanoseconds?
    /// What the subscriber received over the last 500 ms, bits per second.
    private(set) var acknowledgedBitrate: Int?
    private var acknowledged: [(at: Nanoseconds, size: Int)] = []
    private var lastDecrease: Nanoseconds?

    /// Share of packets lost over the last 20 or more packets (libwebrtc's minimum: one feedback
    /// of a few packets says little, one loss in eight is not 12 % loss).
    private(set) var lossFraction = 0.0
    private var packetsCounted = 0
    private var packetsLost = 0
    private var lastLossUpdate: Nanoseconds?
    private static let lossWindowPackets = 20
    /// When feedback last came (none for a while: nothing was sent, the last verdict is stale).
    private(set) var lastFeedbackAt: Nanoseconds?

    /// Takes one feedback's results, in sequence order, and updates the estimate.
    mutating func update(_ results: [PacketResult], now: Nanoseconds) {
        guard !results.isEmpty else { return }
        lastFeedbackAt = now
        packetsCounted += results.count
        packetsLost += results.count { $0.arrivedAt == nil }
        let lossMeasured = packetsCounted >= Self.lossWindowPackets
        if lossMeasured {
            lossFraction = Double(packetsLost) / Double(packetsCounted)
            packetsCounted = 0
            packetsLost = 0
        }
        for result in results {
            guard let arrivedAt = result.arrivedAt else { continue }
            acknowledged.append((arrivedAt, result.size))
            addToGroup(sentAt: result.sentAt, arrivedAt: arrivedAt)
        }
        updateAcknowledgedBitrate()
        updateDelayBased(now: now)
        if lossMeasured { updateLossBased(now: now) }
        estimate = max(Self.minimumBitrate, min(Self.maximumBitrate, min(delayBased, lossBased)))
    }

    /// A receiver's own estimate (REMB) for subscribers that send no transport-wide feedback.
    mutating func bound(by bitrate: Int) {
        delayBased = max(Self.minimumBitrate, min(Self.maximumBitrate, bitrate))
        lossBased = delayBased
        estimate = delayBased
    }

    // MARK: Delay-based

    private mutating func addToGroup(sentAt: Nanoseconds, arrivedAt: Nanoseconds) {
        guard var group = current else {
            current = Group(firstSent: sentAt, lastSent: sentAt, lastArrival: arrivedAt, firstArrival: arrivedAt)
            return
        }
        if sentAt < group.firstSent { return }  // reordered before the group started: ignore
        if sentAt - group.firstSent <= 5_000_000 {
            group.lastSent = max(group.lastSent, sentAt)
            group.lastArrival = max(group.lastArrival, arrivedAt)
            current = group
            return
        }
        if let previous {
            let sendDelta = Double(Int64(bitPattern: group.lastSent &- previous.lastSent)) / 1e6
            let arrivalDelta = Double(Int64(bitPattern: group.lastArrival &- previous.lastArrival)) / 1e6
            addDelayGradient(arrivalDelta - sendDelta, sendDelta: sendDelta, arrival: group.lastArrival)
        }
        previous = group
        current = Group(firstSent: sentAt, lastSent: sentAt, lastArrival: arrivedAt, firstArrival: arrivedAt)
    }

    /// One group's delay gradient (ms) into the trendline, then the detector.
    private mutating func addDelayGradient(_ gradient: Double, sendDelta: Double, arrival: Nanoseconds) {
        deltaCount += 1
        accumulatedDelay += gradient
        smoothedDelay = Self.smoothing * smoothedDelay + (1 - Self.smoothing) * accumulatedDelay
        let start = firstArrival ?? arrival
        firstArrival = start
        samples.append((Double(arrival - start) / 1e6, smoothedDelay))
        if samples.count > Self.windowSize { samples.removeFirst() }
        guard samples.count == Self.windowSize else { return }
        let trend = Self.slope(samples)
        detect(trend: trend * Double(min(deltaCount, 60)) * Self.thresholdGain, sendDelta: sendDelta, now: arrival)
    }

    /// Least-squares slope of delay over time.
    private static func slope(_ points: [(time: Double, delay: Double)]) -> Double {
        let meanTime = points.reduce(0) { $0 + $1.time } / Double(points.count)
        let meanDelay = points.reduce(0) { $0 + $1.delay } / Double(points.count)
        var numerator = 0.0, denominator = 0.0
        for point in points {
            numerator += (point.time - meanTime) * (point.delay - meanDelay)
            denominator += (point.time - meanTime) * (point.time - meanTime)
        }
        return denominator == 0 ? 0 : numerator / denominator
    }

    private mutating func detect(trend: Double, sendDelta: Double, now: Nanoseconds) {
        if trend > threshold {
            timeOverUsing += sendDelta
            overuseCount += 1
            if timeOverUsing > 10, overuseCount > 1, trend >= previousTrend {
                timeOverUsing = 0
                overuseCount = 0
                usage = .overusing
            }
        } else if trend < -threshold {
            timeOverUsing = 0
            overuseCount = 0
            usage = .underusing
        } else {
            timeOverUsing = 0
            overuseCount = 0
            usage = .normal
        }
        previousTrend = trend
        // The threshold follows the trend slowly up and faster down, unless the trend jumps far
        // beyond it (a one-off spike must not teach it to ignore real congestion).
        let elapsed = lastThresholdUpdate.map { min(100, Double(now &- $0) / 1e6) } ?? 0
        lastThresholdUpdate = now
        if abs(trend) <= threshold + 15 {
            let gain = abs(trend) < threshold ? 0.039 : 0.0087
            threshold = min(600, max(6, threshold + gain * (abs(trend) - threshold) * elapsed))
        }
    }

    private mutating func updateDelayBased(now: Nanoseconds) {
        switch usage {
        case .overusing:
            // Back off below what actually got through, at most once per 200 ms.
            if lastDecrease.map({ now &- $0 > 200_000_000 }) ?? true {
                let base = acknowledgedBitrate ?? delayBased
                delayBased = max(Self.minimumBitrate, min(delayBased, Int(Double(base) * 0.85)))
                lastDecrease = now
            }
            lastIncrease = now
        case .underusing:
            // Queues are draining: hold until they are empty.
            lastIncrease = now
        case .normal:
            let elapsed = lastIncrease.map { Double(now &- $0) / 1e9 } ?? 0
            lastIncrease = now
            var increased = Double(delayBased) * pow(1.08, min(elapsed, 1.0))
            if let acknowledgedBitrate {
                // The path just carried this much without delay growing (a probe, usually): believe it.
                increased = max(increased, Double(acknowledgedBitrate) * 0.9)
                // Never far above what the subscriber showed it can take.
                increased = min(increased, Double(acknowledgedBitrate) * 1.5 + 10_000)
            }
            delayBased = max(delayBased, min(Self.maximumBitrate, Int(increased)))
        }
    }

    private mutating func updateAcknowledgedBitrate() {
        guard let newest = acknowledged.last?.at else { return }
        acknowledged.removeAll { newest &- $0.at > 500_000_000 }
        guard let oldest = acknowledged.first?.at, newest > oldest else { return }
        let bits = acknowledged.reduce(0) { $0 + $1.size } * 8
        acknowledgedBitrate = Int(Double(bits) / max(0.1, Double(newest - oldest) / 1e9))
    }

    // MARK: Loss-based

    /// Decrease on more than 10 % loss; hold between 2 and 10 %; below 2 %, grow 5 % per 100 ms
    /// (whatever the packet rate makes the window's length) and believe what just got through.
    private mutating func updateLossBased(now: Nanoseconds) {
        let elapsed = lastLossUpdate.map { min(1.0, Double(now &- $0) / 1e9) } ?? 0.1
        lastLossUpdate = now
        if lossFraction > 0.1 {
            lossBased = max(Self.minimumBitrate, Int(Double(min(lossBased, delayBased)) * (1 - 0.5 * lossFraction)))
        } else if lossFraction < 0.02 {
            var increased = Double(lossBased) * pow(1.05, elapsed / 0.1)
            if let acknowledgedBitrate { increased = max(increased, Double(acknowledgedBitrate) * 0.9) }
            lossBased = min(Self.maximumBitrate, max(lossBased, Int(increased)))
        }
    }
}

