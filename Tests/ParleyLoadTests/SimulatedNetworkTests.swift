import ParleyBase
import ParleyTestSupport
import Testing

/// The tests' network itself: what its links do to datagrams, on fake time.
@Suite struct SimulatedNetworkTests {
    /// Records what arrives and when; sends what it is told to.
    final class Host: NetworkEndpoint {
        let address: PeerAddress
        var arrivals: [(bytes: [UInt8], at: Nanoseconds)] = []
        var pending: [(bytes: [UInt8], to: PeerAddress)] = []
        init(port: UInt16) { address = PeerAddress(ipv4: (127, 0, 0, 1), port: port) }
        func receive(_ datagram: [UInt8], from sender: PeerAddress, now: Nanoseconds) { arrivals.append((datagram, now)) }
        func tick(now: Nanoseconds) {}
        func takeSent() -> [(bytes: [UInt8], to: PeerAddress)] {
            defer { pending.removeAll() }
            return pending
        }
    }

    func pair(_ link: LinkConditions) -> (SimulatedNetwork, Host, Host) {
        let network = SimulatedNetwork(now: 0)
        let a = Host(port: 1), b = Host(port: 2)
        network.attach(a)
        network.attach(b)
        network.setConditions(link, from: a.address, to: b.address)
        return (network, a, b)
    }

    @Test func aRateLimitQueuesDatagramsAndADelayAddsToIt() {
        // 1,250 bytes at 1 Mb/s take 10 ms each on the wire.
        let (network, a, b) = pair(LinkConditions(delay: .milliseconds(20), rate: 1_000_000))
        a.pending = (0..<5).map { ([UInt8](repeating: UInt8($0), count: 1250), b.address) }
        network.pump()
        #expect(b.arrivals.isEmpty)
        network.run(for: .milliseconds(100), step: .milliseconds(1))
        #expect(b.arrivals.map { $0.bytes[0] } == [0, 1, 2, 3, 4])
        #expect(b.arrivals.map(\.at) == [30, 40, 50, 60, 70].map { .milliseconds($0) })
    }

    @Test func lossAndReorderingHitOnlyTheDatagramsTheyApplyTo() {
        let (network, a, b) = pair(LinkConditions(dropEvery: 4, reorderEvery: 3, applies: { $0[0] < 100 }))
        a.pending = (0..<8).map { ([UInt8($0)], b.address) } + [([200], b.address)]
        network.pump()
        // The 3rd and 6th come after the one behind them; the 4th and 8th are lost; 200 passes untouched.
        #expect(b.arrivals.map { $0.bytes[0] } == [0, 1, 4, 2, 6, 5, 200])
        #expect(network.lost[.init(from: a.address, to: b.address)] == 2)
        // The other way is clean.
        b.pending = (0..<8).map { ([UInt8($0)], a.address) }
        network.pump()
        #expect(a.arrivals.map { $0.bytes[0] } == Array(0..<8))
    }

    @Test func randomLossIsTheShareAskedForAndTheSameForASeed() {
        func lostOf(seed: UInt64) -> Int {
            let network = SimulatedNetwork(now: 0, seed: seed)
            let a = Host(port: 1), b = Host(port: 2)
            network.attach(a)
            network.attach(b)
            network.setConditions(LinkConditions(lossRate: 0.1))
            a.pending = (0..<2000).map { _ in ([1], b.address) }
            network.pump()
            return 2000 - b.arrivals.count
        }
        let lost = lostOf(seed: 7)
        #expect((140...260).contains(lost))
        #expect(lostOf(seed: 7) == lost)
    }
}
