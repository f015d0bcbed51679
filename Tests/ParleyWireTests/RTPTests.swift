import Testing
@testable import ParleyWire

@Suite struct RTPTests {
    // v=2, X=1, PT=96, M=1, seq=0x1234, ts=0xDEADBEEF, ssrc=0xCAFEBABE,
    // one-byte extension block: id 4 (mid "1"), id 1 (audio level 0x55), padding; payload 3 bytes.
    let withExtensions = bytes("""
        90 e0 1234 deadbeef cafebabe
        bede 0002 40 31 10 55 00 00 00 00
        aa bb cc
        """)

    @Test func parsesHeaderExtensionsAndPayload() throws {
        let header = try withExtensions.withUnsafeBytes { try RTPHeader(parsing: $0) }
        #expect(header.marker && header.payloadType == 96)
        #expect(header.sequenceNumber == 0x1234 && header.timestamp == 0xDEAD_BEEF && header.ssrc == 0xCAFE_BABE)
        #expect(header.extensionProfile == 0xBEDE && header.extensionLength == 8)
        #expect(header.payloadOffset == 24 && header.payloadLength == 3)
        var elements: [(UInt8, [UInt8])] = []
        withExtensions.withUnsafeBytes { raw in
            header.forEachExtension(in: raw) { id, offset, length in elements.append((id, Array(raw[offset..<offset + length]))) }
        }
        #expect(elements.map(\.0) == [4, 1])
        #expect(elements.map(\.1) == [[0x31], [0x55]])
    }

    @Test func twoByteExtensionsCSRCsAndPadding() throws {
        // CC=1, P=1, X=1; two-byte profile 0x1000 with id 7 length 2; payload 2 bytes; 2 bytes padding.
        let packet = bytes("b1 60 0001 00000001 00000002 00000003 1000 0001 07 02 abcd 1122 0002")
        let header = try packet.withUnsafeBytes { try RTPHeader(parsing: $0) }
        #expect(header.csrcCount == 1 && header.hasPadding && header.paddingLength == 2)
        #expect(header.payloadLength == 2)
        var found: [UInt8] = []
        packet.withUnsafeBytes { raw in header.forEachExtension(in: raw) { id, offset, length in found = [id] + Array(raw[offset..<offset + length]) } }
        #expect(found == [7, 0xAB, 0xCD])
    }

    @Test func rejectsTruncatedAndWrongVersion() {
        #expect(throws: WireError.self) { try [UInt8](repeating: 0x80, count: 11).withUnsafeBytes { try RTPHeader(parsing: $0) } }
        #expect(throws: WireError.invalid("RTP version 1")) { try bytes("40 60 0001 00000001 00000002").withUnsafeBytes { try RTPHeader(parsing: $0) } }
        // Extension says 4 words but the packet ends.
        #expect(throws: WireError.self) { try bytes("90 60 0001 00000001 00000002 bede 0004 00").withUnsafeBytes { try RTPHeader(parsing: $0) } }
        // Padding longer than the packet.
        #expect(throws: WireError.self) { try bytes("a0 60 0001 00000001 00000002 ff").withUnsafeBytes { try RTPHeader(parsing: $0) } }
    }

    @Test func sequenceNumbersCompareAcrossWraparound() {
        #expect(SequenceNumber.isNewer(0, than: 65000))
        #expect(SequenceNumber.isNewer(1, than: 65535))
        #expect(!SequenceNumber.isNewer(65000, than: 0))
        #expect(SequenceNumber.isNewer(32767, than: 0))
        #expect(!SequenceNumber.isNewer(7, than: 7))
    }

    @Test func demultiplexesByFirstByte() {
        let classes = [[0x00, 0x01], [0x16, 0xFE], [0x80, 0x60], [0x80, 0xC8], [0x81, 0xC9], [0xFF, 0x00]].map { (b: [UInt8]) in b.withUnsafeBytes { PacketClass($0) } }
        #expect(classes == [.stun, .dtls, .rtp, .rtcp, .rtcp, .unknown])
    }

    @Test func tenThousandMutatedPacketsNeverCrash() {
        for input in fuzzCorpus(from: [withExtensions], count: 10_000) {
            input.withUnsafeBytes { raw in
                guard let header = try? RTPHeader(parsing: raw) else { return }
                #expect(header.payloadOffset + header.payloadLength + header.paddingLength == raw.count)
                header.forEachExtension(in: raw) { _, offset, length in #expect(offset + length <= raw.count) }
            }
        }
    }
}
