import CParleySocket
import ParleyBase
import ParleySFU
import ParleyTransport
import ParleyWire
#if canImport(Glibc)
import Glibc
#endif

/// ICE-TCP (RFC 6544) of one worker: a listening socket on the worker's UDP port number and its
/// connections, each read into whole packets (RFC 4571 framing) that the core takes as datagrams
/// from the connection's address. Used only on the worker's thread, from its poll loop.
final class ICETCPServer {
    static let maximumPeers = 1024
    /// One address cannot take every ICE-TCP connection of a worker.
    static let maximumPeersPerAddress = 32
    static let idleTimeout: Nanoseconds = 30_000_000_000
    static let maximumBacklog = 1 << 20

    /// One TCP connection: what it sent, reassembled into packets, and what could not be written yet.
    final class Peer {
        let fd: Int32
        let address: PeerAddress
        var reader = RFC4571Reassembler()
        var pending: [UInt8] = []
        var lastActivity: Nanoseconds
        var framesReceived = 0
        init(fd: Int32, address: PeerAddress, now: Nanoseconds) {
            self.fd = fd
            self.address = address
            self.lastActivity = now
        }
    }

    private let listenFD: Int32
    private var peers: [UInt32: Peer] = [:]
    private var nextConnection: UInt32 = 1
    /// The peers in the order their descriptors follow the listening socket's in the poll set.
    private var polledPeers: [Peer] = []
    /// Whether the poll set must be built again (a connection came or went, or has bytes waiting).
    private(set) var descriptorsChanged = true
    /// Where one frame is copied to be handled like a datagram (decrypted in place).
    private let scratch: UnsafeMutableRawBufferPointer
    private let addressScratch = UnsafeMutablePointer<UInt8>.allocate(capacity: 16)

    /// Listens on TCP `host:port`; throws with the reason when it cannot.
    init(host: String, port: UInt16, frameCapacity: Int) throws(WorkerStartError) {
        var error: Int32 = 0
        listenFD = parley_tcp_listen(host, port, &error)
        guard listenFD >= 0 else {
            addressScratch.deallocate()
            throw WorkerStartError(description: "cannot listen on TCP \(host.isEmpty ? "*" : host):\(port): \(String(cString: strerror(error)))")
        }
        scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: frameCapacity, alignment: 16)
    }

    deinit {
        closeAll()
        close(listenFD)
        scratch.deallocate()
        addressScratch.deallocate()
    }

    var hasPeers: Bool { !peers.isEmpty }

    /// Appends the listening socket and every connection to the poll set.
    func appendDescriptors(to descriptors: inout [pollfd]) {
        descriptors.append(pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0))
        polledPeers = []
        for peer in peers.values {
            descriptors.append(pollfd(fd: peer.fd, events: Int16(POLLIN) | (peer.pending.isEmpty ? 0 : Int16(POLLOUT)), revents: 0))
            polledPeers.append(peer)
        }
        descriptorsChanged = false
    }

    /// Accepts, reads and writes what `poll` reported: `descriptors` are those `appendDescriptors` added.
    func service(_ descriptors: ArraySlice<pollfd>, core: WorkerCore, output: any DatagramOutput, now: Nanoseconds) {
        let first = descriptors.startIndex
        if descriptors[first].revents != 0 { accept(core: core, now: now) }
        for (offset, peer) in polledPeers.enumerated() {
            let events = descriptors[first + 1 + offset].revents
            guard events != 0, peers[peer.address.tcpConnection] === peer else { continue }
            if events & Int16(POLLOUT) != 0 { writePending(peer) }
            if events & Int16(POLLIN | POLLHUP | POLLERR) != 0 { readFrames(from: peer, core: core, output: output, now: now) }
        }
    }

    private func accept(core: WorkerCore, now: Nanoseconds) {
        var family: UInt8 = 0
        var port: UInt16 = 0
        for _ in 0..<32 {
            let client = parley_tcp_accept(listenFD, &family, addressScratch, &port)
            guard client >= 0 else { return }
            var address = family == 4
                ? PeerAddress(ipv4: (addressScratch[0], addressScratch[1], addressScratch[2], addressScratch[3]), port: port)
                : PeerAddress(ipv6: UnsafeBufferPointer(start: addressScratch, count: 16), port: port)
            let fromSameAddress = peers.values.count { $0.address.high == address.high && $0.address.low == address.low }
            guard peers.count < Self.maximumPeers, fromSameAddress < Self.maximumPeersPerAddress else {
                close(client)
                core.counters.dropped[.unknownSender] += 1
                continue
            }
            address.tcpConnection = nextConnection
            nextConnection = nextConnection == UInt32.max ? 1 : nextConnection + 1
            peers[address.tcpConnection] = Peer(fd: client, address: address, now: now)
            descriptorsChanged = true
        }
    }

    /// Reads what the connection has, and hands every whole packet to the core as a datagram
    /// from the connection's address. The first must be a STUN check (RFC 6544 §3): anything
    /// else closes the connection.
    private func readFrames(from peer: Peer, core: WorkerCore, output: any DatagramOutput, now: Nanoseconds) {
        for _ in 0..<8 {
            let count = peer.reader.fill { space in read(peer.fd, space.baseAddress, space.count) }
            if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) {
                disconnect(peer)
                return
            }
            if count < 0 { break }
            peer.lastActivity = now
            while let frame = peer.reader.next(into: scratch) {
                guard case .packet(let length) = frame, length > 0 else {
                    core.counters.dropped[.malformed] += 1
                    continue
                }
                if peer.framesReceived == 0, PacketClass(UnsafeRawBufferPointer(rebasing: scratch[0..<length])) != .stun {
                    core.counters.dropped[.unauthenticated] += 1
                    disconnect(peer)
                    return
                }
                peer.framesReceived += 1
                core.receive(scratch, length: length, from: peer.address, now: now, output: output)
                guard peers[peer.address.tcpConnection] === peer else { return }
            }
        }
    }

    /// Sends one packet on its connection, framed; what the socket does not take now waits
    /// (up to a megabyte: a connection that far behind drops packets, as a full UDP buffer does).
    func send(_ packet: UnsafeRawBufferPointer, to address: PeerAddress) {
        guard let peer = peers[address.tcpConnection] else { return }
        let (high, low) = RFC4571Reassembler.header(length: packet.count)
        if !peer.pending.isEmpty {
            guard peer.pending.count + packet.count + 2 <= Self.maximumBacklog else { return }
            peer.pending.append(high)
            peer.pending.append(low)
            peer.pending.append(contentsOf: packet)
            return
        }
        var header = (high, low)
        let written = withUnsafeMutableBytes(of: &header) { raw -> Int in
            var vectors = (iovec(iov_base: raw.baseAddress, iov_len: 2), iovec(iov_base: UnsafeMutableRawPointer(mutating: packet.baseAddress), iov_len: packet.count))
            return withUnsafeMutablePointer(to: &vectors) { $0.withMemoryRebound(to: iovec.self, capacity: 2) { writev(peer.fd, $0, 2) } }
        }
        if written == packet.count + 2 { return }
        if written < 0, errno != EAGAIN, errno != EINTR {
            disconnect(peer)
            return
        }
        let sent = max(0, written)
        let framed = [high, low] + Array(packet)
        peer.pending.append(contentsOf: framed[sent...])
        descriptorsChanged = true
    }

    private func writePending(_ peer: Peer) {
        let written = peer.pending.withUnsafeBytes { write(peer.fd, $0.baseAddress, $0.count) }
        if written < 0 {
            if errno != EAGAIN, errno != EINTR { disconnect(peer) }
            return
        }
        peer.pending.removeFirst(written)
        if peer.pending.isEmpty { descriptorsChanged = true }
    }

    private func disconnect(_ peer: Peer) {
        close(peer.fd)
        peers[peer.address.tcpConnection] = nil
        descriptorsChanged = true
    }

    func closeIdlePeers(now: Nanoseconds) {
        for peer in peers.values where now &- peer.lastActivity > Self.idleTimeout { disconnect(peer) }
    }

    func closeAll() {
        for peer in peers.values { disconnect(peer) }
    }
}
