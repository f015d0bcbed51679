import Testing
@testable import ParleyWire

@Suite struct CodecPayloadTests {
    @Test func vp8KeyframesAreFoundBehindTheExtendedDescriptor() {
        // X=1,S=1,PID=0 | I=1 | M=1 two-byte picture id | VP8 header with P=0 (key frame)
        let key = bytes("90 80 8001 9c 01 2a")
        let delta = bytes("90 80 8002 9d 01 2a")
        let continuation = bytes("80 80 8001 9c")  // S=0: not the start of a frame
        key.withUnsafeBytes { #expect(CodecPayload.isKeyframe(.vp8, payload: $0)) }
        delta.withUnsafeBytes { #expect(!CodecPayload.isKeyframe(.vp8, payload: $0)) }
        continuation.withUnsafeBytes { #expect(!CodecPayload.isKeyframe(.vp8, payload: $0)) }
        bytes("10 00").withUnsafeBytes { #expect(CodecPayload.isKeyframe(.vp8, payload: $0)) }
    }

    @Test func h264KeyframesInSingleNALSTAPAAndFUA() {
        bytes("65 88").withUnsafeBytes { #expect(CodecPayload.isKeyframe(.h264, payload: $0)) }            // IDR
        bytes("41 9a").withUnsafeBytes { #expect(!CodecPayload.isKeyframe(.h264, payload: $0)) }           // non-IDR slice
        bytes("78 0003 674200 0002 68ce").withUnsafeBytes { #expect(CodecPayload.isKeyframe(.h264, payload: $0)) }  // STAP-A with SPS
        bytes("7c 85 88").withUnsafeBytes { #expect(CodecPayload.isKeyframe(.h264, payload: $0)) }         // FU-A start of IDR
        bytes("7c 05 88").withUnsafeBytes { #expect(!CodecPayload.isKeyframe(.h264, payload: $0)) }        // FU-A middle
        bytes("78 00ff 67").withUnsafeBytes { #expect(!CodecPayload.isKeyframe(.h264, payload: $0)) }      // STAP-A size lies
    }

    @Test func vp8DescriptorFieldsAreReadAndRewrittenInPlace() throws {
        // X S | I L T | 15-bit picture id 0x1234 | TL0PICIDX 7 | TID 2, Y | frame
        var payload = bytes("90 e0 9234 07 a0 9d 01 2a")
        let descriptor = try payload.withUnsafeBytes { try VP8PayloadDescriptor(parsing: $0) }
        #expect(descriptor.startOfPartition && descriptor.partitionID == 0)
        #expect(descriptor.pictureID == 0x1234 && descriptor.hasLongPictureID)
        #expect(descriptor.tl0PictureIndex == 7 && descriptor.temporalLayer == 2 && descriptor.layerSync)
        #expect(descriptor.length == 6)
        payload.withUnsafeMutableBytes { raw in
            descriptor.setPictureID(0x7FFF, in: raw)
            descriptor.setTL0PictureIndex(200, in: raw)
        }
        #expect(payload == bytes("90 e0 ffff c8 a0 9d 01 2a"))
        // A 7-bit picture id, no TL0PICIDX.
        let short = try bytes("80 80 05 9c").withUnsafeBytes { try VP8PayloadDescriptor(parsing: $0) }
        #expect(short.pictureID == 5 && !short.hasLongPictureID && short.tl0PictureIndex == nil && short.temporalLayer == nil)
        // Keyframe size (RFC 6386 §9.1): 1280×720 behind the start code.
        bytes("10 50 02 00 9d 01 2a 00 05 d0 02").withUnsafeBytes { raw in
            #expect(CodecPayload.vp8KeyframeSize(raw).map { [$0.width, $0.height] } == [1280, 720])
        }
        // Truncated descriptors are errors, not reads past the end.
        for broken in ["", "90", "90 80", "90 80 92", "90 40", "90 20", "90 e0 9234 07 a0"] {
            #expect(throws: WireError.self) { try bytes(broken).withUnsafeBytes { try VP8PayloadDescriptor(parsing: $0) } }
        }
    }
}

@Suite struct REDPayloadTests {
    @Test func blocksAreFoundAndTheirPayloadTypesRewritten() throws {
        // One redundant Opus block (pt 111, 960 ticks earlier, 3 bytes), then the primary (pt 111, 4 bytes).
        var payload = bytes("ef 0f 00 03 6f aa bb cc 01 02 03 04")
        let red = try payload.withUnsafeBytes { try REDPayload(parsing: $0) }
        #expect(red.redundant == [REDPayload.Block(payloadType: 111, timestampOffset: 960, offset: 5, length: 3, headerOffset: 0)])
        #expect(red.primary == REDPayload.Block(payloadType: 111, timestampOffset: 0, offset: 8, length: 4, headerOffset: 4))
        payload.withUnsafeMutableBytes { red.setPayloadTypes(100, in: $0) }
        #expect(payload == bytes("e4 0f 00 03 64 aa bb cc 01 02 03 04"))
        // The same, without allocating, as the forwarding path does it.
        #expect(payload.withUnsafeBytes { REDPayload.primary(in: $0).map { [$0.offset, $0.length] } } == [8, 4])
        #expect(payload.withUnsafeMutableBytes { REDPayload.setPayloadTypes(111, in: $0) })
        #expect(payload == bytes("ef 0f 00 03 6f aa bb cc 01 02 03 04"))
        #expect(bytes("ef 0f 00 09 6f aa").withUnsafeBytes { REDPayload.primary(in: $0) } == nil)
        // No redundancy: the primary alone.
        let alone = try bytes("6f 01 02").withUnsafeBytes { try REDPayload(parsing: $0) }
        #expect(alone.redundant.isEmpty && alone.primary.offset == 1 && alone.primary.length == 2)
    }

    @Test func brokenREDIsAnError() {
        for hex in ["", "ef 0f", "ef 0f 00 03", "ef 0f 00 09 6f aa"] {
            #expect(throws: WireError.self) { try bytes(hex).withUnsafeBytes { try REDPayload(parsing: $0) } }
        }
    }
}
