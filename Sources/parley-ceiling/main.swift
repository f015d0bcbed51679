// The machine's ceiling for an SFU's per-packet work, measured by the smallest program that does
// it: receive datagrams in batches (recvmmsg), SRTP-unprotect each, SRTP-protect it again, send it
// on in batches (sendmmsg). A source thread feeds it and a sink thread drains it, all on loopback.
// `make bench` compares Parley's forwarding rate with this number.
import CParleySocket
import Foundation
import ParleyTransport

let seconds = Double(CommandLine.arguments.dropFirst().first ?? "5") ?? 5
let payloadSize = 1000
let key = [UInt8](repeating: 1, count: 16), salt = [UInt8](repeating: 2, count: 12)

func bind() -> (Int32, UInt16) {
    var error: Int32 = 0
    let fd = parley_udp_bind("127.0.0.1", 0, &error)
    precondition(fd >= 0, "bind failed: \(error)")
    return (fd, UInt16(parley_udp_local_port(fd)))
}

let (sourceFD, _) = bind()
let (forwarderFD, forwarderPort) = bind()
let (sinkFD, sinkPort) = bind()
let loopback: [UInt8] = [127, 0, 0, 1] + [UInt8](repeating: 0, count: 12)
let stop = Date().addingTimeInterval(seconds)

// Source: one pre-protected packet template, sequence numbers advancing, sent in batches of 32.
let source = Thread {
    let session = try! SRTPSession(profile: .aeadAES128GCM, key: key, salt: salt, direction: .outbound)
    let batch = parley_batch_create(32, 1600)!
    var sequence: UInt16 = 0
    while Date() < stop {
        for i in 0..<32 {
            let buffer = parley_batch_buffer(batch, Int32(i))!
            var header: [UInt8] = [0x80, 96, UInt8(sequence >> 8), UInt8(sequence & 0xFF), 0, 0, 0, 1, 0, 0, 0, 7]
            sequence &+= 1
            memcpy(buffer, &header, 12)
            memset(buffer + 12, 0x42, payloadSize)
            let length = try! session.protectRTP(buffer, length: 12 + payloadSize, capacity: 1600)
            parley_batch_set(batch, Int32(i), Int32(length), 4, loopback, forwarderPort, 0)
        }
        _ = parley_batch_send(sourceFD, batch, 32)
    }
}

// Sink: counts what the forwarder delivered.
final class Counter: @unchecked Sendable { var value = 0 }
let delivered = Counter()
let sink = Thread {
    let batch = parley_batch_create(64, 1600)!
    while Date() < stop.addingTimeInterval(0.2) {
        let n = parley_batch_receive(sinkFD, batch)
        if n > 0 { delivered.value += Int(n) } else { usleep(200) }
    }
}

source.start()
sink.start()

// Forwarder, on the main thread: the measured work.
let inbound = try SRTPSession(profile: .aeadAES128GCM, key: key, salt: salt, direction: .inbound)
let outbound = try SRTPSession(profile: .aeadAES128GCM, key: key, salt: salt, direction: .outbound)
let receive = parley_batch_create(64, 1600)!
let send = parley_batch_create(64, 1600)!
var forwarded = 0
var refused = 0
let started = Date()
func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
let cpuBefore = threadCPUSeconds()
while Date() < stop {
    let n = parley_batch_receive(forwarderFD, receive)
    guard n > 0 else { continue }
    var out: Int32 = 0
    for i in 0..<n {
        let length = Int(parley_batch_length(receive, i))
        let packet = parley_batch_buffer(receive, i)!
        guard let plain = try? inbound.unprotectRTP(packet, length: length) else { refused += 1; continue }
        let slot = parley_batch_buffer(send, out)!
        memcpy(slot, packet, plain)
        guard let protected = try? outbound.protectRTP(slot, length: plain, capacity: 1600) else { continue }
        parley_batch_set(send, out, Int32(protected), 4, loopback, sinkPort, 0)
        out += 1
    }
    forwarded += Int(parley_batch_send(forwarderFD, send, out))
}
let cpu = threadCPUSeconds() - cpuBefore
let wall = Date().timeIntervalSince(started)
let result: [String: Any] = [
    "forwardedPackets": forwarded, "seconds": wall, "forwarderCPUSeconds": cpu,
    "packetsPerCPUSecond": Double(forwarded) / max(cpu, 0.001), "packetsPerSecond": Double(forwarded) / wall,
    "payloadBytes": payloadSize, "refused": refused,
]
print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
