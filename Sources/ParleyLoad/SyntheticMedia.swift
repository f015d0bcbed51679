import ParleyBase
import ParleyTransport
import ParleyWire

/// What every synthetic packet carries after its codec header, so the receiver can measure loss
/// and one-way latency: a magic word, the stream's own sequence number and the send time
/// (CLOCK_MONOTONIC, shared by every process on one machine).
public struct Probe: Equatable, Sendable {
    public static let magic: UInt32 = 0x5052_4C59  // "PRLY"
    public static let length = 16
    public var sequence: UInt32
    public var sentAt: Nanoseconds

    public func write(into buffer: inout [UInt8]) {
        buffer.appendU32Probe(Self.magic)
        buffer.appendU32Probe(sequence)
        buffer.appendU32Probe(UInt32(truncatingIfNeeded: sentAt >> 32))
        buffer.appendU32Probe(UInt32(truncatingIfNeeded: sentAt))
    }

    /// Finds the probe at the start of a payload, or after the 2-byte header of synthetic VP8.
    public init?(payload: UnsafeRawBufferPointer) {
        for offset in [0, 2] where payload.count >= offset + Self.length {
            guard payload.readU32(at: offset) == Self.magic else { continue }
            sequence = payload.readU32(at: offset + 4)
            sentAt = UInt64(payload.readU32(at: offset + 8)) << 32 | UInt64(payload.readU32(at: offset + 12))
            return
        }
        return nil
    }

    public init(sequence: UInt32, sentAt: Nanoseconds) { self.sequence = sequence; self.sentAt = sentAt }
}

extension Array where Element == UInt8 {
    mutating func appendU32Probe(_ value: UInt32) {
        append(UInt8(truncatingIfNeeded: value >> 24)); append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 8)); append(UInt8(truncatingIfNeeded: value))
    }
}

/// A synthetic RTP stream: Opus-like audio (one packet per 20 ms) or VP8-like video (frames at a
/// frame rate, sized for a bitrate, split into packets of at most 1,100 bytes, a keyframe first and
/// whenever asked).
public struct SyntheticStream: Sendable {
    public enum Kind: Sendable { case audio, video }
    public let kind: Kind
    public let ssrc: UInt32
    public let payloadType: UInt8
    public var midExtensionID: UInt8?
    public var mid: String = ""
    /// Audio: the RFC 6464 level written on every packet (0 loudest, 127 silence) under this id;
    /// the SFU chooses the speakers each subscriber hears by it.
    public var audioLevel: (id: UInt8, level: UInt8)?
    private var sequence = UInt16.random(in: 0...UInt16.max)
    private var timestamp = UInt32.random(in: 0...UInt32.max)
    private var probeSequence: UInt32 = 0
    private var nextAt: Nanoseconds?
    private var keyframeWanted = true
    public let interval: Nanoseconds
    private let frameBytes: Int
    public private(set) var packetsSent = 0

    public static func audio(ssrc: UInt32, payloadType: UInt8) -> SyntheticStream {
        SyntheticStream(kind: .audio, ssrc: ssrc, payloadType: payloadType, interval: .milliseconds(20), frameBytes: 100)
    }

    public static func video(ssrc: UInt32, payloadType: UInt8, bitrate: Int, frameRate: Int) -> SyntheticStream {
        let rate = max(1, frameRate)
        return SyntheticStream(kind: .video, ssrc: ssrc, payloadType: payloadType, interval: 1_000_000_000 / UInt64(rate),
                               frameBytes: max(200, bitrate / 8 / rate))
    }

    init(kind: Kind, ssrc: UInt32, payloadType: UInt8, interval: Nanoseconds, frameBytes: Int) {
        self.kind = kind; self.ssrc = ssrc; self.payloadType = payloadType; self.interval = interval; self.frameBytes = frameBytes
    }

    public mutating func requestKeyframe() { keyframeWanted = true }

    /// The plaintext RTP packets due by `now` (at most one frame per call, so a stalled caller
    /// does not burst).
    public mutating func packets(now: Nanoseconds) -> [[UInt8]] {
        let due = nextAt ?? now
        guard now >= due else { return [] }
        nextAt = max(due + interval, now - interval)
        let clock: UInt64 = kind == .audio ? 48000 : 90000
        defer { timestamp &+= UInt32(truncatingIfNeeded: interval * clock / 1_000_000_000) }
        let keyframe = kind == .video && keyframeWanted
        keyframeWanted = false
        // Keyframes are bigger, as real ones are.
        var remaining = keyframe ? frameBytes * 3 : frameBytes
        var packets: [[UInt8]] = []
        var first = true
        while remaining > 0 {
            let size = min(remaining, 1100)
            remaining -= size
            var packet = header(marker: remaining == 0 || kind == .audio)
            if kind == .video {
                packet.append(first ? 0x10 : 0x00)  // VP8 descriptor: S bit on a frame's first packet
                packet.append(first ? (keyframe ? 0x00 : 0x01) : 0x00)  // VP8 header: P bit 0 on keyframes
            }
            Probe(sequence: probeSequence, sentAt: now).write(into: &packet)
            probeSequence &+= 1
            packet.append(contentsOf: repeatElement(0xA5, count: max(0, size - Probe.length)))
            packets.append(packet)
            first = false
            if kind == .audio { break }
        }
        packetsSent += packets.count
        return packets
    }

    private mutating func header(marker: Bool) -> [UInt8] {
        var packet: [UInt8] = []
        packet.reserveCapacity(1200)
        let writesMid = midExtensionID != nil && !mid.isEmpty
        let level = kind == .audio ? audioLevel : nil
        let hasExtension = writesMid || level != nil
        packet.append(0x80 | (hasExtension ? 0x10 : 0))
        packet.append((marker ? 0x80 : 0) | payloadType)
        packet.append(UInt8(sequence >> 8)); packet.append(UInt8(sequence & 0xFF))
        packet.appendU32Probe(timestamp)
        packet.appendU32Probe(ssrc)
        if hasExtension {
            let midBytes = writesMid ? Array(mid.utf8.prefix(16)) : []
            let dataBytes = (writesMid ? 1 + midBytes.count : 0) + (level != nil ? 2 : 0)
            let words = (dataBytes + 3) / 4
            packet += [0xBE, 0xDE, 0, UInt8(words)]
            if let id = midExtensionID, writesMid {
                packet.append(id << 4 | UInt8(midBytes.count - 1))
                packet += midBytes
            }
            if let level { packet += [level.id << 4, 0x80 | (level.level & 0x7F)] }
            packet += repeatElement(0, count: words * 4 - dataBytes)
        }
        sequence &+= 1
        return packet
    }
}
