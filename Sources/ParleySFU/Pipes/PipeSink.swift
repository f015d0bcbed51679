import ParleyBase
import ParleyMediaAPI
import ParleyTransport
import ParleyWire

/// A Producer's sink towards one pipe (one per producer and pipe): what the far side's
/// subscribers want of it crosses, once, however many of them there are. Video: the wanted
/// layers, up to the wanted temporal layer (a frame left out takes its numbers with it, so a gap
/// on the pipe is a loss the far side may ask for again). Audio: while the producer is among the
/// meeting's loudest here, so the far side ranks every source that could be among the loudest
/// of the whole meeting, and a new speaker's first loud packet crosses at once.
final class PipeSink {
    struct Layer {
        let ssrc: UInt32
        var numbering = RTPRewriter()
        var vp8: VP8Rewriter?
        /// Whether the last packet of this layer crossed: a layer that starts crossing again
        /// numbers on from where it stopped, with no gap.
        var crossing = false
        var packets = 0
        var bytesSinceSample = 0
        var bitrate = 0
    }

    /// The header extension id of the audio level on pipes (the only extension they carry).
    static let audioLevelID: UInt8 = 1

    /// Strong: the link keeps its sinks until its next tick withdraws a closed producer, which
    /// must still be there to ask. The producer's own reference goes when it closes.
    let producer: Producer
    unowned let link: PipeLink
    private(set) var layers: [Layer]
    /// Video: the layers the far side wants (bit per layer), and the highest temporal layer.
    var wantedLayers: UInt64 = 0
    var temporalCap = 2
    private var temporalCapInForce = 2

    init(producer: Producer, link: PipeLink) {
        self.producer = producer
        self.link = link
        layers = producer.encodings.map { _ in
            Layer(ssrc: .random(in: 1...UInt32.max), vp8: producer.codecKind == .vp8 ? VP8Rewriter() : nil)
        }
    }

    func isWanted(layer: Int) -> Bool { producer.kind == .audio || wantedLayers & (1 << UInt64(min(layer, 63))) != 0 }

    func forward(_ packet: IncomingPacket, now: Nanoseconds, output: any DatagramOutput, counters: inout PacketCounters) {
        let index = packet.layer
        guard index < layers.count else { return }
        if producer.kind == .audio {
            guard link.router.speakers.isListed(producer) else { return }
        } else {
            guard isWanted(layer: index) else {
                layers[index].crossing = false
                return
            }
            // What the far side wants, and what the pipe can take (its loss): from a base frame on.
            if packet.startsBaseLayerFrame { temporalCapInForce = min(temporalCap, link.trunk.bandwidth.temporalCap) }
            if let temporal = packet.temporalLayer, temporal > temporalCapInForce {
                if layers[index].crossing {
                    layers[index].numbering.drop(sequence: packet.header.sequenceNumber)
                    if let descriptor = packet.vp8 { layers[index].vp8?.drop(descriptor) }
                }
                return
            }
        }
        if !layers[index].crossing {
            layers[index].numbering.switchSource()
            layers[index].vp8?.switchSource()
            layers[index].crossing = true
        }
        let header = packet.header
        guard let (sequence, timestamp) = layers[index].numbering.rewrite(sequence: header.sequenceNumber, timestamp: header.timestamp, now: now,
                                                                          clockRate: producer.codec.clockRate) else { return }
        let slot = output.reserveSlot()
        guard let length = write(packet.bytes, header: header, layer: index, sequence: sequence, timestamp: timestamp, audioLevel: packet.audioLevel,
                                 vp8: packet.vp8, resend: false, into: slot),
              link.trunk.sendRTP(slot, length: length, output: output, counters: &counters) else { return }
        layers[index].packets += 1
        layers[index].bytesSinceSample += length
        counters.pipedPacketsSent += 1
    }

    /// Answers the far side's NACK out of the producer's retransmission buffer, on the same SSRC.
    func retransmit(layer index: Int, _ sequences: [UInt16], output: any DatagramOutput, counters: inout PacketCounters) {
        guard index < layers.count, let buffer = producer.encodings[index].retransmissions else { return }
        for outgoing in sequences.prefix(64) {
            guard let incoming = layers[index].numbering.incomingSequence(of: outgoing), let packet = buffer.packet(sequence: incoming),
                  let header = try? RTPHeader(parsing: packet) else { continue }
            let slot = output.reserveSlot()
            guard let length = write(packet, header: header, layer: index, sequence: outgoing,
                                     timestamp: layers[index].numbering.outgoingTimestamp(of: header.timestamp), audioLevel: nil, vp8: nil,
                                     resend: true, into: slot),
                  link.trunk.sendRTP(slot, length: length, output: output, counters: &counters) else { continue }
            counters.retransmitted += 1
        }
    }

    /// The producer's payload type, the pipe's SSRC and numbers, the audio level (the far side
    /// ranks on it), the payload as it came (VP8: renumbered pictures).
    private func write(_ packet: UnsafeRawBufferPointer, header: RTPHeader, layer: Int, sequence: UInt16, timestamp: UInt32, audioLevel: UInt8?,
                       vp8 descriptor: VP8PayloadDescriptor?, resend: Bool, into slot: UnsafeMutableRawBufferPointer) -> Int? {
        let extensionBlock = audioLevel == nil ? 0 : OneByteExtensionWriter.blockLength(elements: 1, dataBytes: 1)
        let total = 12 + extensionBlock + header.payloadLength
        guard total + SRTPSession.maximumTrailer <= slot.count else { return nil }
        var offset = RTPHeader.writeFixed(into: slot, hasExtension: extensionBlock > 0, marker: header.marker, payloadType: header.payloadType,
                                          sequenceNumber: sequence, timestamp: timestamp, ssrc: layers[layer].ssrc)
        if let audioLevel {
            var extensions = OneByteExtensionWriter(into: slot, at: offset)
            AudioLevelExtension(byte: audioLevel).write(id: Self.audioLevelID, into: &extensions)
            offset = extensions.finish()
        }
        let payload = UnsafeRawBufferPointer(rebasing: packet[header.payloadOffset..<(header.payloadOffset + header.payloadLength)])
        let written = UnsafeMutableRawBufferPointer(rebasing: slot[offset..<(offset + payload.count)])
        written.copyMemory(from: payload)
        layers[layer].vp8?.rewrite(written, descriptor: descriptor, retransmission: resend)
        return offset + payload.count
    }

    /// Samples each layer's rate on the pipe (call every `interval`).
    func sampleBitrates(interval: Nanoseconds) {
        for index in layers.indices {
            let measured = Double(layers[index].bytesSinceSample * 8) * 1e9 / Double(interval)
            layers[index].bitrate = Int(0.6 * Double(layers[index].bitrate) + 0.4 * measured)
            layers[index].bytesSinceSample = 0
        }
    }

    var announcement: PipeAnnouncement {
        PipeAnnouncement(meeting: link.router.meetingID, id: producer.id, participant: producer.participantID, kind: producer.kind,
                         source: producer.source, mid: producer.mid, codec: PipeCodec(producer.codec), red: producer.redPayloadType,
                         ssrcs: layers.map(\.ssrc), rids: producer.encodings.map(\.rid), sourceID: producer.sourceID)
    }

    func state(now: Nanoseconds) -> PipeProducerState {
        PipeProducerState(meeting: link.router.meetingID, id: producer.id,
                          active: producer.encodings.map { $0.isActive(now: now) },
                          bitrates: producer.encodings.indices.map { producer.bitrate(ofLayer: $0) },
                          widths: producer.encodings.map(\.width), heights: producer.encodings.map(\.height),
                          temporalLayers: producer.temporalLayerCount(now: now))
    }
}
