/// RTCP Picture Loss Indication (RFC 4585 §6.3.1): "send me a keyframe".
public struct PictureLossIndication: Sendable, Equatable {
    static let format: UInt8 = 1
    public var senderSSRC: UInt32
    public var mediaSSRC: UInt32

    public init(senderSSRC: UInt32, mediaSSRC: UInt32) { self.senderSSRC = senderSSRC; self.mediaSSRC = mediaSSRC }

    public init(parsing bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= 12 else { throw .truncated("PLI needs 12 bytes") }
        senderSSRC = bytes.readU32(at: 4)
        mediaSSRC = bytes.readU32(at: 8)
    }

    public func write(into out: inout [UInt8]) {
        let start = out.beginRTCP(count: Self.format, type: .payloadFeedback)
        out.appendU32(senderSSRC)
        out.appendU32(mediaSSRC)
        out.finishRTCP(startingAt: start)
    }
}
