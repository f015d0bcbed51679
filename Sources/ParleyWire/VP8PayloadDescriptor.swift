/// RFC 7741 §4.2: the payload descriptor at the start of every VP8 RTP payload — what an SFU
/// reads (temporal layer, start of a frame) and rewrites (picture ID and TL0PICIDX, which must
/// stay continuous when a subscriber's stream changes source).
public struct VP8PayloadDescriptor: Sendable, Equatable {
    public var startOfPartition: Bool
    public var partitionID: UInt8
    /// The picture ID, 7 or 15 bits (`hasLongPictureID`), if present.
    public var pictureID: UInt16?
    public var hasLongPictureID: Bool
    public var tl0PictureIndex: UInt8?
    /// TID: the temporal layer of this frame, if the descriptor says.
    public var temporalLayer: UInt8?
    /// Y: the frame depends only on the base temporal layer.
    public var layerSync: Bool
    /// Bytes before the VP8 frame data.
    public var length: Int
    /// Where the picture ID and the TL0PICIDX sit in the payload, for rewriting in place.
    public var pictureIDOffset: Int?
    public var tl0PictureIndexOffset: Int?

    public init(parsing payload: UnsafeRawBufferPointer) throws(WireError) {
        guard payload.count >= 1 else { throw .truncated("VP8 payload descriptor") }
        let first = payload[0]
        startOfPartition = first & 0x10 != 0
        partitionID = first & 0x07
        pictureID = nil
        hasLongPictureID = false
        tl0PictureIndex = nil
        temporalLayer = nil
        layerSync = false
        pictureIDOffset = nil
        tl0PictureIndexOffset = nil
        var offset = 1
        if first & 0x80 != 0 {
            guard payload.count > offset else { throw .truncated("VP8 payload descriptor extension") }
            let extensions = payload[offset]
            offset += 1
            if extensions & 0x80 != 0 {
                guard payload.count > offset else { throw .truncated("VP8 picture ID") }
                pictureIDOffset = offset
                if payload[offset] & 0x80 != 0 {
                    guard payload.count > offset + 1 else { throw .truncated("VP8 15-bit picture ID") }
                    hasLongPictureID = true
                    pictureID = UInt16(payload[offset] & 0x7F) << 8 | UInt16(payload[offset + 1])
                    offset += 2
                } else {
                    pictureID = UInt16(payload[offset])
                    offset += 1
                }
            }
            if extensions & 0x40 != 0 {
                guard payload.count > offset else { throw .truncated("VP8 TL0PICIDX") }
                tl0PictureIndexOffset = offset
                tl0PictureIndex = payload[offset]
                offset += 1
            }
            if extensions & 0x30 != 0 {
                guard payload.count > offset else { throw .truncated("VP8 TID/KEYIDX") }
                if extensions & 0x20 != 0 {
                    temporalLayer = payload[offset] >> 6
                    layerSync = payload[offset] & 0x20 != 0
                }
                offset += 1
            }
        }
        guard payload.count > offset else { throw .truncated("VP8 frame after the payload descriptor") }
        length = offset
    }

    /// Writes a picture ID where this descriptor holds one, in its width.
    public func setPictureID(_ id: UInt16, in payload: UnsafeMutableRawBufferPointer) {
        guard let at = pictureIDOffset else { return }
        if hasLongPictureID {
            payload[at] = 0x80 | UInt8((id >> 8) & 0x7F)
            payload[at + 1] = UInt8(id & 0xFF)
        } else {
            payload[at] = UInt8(id & 0x7F)
        }
    }

    public func setTL0PictureIndex(_ index: UInt8, in payload: UnsafeMutableRawBufferPointer) {
        guard let at = tl0PictureIndexOffset else { return }
        payload[at] = index
    }
}
