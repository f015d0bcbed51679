import ParleyWire

/// RTCP: one target per packet type (its parser on any bytes, then parse → write → parse), and
/// compound datagrams as the SFU reads every SRTCP payload.
enum RTCPTargets {
    static func senderReport(_ data: UnsafeRawBufferPointer) {
        packet(data, parse: { (raw) throws(WireError) in try SenderReport(parsing: raw) }, wrap: RTCPPacket.senderReport)
    }

    static func receiverReport(_ data: UnsafeRawBufferPointer) {
        packet(data, parse: { (raw) throws(WireError) in try ReceiverReport(parsing: raw) }, wrap: RTCPPacket.receiverReport)
    }

    static func sourceDescription(_ data: UnsafeRawBufferPointer) {
        packet(data, parse: { (raw) throws(WireError) in try SourceDescription(parsing: raw) }, wrap: RTCPPacket.sourceDescription)
    }

    static func goodbye(_ data: UnsafeRawBufferPointer) {
        packet(data, parse: { (raw) throws(WireError) in try Goodbye(parsing: raw) }, wrap: RTCPPacket.goodbye)
    }

    static func nack(_ data: UnsafeRawBufferPointer) {
        guard let nack = packet(data, parse: { (raw) throws(WireError) in try GenericNACK(parsing: raw) }, wrap: RTCPPacket.nack) else { return }
        // What the SFU does with one: the sequence numbers to resend; a NACK made of them asks for the same.
        let lost = nack.lostSequenceNumbers
        let rebuilt = GenericNACK(senderSSRC: nack.senderSSRC, mediaSSRC: nack.mediaSSRC, lost: lost)
        require(Set(rebuilt.lostSequenceNumbers) == Set(lost), "a NACK built from lost sequence numbers asks for others")
    }

    static func pictureLossIndication(_ data: UnsafeRawBufferPointer) {
        packet(data, parse: { (raw) throws(WireError) in try PictureLossIndication(parsing: raw) }, wrap: RTCPPacket.pictureLossIndication)
    }

    static func fullIntraRequest(_ data: UnsafeRawBufferPointer) {
        packet(data, parse: { (raw) throws(WireError) in try FullIntraRequest(parsing: raw) }, wrap: RTCPPacket.fullIntraRequest)
    }

    static func remb(_ data: UnsafeRawBufferPointer) {
        packet(data, parse: { (raw) throws(WireError) in try ReceiverEstimatedMaximumBitrate(parsing: raw) }, wrap: RTCPPacket.remb)
    }

    static func transportWideFeedback(_ data: UnsafeRawBufferPointer) {
        guard let feedback = packet(data, parse: { (raw) throws(WireError) in try TransportWideFeedback(parsing: raw) },
                                    wrap: RTCPPacket.transportWideFeedback) else { return }
        for arrival in feedback.arrivals {
            if let arrival { require(arrival % TransportWideFeedback.tickMicroseconds == 0, "TWCC arrival off the 250 µs grid") }
        }
    }

    static func compound(_ data: UnsafeRawBufferPointer) {
        _ = PacketClass(data)
        guard let packets = try? RTCPPacket.parseCompound(data) else { return }
        require(!packets.isEmpty, "a compound RTCP packet parsed to nothing")
        roundTrip(packets)
    }

    /// Parses `data` as one packet of a type; on success writes it, and the written bytes must
    /// read back as the same value, alone and as a compound packet. The raw bytes go through the
    /// compound parser too, as the SFU gives them.
    @discardableResult
    static func packet<T: Equatable>(_ data: UnsafeRawBufferPointer, parse: (UnsafeRawBufferPointer) throws(WireError) -> T,
                                     wrap: (T) -> RTCPPacket) -> T? {
        if let packets = try? RTCPPacket.parseCompound(data) { roundTrip(packets) }
        guard let value = try? parse(data) else { return nil }
        var written: [UInt8] = []
        wrap(value).write(into: &written)
        guard isExact(wrap(value)) else {
            // Text longer than a CNAME item holds is cut; what is written must still parse.
            _ = try? RTCPPacket.parseCompound(written)
            return value
        }
        written.withUnsafeBytes { raw in
            require((try? parse(raw)) == value, "\(T.self) round trip changed the packet")
        }
        require((try? RTCPPacket.parseCompound(written)) == [wrap(value)], "a written \(T.self) reads back as another packet")
        return value
    }

    /// Written packets read back the same, except `.other` (not written) and CNAMEs whose text,
    /// decoded from invalid UTF-8, no longer fits the item's 255 bytes.
    static func roundTrip(_ packets: [RTCPPacket]) {
        var written: [UInt8] = []
        for packet in packets { packet.write(into: &written) }
        let expected = packets.filter { if case .other = $0 { return false } else { return true } }
        if expected.isEmpty { return }
        guard let again = try? RTCPPacket.parseCompound(written) else { fatalError("written RTCP packets do not parse") }
        guard expected.allSatisfy(isExact) else { return }
        require(again == expected, "compound RTCP round trip changed the packets")
    }

    static func isExact(_ packet: RTCPPacket) -> Bool {
        guard case .sourceDescription(let sdes) = packet else { return true }
        return sdes.chunks.allSatisfy { ($0.cname?.utf8.count ?? 0) <= 255 }
    }
}
