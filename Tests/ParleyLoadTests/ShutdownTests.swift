import Logging
import ParleyBase
import ParleyMediaAPI
import ParleyMediaNode
import ParleySFU
import ParleyTransport
import ParleyWire
import Testing
@testable import ParleyLoad

/// Issue 11: `parley serve` crashed with "double free or corruption (fasttop)" on
/// `parley-worker-0` when SIGTERM followed hang-ups. `SFU.stop()` only raised a flag, so the
/// process went on to exit while the worker threads were still closing and freeing OpenSSL state,
/// and exit's OpenSSL cleanup freed the same handlers. These tests run a real SFU on loopback
/// with load peers (Parley's own DTLS client) on real sockets.
@Suite(.timeLimit(.minutes(3))) struct ShutdownTests {
    /// Meets `count` peers publishing audio and video in one meeting and waits until every one
    /// of the SFU's transports has connected.
    func connectedMeeting(count: Int) async throws -> (SFU, LoadLoop) {
        let sfu = try SFU(configuration: SFUConfiguration(udpHost: "127.0.0.1", udpPort: 0, workers: 1, iceTCP: false), logger: Logger(label: "test"))
        sfu.start()
        let loop = LoadLoop()
        loop.start()
        for index in 0..<count {
            var settings = LoadPeerOptions()
            settings.videoReceivers = count - 1
            settings.audioReceivers = count - 1
            let options = settings
            let peer = try await loop.submit { loop in
                try loop.add(LoadPeer(label: "p\(index)", options: options, now: MonotonicClock.now()), bindHost: "127.0.0.1")
            }
            let offer = try await loop.submit { loop in loop.peer(peer).offer() }
            let result = try await sfu.negotiate(NegotiationRequest(meetingID: "shutdown", participantID: "p\(index)", transportID: nil,
                                                                    role: .participant, offer: SessionDescription(parsing: offer)))
            let answer = result.answer
            try await loop.submit { loop in try loop.peer(peer).apply(answer: answer, allowedHost: "127.0.0.1") }
        }
        for _ in 0..<200 {
            let connected = try await loop.submit { loop in loop.allPeers.filter { $0.connectedAt != nil }.count }
            if connected == count { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let connected = try await loop.submit { loop in loop.allPeers.filter { $0.connectedAt != nil }.count }
        try #require(connected == count, "only \(connected) of \(count) peers connected")
        return (sfu, loop)
    }

    @Test func stopFreesEveryTransportOnItsWorkerThreadBeforeReturning() async throws {
        let (sfu, loop) = try await connectedMeeting(count: 6)
        defer { loop.stop() }
        try await Task.sleep(for: .milliseconds(300))  // media flows
        #expect(sfu.liveDTLSEndpoints == 6)
        sfu.stop()
        // Before the fix this was still 6: the worker thread freed them later, racing exit().
        #expect(sfu.liveDTLSEndpoints == 0)
        // A stopped SFU says so instead of leaving a caller waiting for ever.
        await #expect(throws: LoopStoppedError.self) {
            _ = try await sfu.workers[0].submit { (core, _) throws(Never) in core.transportCount }
        }
        // Each peer was told: the SFU sent close_notify as it closed the transport.
        var closed = 0
        for _ in 0..<100 {
            closed = try await loop.submit { loop in loop.allPeers.filter { $0.transport.state == .closed }.count }
            if closed == 6 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(closed == 6)
    }

    @Test func hangUpsThenStopLeaveNothingBehind() async throws {
        // The reported sequence: every peer closes its DTLS within milliseconds, then the SFU stops.
        let (sfu, loop) = try await connectedMeeting(count: 6)
        try await Task.sleep(for: .milliseconds(300))
        try await loop.submit { loop in
            for peer in loop.allPeers { peer.hangUp() }
        }
        var remaining = 6
        for _ in 0..<100 where remaining > 0 {
            try await Task.sleep(for: .milliseconds(10))
            remaining = await sfu.status().transports
        }
        #expect(remaining == 0, "each close_notify closes its transport")
        #expect(sfu.liveDTLSEndpoints == 0)
        sfu.stop()
        #expect(sfu.liveDTLSEndpoints == 0)
        loop.stop()
        await #expect(throws: LoopStoppedError.self) { _ = try await loop.submit { loop in loop.allPeers.count } }
    }
}
