/// One RTCP packet of a compound datagram (RFC 3550 §6, RFC 4585 §6), parsed into its type.
public enum RTCPPacket: Sendable, Equatable {
    case senderReport(SenderReport)
    case receiverReport(ReceiverReport)
    case sourceDescription(SourceDescription)
    case goodbye(Goodbye)
    case nack(GenericNACK)
    case pictureLossIndication(PictureLossIndication)
    case fullIntraRequest(FullIntraRequest)
    case remb(ReceiverEstimatedMaximumBitrate)
    case transportWideFeedback(TransportWideFeedback)
    case application(ApplicationDefined)
    /// A well-formed packet of a type Parley does not act on (XR…).
    case other(packetType: UInt8, format: UInt8)

    public enum PacketType: UInt8 {
        case senderReport = 200, receiverReport = 201, sourceDescription = 202, goodbye = 203
        case application = 204, transportFeedback = 205, payloadFeedback = 206
    }

    /// Parses every packet of a compound RTCP datagram; throws on the first malformed one.
    public static func parseCompound(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> [RTCPPacket] {
        var packets: [RTCPPacket] = []
        var offset = 0
        guard bytes.count >= 4 else { throw .truncated("RTCP header needs 4 bytes") }
        while offset < bytes.count {
            guard bytes.count - offset >= 4 else { throw .truncated("RTCP header at \(offset)") }
            let first = bytes[offset]
            guard first >> 6 == 2 else { throw .invalid("RTCP version \(first >> 6)") }
            let length = (Int(bytes.readU16(at: offset + 2)) + 1) * 4
            guard offset + length <= bytes.count else {
                throw .truncated("RTCP packet says \(length) bytes, \(bytes.count - offset) left")
            }
            var packetLength = length
            if first & 0x20 != 0 {
                let padding = Int(bytes[offset + length - 1])
                guard padding > 0, padding <= length - 4 else { throw .invalid("RTCP padding \(padding)") }
                packetLength -= padding
            }
            let packet = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + packetLength])
            packets.append(try parseOne(packet))
            offset += length
        }
        return packets
    }

    public static func parseCompound(_ bytes: [UInt8]) throws(WireError) -> [RTCPPacket] {
        try bytes.parse { (raw) throws(WireError) in try parseCompound(raw) }
    }

    static func parseOne(_ packet: UnsafeRawBufferPointer) throws(WireError) -> RTCPPacket {
        let count = packet[0] & 0x1F
        let type = packet[1]
        switch PacketType(rawValue: type) {
        case .senderReport: return .senderReport(try SenderReport(parsing: packet))
        case .receiverReport: return .receiverReport(try ReceiverReport(parsing: packet))
        case .sourceDescription: return .sourceDescription(try SourceDescription(parsing: packet))
        case .goodbye: return .goodbye(try Goodbye(parsing: packet))
        case .application: return .application(try ApplicationDefined(parsing: packet))
        case .transportFeedback where count == GenericNACK.format: return .nack(try GenericNACK(parsing: packet))
        case .transportFeedback where count == TransportWideFeedback.format: return .transportWideFeedback(try TransportWideFeedback(parsing: packet))
        case .payloadFeedback where count == PictureLossIndication.format:
            return .pictureLossIndication(try PictureLossIndication(parsing: packet))
        case .payloadFeedback where count == FullIntraRequest.format:
            return .fullIntraRequest(try FullIntraRequest(parsing: packet))
        case .payloadFeedback where count == 15 && packet.count >= 16 && packet.readU32(at: 12) == ReceiverEstimatedMaximumBitrate.identifier:
            return .remb(try ReceiverEstimatedMaximumBitrate(parsing: packet))
        default:
            guard (192...223).contains(type) else { throw .invalid("RTCP packet type \(type)") }
            return .other(packetType: type, format: count)
        }
    }

    /// Appends this packet's wire form.
    public func write(into out: inout [UInt8]) {
        switch self {
        case .senderReport(let p): p.write(into: &out)
        case .receiverReport(let p): p.write(into: &out)
        case .sourceDescription(let p): p.write(into: &out)
        case .goodbye(let p): p.write(into: &out)
        case .nack(let p): p.write(into: &out)
        case .pictureLossIndication(let p): p.write(into: &out)
        case .fullIntraRequest(let p): p.write(into: &out)
        case .remb(let p): p.write(into: &out)
        case .transportWideFeedback(let p): p.write(into: &out)
        case .application(let p): p.write(into: &out)
        case .other: break
        }
    }
}

/// Common RTCP header writing: V=2, count/format, type, length in words minus one (patched later).
extension Array where Element == UInt8 {
    mutating func beginRTCP(count: UInt8, type: RTCPPacket.PacketType) -> Int {
        let start = self.count
        append(0x80 | (count & 0x1F))
        append(type.rawValue)
        appendU16(0)
        return start
    }

    mutating func finishRTCP(startingAt start: Int) {
        while (count - start) % 4 != 0 { append(0) }
        setU16(UInt16((count - start) / 4 - 1), at: start + 2)
    }
}
