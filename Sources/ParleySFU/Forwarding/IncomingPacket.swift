import ParleyMediaAPI
import ParleyWire

/// What the SFU learns of one received RTP packet before fanning it out: found once, the same for
/// every sink (the layer it belongs to, whether it is a keyframe, its VP8 descriptor and audio
/// level, where a RED packet's primary block lies), so no sink parses the packet again.
struct IncomingPacket {
    /// The packet, decrypted (a repair already turned back into the packet it repairs).
    let bytes: UnsafeRawBufferPointer
    let header: RTPHeader
    /// The Producer's encoding (simulcast layer) it belongs to.
    let layer: Int
    /// It came over RTX, repairing a loss on the way here.
    let isRepair: Bool
    let isKeyframe: Bool
    let vp8: VP8PayloadDescriptor?
    /// RFC 6464, as sent (voice bit and −dBov).
    let audioLevel: UInt8?
    /// RFC 2198 redundant audio: where its primary block lies in the payload (nil when not RED, or
    /// when the blocks do not parse).
    let redPrimary: (offset: Int, length: Int)?
    let isRED: Bool

    init(_ bytes: UnsafeRawBufferPointer, header: RTPHeader, layer: Int, isRepair: Bool, of producer: Producer) {
        self.bytes = bytes
        self.header = header
        self.layer = layer
        self.isRepair = isRepair
        let payload = UnsafeRawBufferPointer(rebasing: bytes[header.payloadOffset..<(header.payloadOffset + header.payloadLength)])
        isKeyframe = producer.kind == .video && CodecPayload.isKeyframe(producer.codecKind, payload: payload)
        vp8 = producer.codecKind == .vp8 ? try? VP8PayloadDescriptor(parsing: payload) : nil
        var level: UInt8?
        if let id = producer.audioLevelExtensionID {
            header.forEachExtension(in: bytes) { element, offset, length in
                if element == id, length >= 1 { level = bytes[offset] }
            }
        }
        audioLevel = level
        isRED = producer.redPayloadType.map { header.payloadType == $0 } ?? false
        redPrimary = isRED ? REDPayload.primary(in: payload) : nil
    }

    var payload: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[header.payloadOffset..<(header.payloadOffset + header.payloadLength)])
    }

    var temporalLayer: Int? { vp8?.temporalLayer.map(Int.init) }

    /// The first packet of a VP8 base-layer frame: every frame after it can be decoded from it,
    /// so a change of the temporal layers forwarded takes effect here.
    var startsBaseLayerFrame: Bool {
        guard let vp8, vp8.temporalLayer == 0 else { return false }
        return vp8.startOfPartition && vp8.partitionID == 0
    }
}
