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
}
