import ParleyWire
import Testing

@Suite struct HeaderExtensionTests {
    @Test func theWriterLaysOutAOneByteBlockAsRFC8285Shows() {
        // RTPTests' packet: mid "1" as id 4, audio level 0x55 as id 1, then padding to a word.
        var block = [UInt8](repeating: 0xFF, count: 16)
        let end = block.withUnsafeMutableBytes { raw -> Int in
            var writer = OneByteExtensionWriter(into: raw, at: 0)
            MidExtension(mid: "1").write(id: 4, into: &writer)
            AudioLevelExtension(byte: 0x55).write(id: 1, into: &writer)
            return writer.finish()
        }
        #expect(end == OneByteExtensionWriter.blockLength(elements: 2, dataBytes: 2))
        #expect(Array(block[0..<end]) == bytes("bede 0001 40 31 10 55"))
        // Three elements, 1 + 1 + 2 data bytes: seven bytes padded to eight.
        let end3 = block.withUnsafeMutableBytes { raw -> Int in
            var writer = OneByteExtensionWriter(into: raw, at: 0)
            MidExtension(mid: "1").write(id: 4, into: &writer)
            AudioLevelExtension(byte: 0x55).write(id: 1, into: &writer)
            TransportWideSequenceExtension(sequence: 0xABCD).write(id: 3, into: &writer)
            return writer.finish()
        }
        #expect(Array(block[0..<end3]) == bytes("bede 0002 40 31 10 55 31 abcd 00"))
        #expect(OneByteExtensionWriter.blockLength(elements: 0, dataBytes: 0) == 0)
    }

    @Test func audioLevelIsTheVoiceBitAndMinusDBov() throws {
        // RFC 6464 §3: V=1 and level 42 dBov below the overload point.
        let level = try [UInt8]([0xAA]).withUnsafeBytes { try AudioLevelExtension(parsing: $0) }
        #expect(level == AudioLevelExtension(voiceActivity: true, level: 42))
        #expect(level.byte == 0xAA)
        #expect(AudioLevelExtension(voiceActivity: false, level: 200).level == 200 & 0x7F)
        #expect(throws: WireError.self) { try [UInt8]().withUnsafeBytes { try AudioLevelExtension(parsing: $0) } }
    }

    @Test func eachExtensionReadsBackWhatWasWrittenInAPacket() throws {
        var packet = [UInt8](repeating: 0, count: 64)
        let length = packet.withUnsafeMutableBytes { raw -> Int in
            let offset = RTPHeader.writeFixed(into: raw, hasExtension: true, marker: true, payloadType: 96, sequenceNumber: 9, timestamp: 1, ssrc: 2)
            var writer = OneByteExtensionWriter(into: raw, at: offset)
            MidExtension(mid: "video-0").write(id: 1, into: &writer)
            RidExtension(rid: "h").write(id: 2, into: &writer)
            TransportWideSequenceExtension(sequence: 65_535).write(id: 5, into: &writer)
            AudioLevelExtension(voiceActivity: false, level: 127).write(id: 14, into: &writer)
            let end = writer.finish()
            raw[end] = 0xEE  // one payload byte
            return end + 1
        }
        let header = try packet.withUnsafeBytes { try RTPHeader(parsing: UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
        var read: [UInt8: [UInt8]] = [:]
        packet.withUnsafeBytes { raw in header.forEachExtension(in: raw) { id, offset, count in read[id] = Array(raw[offset..<offset + count]) } }
        #expect(try read[1].map { try $0.withUnsafeBytes { try MidExtension(parsing: $0) } } == MidExtension(mid: "video-0"))
        #expect(try read[2].map { try $0.withUnsafeBytes { try RidExtension(parsing: $0) } } == RidExtension(rid: "h"))
        #expect(try read[5].map { try $0.withUnsafeBytes { try TransportWideSequenceExtension(parsing: $0) } } == TransportWideSequenceExtension(sequence: 65_535))
        #expect(try read[14].map { try $0.withUnsafeBytes { try AudioLevelExtension(parsing: $0) } } == AudioLevelExtension(voiceActivity: false, level: 127))
        #expect(header.payloadLength == 1)
        #expect(throws: WireError.self) { try [UInt8]([1]).withUnsafeBytes { try TransportWideSequenceExtension(parsing: $0) } }
    }
}
