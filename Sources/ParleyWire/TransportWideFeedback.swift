/// RTCP transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01
/// §3.1; RTPFB, FMT 15): for a run of transport-wide sequence numbers, which arrived and when.
/// The sender's bandwidth estimator (GCC) reads the arrival times against its send times.
public struct TransportWideFeedback: Sendable, Equatable {
    static let format: UInt8 = 15
    public var senderSSRC: UInt32
    public var mediaSSRC: UInt32
    public var baseSequence: UInt16
    /// In units of 64 ms, 24 bits on the wire (it wraps).
    public var referenceTime: UInt32
    /// Counts the feedback packets the receiver sent, so the sender notices lost ones.
    public var feedbackCount: UInt8
    /// For each sequence number from `baseSequence` on: when it arrived, in microseconds after
    /// `referenceTime` × 64 ms (a multiple of 250 µs), or nil when it did not.
    public var arrivals: [Int64?]

    /// One delta tick: 250 µs.
    public static let tickMicroseconds: Int64 = 250
    public static let referenceTimeMicroseconds: Int64 = 64_000

    public init(senderSSRC: UInt32, mediaSSRC: UInt32, baseSequence: UInt16, referenceTime: UInt32, feedbackCount: UInt8, arrivals: [Int64?]) {
        self.senderSSRC = senderSSRC; self.mediaSSRC = mediaSSRC; self.baseSequence = baseSequence
        self.referenceTime = referenceTime & 0xFFFFFF; self.feedbackCount = feedbackCount; self.arrivals = arrivals
    }

    private enum Symbol: UInt8 {
        case notReceived = 0, smallDelta = 1, largeDelta = 2
    }

    public init(parsing bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= 20 else { throw .truncated("transport-wide feedback needs 20 bytes") }
        senderSSRC = bytes.readU32(at: 4)
        mediaSSRC = bytes.readU32(at: 8)
        baseSequence = bytes.readU16(at: 12)
        let statusCount = Int(bytes.readU16(at: 14))
        referenceTime = bytes.readU32(at: 16) >> 8
        feedbackCount = bytes[19]
        var symbols: [Symbol] = []
        symbols.reserveCapacity(statusCount)
        var offset = 20
        while symbols.count < statusCount {
            guard offset + 2 <= bytes.count else { throw .truncated("transport-wide feedback packet chunk") }
            let chunk = bytes.readU16(at: offset)
            offset += 2
            if chunk & 0x8000 == 0 {
                // Run length: one symbol repeated.
                guard let symbol = Symbol(rawValue: UInt8((chunk >> 13) & 0x03)) else { throw .invalid("transport-wide feedback status symbol 3") }
                let run = Int(chunk & 0x1FFF)
                symbols += repeatElement(symbol, count: min(run, statusCount - symbols.count))
            } else if chunk & 0x4000 == 0 {
                // Status vector, 14 one-bit symbols.
                for bit in (0..<14).reversed() where symbols.count < statusCount {
                    symbols.append(chunk & (1 << bit) != 0 ? .smallDelta : .notReceived)
                }
            } else {
                // Status vector, 7 two-bit symbols.
                for pair in (0..<7).reversed() where symbols.count < statusCount {
                    guard let symbol = Symbol(rawValue: UInt8((chunk >> (pair * 2)) & 0x03)) else {
                        throw .invalid("transport-wide feedback status symbol 3")
                    }
                    symbols.append(symbol)
                }
            }
        }
        var arrivals: [Int64?] = []
        arrivals.reserveCapacity(statusCount)
        var time: Int64 = 0
        for symbol in symbols {
            switch symbol {
            case .notReceived:
                arrivals.append(nil)
            case .smallDelta:
                guard offset + 1 <= bytes.count else { throw .truncated("transport-wide feedback receive delta") }
                time += Int64(bytes[offset]) * Self.tickMicroseconds
                offset += 1
                arrivals.append(time)
            case .largeDelta:
                guard offset + 2 <= bytes.count else { throw .truncated("transport-wide feedback receive delta") }
                time += Int64(Int16(bitPattern: bytes.readU16(at: offset))) * Self.tickMicroseconds
                offset += 2
                arrivals.append(time)
            }
        }
        self.arrivals = arrivals
    }

    /// Appends the wire form. Arrival times are rounded to 250 µs; a gap between two arrivals
    /// longer than a signed 16-bit delta (±8.2 s) is written as the largest delta that fits.
    public func write(into out: inout [UInt8]) {
        let start = out.beginRTCP(count: Self.format, type: .transportFeedback)
        out.appendU32(senderSSRC)
        out.appendU32(mediaSSRC)
        out.appendU16(baseSequence)
        out.appendU16(UInt16(clamping: arrivals.count))
        out.appendU32((referenceTime & 0xFFFFFF) << 8 | UInt32(feedbackCount))
        var symbols: [Symbol] = []
        var deltas: [Int64] = []
        var previous: Int64 = 0
        for arrival in arrivals.prefix(Int(UInt16.max)) {
            guard let arrival else {
                symbols.append(.notReceived)
                continue
            }
            let ticks = max(-32768, min(32767, (arrival - previous) / Self.tickMicroseconds))
            previous += ticks * Self.tickMicroseconds
            symbols.append((0...255).contains(ticks) ? .smallDelta : .largeDelta)
            deltas.append(ticks)
        }
        var index = 0
        while index < symbols.count {
            var run = 1
            while index + run < symbols.count, symbols[index + run] == symbols[index], run < 0x1FFF { run += 1 }
            if run >= 7 {
                out.appendU16(UInt16(symbols[index].rawValue) << 13 | UInt16(run))
                index += run
            } else {
                var chunk: UInt16 = 0xC000
                for pair in 0..<7 where index + pair < symbols.count {
                    chunk |= UInt16(symbols[index + pair].rawValue) << UInt16((6 - pair) * 2)
                }
                out.appendU16(chunk)
                index += 7
            }
        }
        for ticks in deltas {
            if (0...255).contains(ticks) {
                out.append(UInt8(ticks))
            } else {
                out.appendU16(UInt16(bitPattern: Int16(ticks)))
            }
        }
        out.finishRTCP(startingAt: start)
    }
}
