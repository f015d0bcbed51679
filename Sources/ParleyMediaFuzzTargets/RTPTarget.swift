import ParleyWire

/// RTP: the header and its RFC 8285 extensions, then what the SFU reads from payloads — the VP8
/// payload descriptor (read and rewritten), keyframe detection, RFC 2198 RED blocks.
enum RTPTarget {
    static func run(_ data: UnsafeRawBufferPointer) {
        _ = PacketClass(data)
        guard let header = try? RTPHeader(parsing: data) else {
            // Payload parsers see whatever a packet carries: fuzz them on the raw bytes too.
            payload(data)
            return
        }
        require(header.payloadLength >= 0 && header.payloadOffset + header.payloadLength + header.paddingLength == data.count,
                "RTP header lengths do not add up to the packet")
        if let start = header.extensionOffset {
            let end = start + 4 + header.extensionLength
            require(end <= header.payloadOffset, "RTP extension runs into the payload")
            var checksum: UInt8 = 0
            header.forEachExtension(in: data) { id, offset, length in
                require(id > 0 && offset > start + 4 && offset + length <= end, "RTP extension element \(id) outside the extension block")
                for index in offset..<offset + length { checksum ^= data[index] }
                // Whatever id a peer gave them, each extension the SFU reads must take any element.
                let element = UnsafeRawBufferPointer(rebasing: data[offset..<offset + length])
                _ = try? MidExtension(parsing: element)
                _ = try? RidExtension(parsing: element)
                _ = try? TransportWideSequenceExtension(parsing: element)
                if let level = try? AudioLevelExtension(parsing: element) { require(level.byte == element[element.startIndex], "audio level round trip") }
            }
            _ = checksum
        }

        // The fixed header the SFU writes for its own packets reads back the same.
        var fixed = [UInt8](repeating: 0, count: 12)
        fixed.withUnsafeMutableBytes { out in
            _ = RTPHeader.writeFixed(into: out, hasExtension: false, marker: header.marker, payloadType: header.payloadType,
                                     sequenceNumber: header.sequenceNumber, timestamp: header.timestamp, ssrc: header.ssrc)
        }
        fixed.withUnsafeBytes { raw in
            guard let again = try? RTPHeader(parsing: raw) else { fatalError("a written RTP header does not parse") }
            require(again.marker == header.marker && again.payloadType == header.payloadType && again.sequenceNumber == header.sequenceNumber
                    && again.timestamp == header.timestamp && again.ssrc == header.ssrc, "RTP fixed header round trip")
        }
        payload(UnsafeRawBufferPointer(rebasing: data[header.payloadOffset..<header.payloadOffset + header.payloadLength]))
    }

    static func payload(_ payload: UnsafeRawBufferPointer) {
        vp8(payload)
        red(payload)
        _ = CodecPayload.isKeyframe(.h264, payload: payload)
        _ = CodecPayload.isKeyframe(.opus, payload: payload)
    }

    static func vp8(_ payload: UnsafeRawBufferPointer) {
        let start = CodecPayload.vp8FirstPartitionStart(payload)
        let keyframe = CodecPayload.isKeyframe(.vp8, payload: payload)
        if CodecPayload.vp8KeyframeSize(payload) != nil { require(keyframe, "a VP8 keyframe size outside a keyframe") }
        guard let descriptor = try? VP8PayloadDescriptor(parsing: payload) else {
            require(start == nil, "VP8 frame start found where the descriptor does not parse")
            return
        }
        require(descriptor.length < payload.count, "VP8 descriptor longer than its payload")
        let startsFrame = descriptor.startOfPartition && descriptor.partitionID == 0
        require(start == (startsFrame ? descriptor.length : nil), "the two VP8 descriptor readers disagree on where the frame starts")

        // The rewriting a consumer does, in place: it must change the two fields and nothing else.
        var copy = Array(payload)
        let pictureID: UInt16 = descriptor.hasLongPictureID ? 0x5A5A & 0x7FFF : 0x55
        copy.withUnsafeMutableBytes { out in
            descriptor.setPictureID(pictureID, in: out)
            descriptor.setTL0PictureIndex(0xA7, in: out)
        }
        guard let rewritten = try? copy.withUnsafeBytes({ (raw) throws(WireError) in try VP8PayloadDescriptor(parsing: raw) }) else {
            fatalError("a rewritten VP8 descriptor does not parse")
        }
        var expected = descriptor
        if descriptor.pictureID != nil { expected.pictureID = pictureID }
        if descriptor.tl0PictureIndex != nil { expected.tl0PictureIndex = 0xA7 }
        require(rewritten == expected, "VP8 rewriting changed more than the picture ID and TL0PICIDX")
        require(copy[descriptor.length...].elementsEqual(payload[descriptor.length...]), "VP8 rewriting touched the frame")
    }

    static func red(_ payload: UnsafeRawBufferPointer) {
        let primary = REDPayload.primary(in: payload)
        guard let parsed = try? REDPayload(parsing: payload) else {
            require(primary == nil, "RED primary found in a payload that does not parse")
            return
        }
        require(primary.map { $0.offset == parsed.primary.offset && $0.length == parsed.primary.length } == true,
                "the two RED readers disagree on the primary block")
        for block in parsed.redundant + [parsed.primary] {
            require(block.offset >= 0 && block.length >= 0 && block.offset + block.length <= payload.count, "RED block outside the payload")
        }
        // Rewriting payload types: the allocation-free form and the parsed form agree.
        var a = Array(payload), b = Array(payload)
        a.withUnsafeMutableBytes { parsed.setPayloadTypes(111, in: $0) }
        let ok = b.withUnsafeMutableBytes { REDPayload.setPayloadTypes(111, in: $0) }
        require(ok && a == b, "the two RED payload type rewriters disagree")
    }
}
