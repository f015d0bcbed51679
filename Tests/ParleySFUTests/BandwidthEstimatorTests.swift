import ParleyBase
import ParleyTransport
import Testing
@testable import ParleySFU

/// The estimator against a simulated bottleneck: a FIFO link of some capacity with a 20 ms
/// propagation delay and a 300 ms queue (tail drop), a sender that sends at whatever the estimate
/// says, feedback every 100 ms.
@Suite struct BandwidthEstimatorTests {
    struct Bottleneck {
        var capacity: Int
        var busyUntil: Nanoseconds = 0
        static let propagation: Nanoseconds = 20_000_000
        static let queueLimit: Nanoseconds = 300_000_000

        /// When a packet sent at `time` arrives, or nil when the queue drops it.
        mutating func carry(size: Int, at time: Nanoseconds) -> Nanoseconds? {
            let start = max(time, busyUntil)
            guard start - time <= Self.queueLimit else { return nil }
            busyUntil = start + Nanoseconds(size * 8) * 1_000_000_000 / Nanoseconds(capacity)
            return busyUntil + Self.propagation
        }
    }

    struct Simulation {
        var estimator = BandwidthEstimator()
        var link: Bottleneck
        var now: Nanoseconds = 1_000_000_000
        var inFlight: [PacketResult] = []
        var credit = 0.0
        /// Pad up to twice the estimate, as the SFU probes when the estimate holds video back.
        var probing = false

        /// Runs `seconds` of a sender following the estimate; returns the estimates seen each second.
        mutating func run(seconds: Int) -> [Int] {
            var perSecond: [Int] = []
            for step in 1...(seconds * 200) {
                now += 5_000_000
                credit += Double(estimator.estimate) * (probing && estimator.usage == .normal ? 2 : 1) * 0.005 / 8
                while credit >= 1200 {
                    credit -= 1200
                    inFlight.append(PacketResult(sentAt: now, size: 1200, arrivedAt: link.carry(size: 1200, at: now)))
                }
                if step % 20 == 0 {
                    // Feedback covers what arrived by now (and what was lost), in send order.
                    let reported = inFlight.prefix { $0.arrivedAt.map { $0 <= now } ?? true }
                    inFlight.removeFirst(reported.count)
                    estimator.update(Array(reported), now: now)
                }
                if step % 200 == 0 { perSecond.append(estimator.estimate) }
            }
            return perSecond
        }
    }

    @Test func theEstimateFindsTheBottleneckFollowsItDownAndClimbsBackWhenItReturns() {
        var simulation = Simulation(link: Bottleneck(capacity: 1_000_000))
        let settled = simulation.run(seconds: 20)
        let late = settled.suffix(10)
        #expect(late.allSatisfy { (500_000...1_300_000).contains($0) }, "1 Mb/s link: \(settled)")

        simulation.link.capacity = 300_000
        let squeezed = simulation.run(seconds: 10)
        #expect(squeezed.suffix(5).allSatisfy { (120_000...420_000).contains($0) }, "300 kb/s link: \(squeezed)")
        #expect(squeezed.prefix(3).contains { $0 < 600_000 }, "reacts within 3 s: \(squeezed)")

        simulation.link.capacity = 3_000_000
        let recovered = simulation.run(seconds: 25)
        #expect(recovered.suffix(3).allSatisfy { $0 >= 1_500_000 }, "3 Mb/s link again: \(recovered)")
    }

    @Test func heavyLossBringsTheEstimateDownEvenWithoutQueueing() {
        var estimator = BandwidthEstimator()
        var now: Nanoseconds = 1_000_000_000
        var sent: Nanoseconds = now
        for _ in 0..<50 {
            now += 100_000_000
            // 100 packets in 100 ms, every fifth lost, the rest arriving with constant delay.
            let results = (0..<100).map { index -> PacketResult in
                sent += 1_000_000
                return PacketResult(sentAt: sent, size: 1200, arrivedAt: index % 5 == 0 ? nil : sent + 30_000_000)
            }
            estimator.update(results, now: now)
        }
        #expect(estimator.lossFraction == 0.2)
        #expect(estimator.estimate < BandwidthEstimator.initialBitrate / 2, "\(estimator.estimate)")
    }

    @Test func steadyFivePercentLossInSmallFeedbacksDoesNotBringTheEstimateDown() {
        // Eight packets per 100 ms feedback, one in twenty lost: a single feedback often shows
        // 12.5 %, but the loss rate is 5 %, which GCC holds at.
        var estimator = BandwidthEstimator()
        var now: Nanoseconds = 1_000_000_000
        var sent: Nanoseconds = now
        var number = 0
        for _ in 0..<100 {
            now += 100_000_000
            let results = (0..<8).map { _ -> PacketResult in
                sent += 12_500_000
                number += 1
                return PacketResult(sentAt: sent, size: 1200, arrivedAt: number % 20 == 0 ? nil : sent + 30_000_000)
            }
            estimator.update(results, now: now)
        }
        #expect((0.04...0.09).contains(estimator.lossFraction), "\(estimator.lossFraction)")
        #expect(estimator.estimate >= BandwidthEstimator.initialBitrate, "\(estimator.estimate)")
    }

    @Test func probingFindsReturnedBandwidthFasterThanTheSteadyClimb() {
        func secondsToReach(_ target: Int, probing: Bool) -> Int? {
            var simulation = Simulation(link: Bottleneck(capacity: 300_000))
            _ = simulation.run(seconds: 15)
            simulation.link.capacity = 3_000_000
            simulation.probing = probing
            return simulation.run(seconds: 30).firstIndex { $0 >= target }.map { $0 + 1 }
        }
        let steady = secondsToReach(1_500_000, probing: false)
        let probed = secondsToReach(1_500_000, probing: true)
        #expect(probed != nil && steady != nil && probed! * 2 <= steady!, "probing \(String(describing: probed)) s, steady \(String(describing: steady)) s")
    }
}
