// Micro-benchmarks of the per-packet work: parsing, SRTP, and the SFU's whole forwarding path
// (SRTP unprotect → route → rewrite → SRTP protect per subscriber), with allocations counted.
// Run with `make bench` (or `swift package --disable-sandbox benchmark` in bench/micro).
import Benchmark
import ParleyBase
import ParleyLoad
import ParleyMediaAPI
import ParleySFU
import ParleyTransport
import ParleyWire

let benchmarks: @Sendable () -> Void = {
    // Built without `make bench` (no PKG_CONFIG_PATH to .build-deps), SwiftPM finds Debian's
    // NSS-based libsrtp2, whose five allocations per packet are not Parley's.
    precondition(SRTPSession.encryptsWithOpenSSL, "libsrtp2 is the NSS build: run these through `make bench`")
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 200
    )

    Benchmark("RTP header parse (MID extension)") { benchmark in
        let packet = SamplePackets.rtp
        packet.withUnsafeBytes { bytes in
            for _ in benchmark.scaledIterations { blackHole(try? RTPHeader(parsing: bytes)) }
        }
    }

    Benchmark("RTCP compound parse (SR + SDES)") { benchmark in
        let compound = SamplePackets.rtcp
        for _ in benchmark.scaledIterations { blackHole(try? RTCPPacket.parseCompound(compound)) }
    }

    Benchmark("STUN binding request parse + integrity check") { benchmark in
        let request = SamplePackets.stunRequest
        let key = Array(SamplePackets.stunPassword.utf8)
        request.withUnsafeBytes { bytes in
            for _ in benchmark.scaledIterations {
                blackHole(try? STUNMessage(parsing: bytes))
                blackHole(STUNMessage.verifyIntegrity(bytes, key: key))
            }
        }
    }

    Benchmark("SRTP protect, 1000-byte payload (AES-128-GCM)") { benchmark in
        let rig = SRTPRig()
        var buffer = [UInt8](repeating: 0, count: 1200)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(rig.protectNext(into: &buffer)) }
        benchmark.stopMeasurement()
    }

    Benchmark("SRTP unprotect, 1000-byte payload (AES-128-GCM)") { benchmark in
        let rig = SRTPRig()
        var packets = (0..<benchmark.scaledIterations.count).map { _ -> [UInt8] in
            var buffer = [UInt8](repeating: 0, count: 1200)
            let length = rig.protectNext(into: &buffer)
            return Array(buffer[0..<length])
        }
        benchmark.startMeasurement()
        for index in packets.indices {
            let length = packets[index].count
            blackHole(packets[index].withUnsafeMutableBytes { try? rig.inbound.unprotectRTP($0.baseAddress!, length: length) })
        }
        benchmark.stopMeasurement()
    }

    for subscribers in [1, 4] {
        Benchmark("forwarding path: one video packet to \(subscribers) subscriber(s)") { benchmark in
            let rig = try ForwardingRig(subscribers: subscribers)
            let packets = rig.publisherPackets(count: benchmark.scaledIterations.count)
            let forwardedBefore = rig.output.committed
            benchmark.startMeasurement()
            rig.forward(packets)
            benchmark.stopMeasurement()
            // A benchmark of a path that forwards nothing would measure nothing.
            precondition(rig.output.committed - forwardedBefore == packets.count * subscribers,
                         "forwarded \(rig.output.committed - forwardedBefore) of \(packets.count * subscribers)")
        }
    }
}

/// Packets as browsers send them, built once.
enum SamplePackets {
    static let stunPassword = "0123456789abcdef01234567"

    static let rtp: [UInt8] = {
        var packet: [UInt8] = [0x90, 96, 0x12, 0x34, 0, 0, 0x10, 0, 0xCA, 0xFE, 0xBA, 0xBE]
        packet += [0xBE, 0xDE, 0, 1, 0x40, 0x31, 0, 0]  // one-byte extension: MID "1"
        packet += [0x10, 0x00] + [UInt8](repeating: 0xA5, count: 1000)
        return packet
    }()

    static let rtcp: [UInt8] = {
        var sr: [UInt8] = [0x80, 200, 0, 6, 0xCA, 0xFE, 0xBA, 0xBE]
        sr += [UInt8](repeating: 0x11, count: 20)
        let cname = Array("browser-cname-0123".utf8)
        var sdes: [UInt8] = [0x81, 202, 0, 0, 0xCA, 0xFE, 0xBA, 0xBE, 1, UInt8(cname.count)] + cname
        while sdes.count % 4 != 0 { sdes.append(0) }
        sdes.append(contentsOf: [0, 0, 0, 0])
        let words = sdes.count / 4 - 1
        sdes[2] = UInt8(words >> 8)
        sdes[3] = UInt8(words & 0xFF)
        return sr + sdes
    }()

    static let stunRequest: [UInt8] = STUNMessage(
        messageClass: .request, transactionID: Array(0..<12),
        attributes: [
            .init(.username, Array("serverufrag:clientufrag".utf8)),
            .init(.priority, [0x6E, 0x00, 0x01, 0xFF]),
            .init(.iceControlling, [1, 2, 3, 4, 5, 6, 7, 8]),
            .init(.useCandidate, []),
        ]
    ).encoded(integrityKey: Array(stunPassword.utf8))
}

/// A sending and a receiving SRTP context with the same keys, and an RTP stream whose sequence
/// numbers keep rising (libsrtp refuses to protect or accept the same index twice).
final class SRTPRig {
    let outbound: SRTPSession
    let inbound: SRTPSession
    private var sequence: UInt16 = 0

    init() {
        let key = [UInt8](repeating: 1, count: 16), salt = [UInt8](repeating: 2, count: 12)
        outbound = try! SRTPSession(profile: .aeadAES128GCM, key: key, salt: salt, direction: .outbound)
        inbound = try! SRTPSession(profile: .aeadAES128GCM, key: key, salt: salt, direction: .inbound)
    }

    func protectNext(into buffer: inout [UInt8]) -> Int {
        sequence &+= 1
        buffer[0] = 0x80
        buffer[1] = 96
        buffer[2] = UInt8(sequence >> 8)
        buffer[3] = UInt8(sequence & 0xFF)
        buffer[11] = 7  // SSRC 7
        let capacity = buffer.count
        return buffer.withUnsafeMutableBytes { (try? outbound.protectRTP($0.baseAddress!, length: 1012, capacity: capacity)) ?? 0 }
    }
}

/// Counts what the SFU sends and keeps none of it, as a socket's batch would.
final class DiscardingOutput: DatagramOutput {
    private let slot = UnsafeMutableRawBufferPointer.allocate(byteCount: 1600, alignment: 16)
    private(set) var committed = 0
    deinit { slot.deallocate() }
    func reserveSlot() -> UnsafeMutableRawBufferPointer { slot }
    func commitSlot(length: Int, to address: PeerAddress) { committed += 1 }
}

/// An SFU worker core with one video publisher and some subscribers, all connected for real
/// (ICE, DTLS, SRTP) in one process on fake time; then the publisher's packets go through the
/// core's receive path, each forwarded and protected once per subscriber.
final class ForwardingRig {
    let core = WorkerCore(announceAddress: "127.0.0.1", port: 40000, dtlsContext: try! DTLSContext(certificate: DTLSCertificate()), ntpClock: NTPClock(ntp: 3_900_000_000 << 32, at: 0), events: { _ in })
    let output = DiscardingOutput()
    private let sfuAddress = PeerAddress(ipv4: (127, 0, 0, 1), port: 40000)
    private var now: Nanoseconds = .seconds(100)
    private var peers: [(peer: LoadPeer, address: PeerAddress)] = []
    private var buffer = [UInt8](repeating: 0, count: 1600)

    init(subscribers: Int) throws {
        var publishing = LoadPeerOptions()
        publishing.publishAudio = false
        publishing.videoBitrate = 2_000_000
        publishing.frameRate = 30
        try join("publisher", options: publishing, port: 7000)
        var receiving = LoadPeerOptions()
        receiving.publishAudio = false
        receiving.publishVideo = false
        receiving.videoReceivers = 1
        for index in 0..<subscribers { try join("subscriber-\(index)", options: receiving, port: 7001 + UInt16(index)) }
        let setup = CollectingOutput()
        for _ in 0..<200 {
            step(output: setup)
            if peers.dropFirst().allSatisfy({ !$0.peer.received.isEmpty }) { break }
        }
        precondition(peers.dropFirst().allSatisfy { !$0.peer.received.isEmpty }, "the subscribers never received the publisher's video")
    }

    private func join(_ label: String, options: LoadPeerOptions, port: UInt16) throws {
        let peer = try LoadPeer(label: label, options: options, now: now)
        let request = NegotiationRequest(meetingID: "bench", participantID: label, transportID: nil, role: .participant,
                                         offer: try SessionDescription(parsing: peer.offer()))
        try peer.apply(answer: try core.negotiate(request, now: now).answer, allowedHost: "127.0.0.1")
        peers.append((peer, PeerAddress(ipv4: (127, 0, 0, 1), port: port)))
    }

    /// 5 ms of the call with delivery both ways (used only to connect everyone).
    private func step(output: CollectingOutput) {
        now += .milliseconds(5)
        for (peer, address) in peers {
            peer.tick(now: now)
            for datagram in peer.outbox { receive(datagram, from: address, output: output) }
            peer.outbox.removeAll()
        }
        core.tick(now: now, output: output)
        for (bytes, to) in output.sent {
            guard let target = peers.first(where: { $0.address == to }) else { continue }
            bytes.withUnsafeBytes { target.peer.receive($0, from: sfuAddress, now: now) }
        }
        output.sent.removeAll()
    }

    /// The publisher's next `count` SRTP packets (its clock runs forward frame by frame).
    func publisherPackets(count: Int) -> [[UInt8]] {
        let publisher = peers[0].peer
        var packets: [[UInt8]] = []
        while packets.count < count {
            now += .milliseconds(33)
            publisher.tick(now: now)
            packets += publisher.outbox.filter { $0.withUnsafeBytes { PacketClass($0) } == .rtp }
            publisher.outbox.removeAll()
        }
        return Array(packets.prefix(count))
    }

    func forward(_ packets: [[UInt8]]) {
        let from = peers[0].address
        for packet in packets { receive(packet, from: from, output: output) }
    }

    private func receive(_ datagram: [UInt8], from address: PeerAddress, output: any DatagramOutput) {
        let length = datagram.count
        buffer.withUnsafeMutableBytes { raw in
            datagram.withUnsafeBytes { raw.copyMemory(from: $0) }
            core.receive(raw, length: length, from: address, now: now, output: output)
        }
    }
}
