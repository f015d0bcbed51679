/// Keyframe detection from codec payload descriptors: what the SFU needs to start a subscriber's
/// stream cleanly, read only from bytes end-to-end encryption leaves in clear.
public enum CodecPayload {
    public enum Kind: UInt8, Sendable { case opus, vp8, h264, other }

    public static func kind(ofCodecNamed name: String) -> Kind {
        switch name.uppercased() {
        case "OPUS": return .opus
        case "VP8": return .vp8
        case "H264": return .h264
        default: return .other
        }
    }

    /// True if the RTP payload starts a keyframe.
    @inlinable
    public static func isKeyframe(_ kind: Kind, payload: UnsafeRawBufferPointer) -> Bool {
        switch kind {
        case .vp8: return vp8IsKeyframe(payload)
        case .h264: return h264IsKeyframe(payload)
        case .opus, .other: return false
        }
    }

    /// RFC 7741 §4.2–4.3: payload descriptor, then the VP8 header whose P bit is 0 on keyframes.
    @inlinable
    public static func vp8IsKeyframe(_ payload: UnsafeRawBufferPointer) -> Bool {
        guard let offset = vp8FirstPartitionStart(payload) else { return false }
        return payload[offset] & 0x01 == 0
    }

    /// The picture size a VP8 keyframe announces (RFC 6386 §9.1: after the 3-byte frame tag, the
    /// start code 9d 01 2a, then 14-bit width and height, little endian), or nil.
    public static func vp8KeyframeSize(_ payload: UnsafeRawBufferPointer) -> (width: Int, height: Int)? {
        guard let offset = vp8FirstPartitionStart(payload), payload[offset] & 0x01 == 0, payload.count >= offset + 10,
              payload[offset + 3] == 0x9D, payload[offset + 4] == 0x01, payload[offset + 5] == 0x2A else { return nil }
        let width = Int(payload[offset + 6]) | Int(payload[offset + 7] & 0x3F) << 8
        let height = Int(payload[offset + 8]) | Int(payload[offset + 9] & 0x3F) << 8
        return (width, height)
    }

    /// Where the VP8 frame starts after the payload descriptor, in the packet that begins a frame
    /// (S bit, partition 0); nil for other packets.
    @inlinable
    public static func vp8FirstPartitionStart(_ payload: UnsafeRawBufferPointer) -> Int? {
        guard payload.count >= 1 else { return nil }
        let first = payload[0]
        let startOfPartition = first & 0x10 != 0
        let partitionID = first & 0x07
        guard startOfPartition, partitionID == 0 else { return nil }
        var offset = 1
        if first & 0x80 != 0 {
            guard payload.count > offset else { return nil }
            let x = payload[offset]
            offset += 1
            if x & 0x80 != 0 {
                guard payload.count > offset else { return nil }
                offset += payload[offset] & 0x80 != 0 ? 2 : 1
            }
            if x & 0x40 != 0 { offset += 1 }
            if x & 0x30 != 0 { offset += 1 }
        }
        guard payload.count > offset else { return nil }
        return offset
    }

    /// RFC 6184: an IDR slice or SPS, alone, inside STAP-A, or at the start of a FU-A.
    @inlinable
    public static func h264IsKeyframe(_ payload: UnsafeRawBufferPointer) -> Bool {
        guard payload.count >= 1 else { return false }
        let type = payload[0] & 0x1F
        switch type {
        case 5, 7: return true
        case 24:
            var offset = 1
            while offset + 2 < payload.count {
                let size = Int(payload.readU16(at: offset))
                guard size > 0, offset + 2 + size <= payload.count else { return false }
                let inner = payload[offset + 2] & 0x1F
                if inner == 5 || inner == 7 { return true }
                offset += 2 + size
            }
            return false
        case 28:
            guard payload.count >= 2 else { return false }
            let start = payload[1] & 0x80 != 0
            let inner = payload[1] & 0x1F
            return start && (inner == 5 || inner == 7)
        default: return false
        }
    }
}
