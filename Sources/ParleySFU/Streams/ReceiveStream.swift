import ParleyBase
import ParleyMediaAPI
import ParleyTransport
import ParleyWire

/// One incoming RTP stream: a Producer's only encoding, or one of its simulcast layers (lowest
/// first, as offered), with the SSRC of its repairs (RTX). It owns what is measured of the
/// stream: reception statistics, loss detection (NACK), the retransmission buffer, the picture
/// size, and rates per layer and temporal layer.
public struct ReceiveStream {
    public var rid: String?
    public var ssrc: UInt32?
    public var rtxSSRC: UInt32?
    public var statistics = ReceiveStatistics()
    public var nack = NACKGenerator()
    /// The last packets of this stream (video), to answer NACKs.
    var retransmissions: RetransmissionBuffer?
    /// The picture size its last keyframe announced (VP8), once one came.
    public var width: Int?
    public var height: Int?
    /// When its last packet came: a layer the publisher paused (or stopped sending) goes quiet.
    public var lastPacketAt: Nanoseconds?
    /// Bytes since the last rate sample, and the smoothed rate (bits per second).
    var bytesSinceSample = 0
    public internal(set) var bitrate = 0
    /// The same per VP8 temporal layer (TID 0, 1, 2), when the publisher sends temporal layers.
    var temporalBytesSinceSample = [0, 0, 0]
    var temporalBitrates = [0, 0, 0]
    /// The highest TID seen lately (nil: no temporal layers).
    public internal(set) var highestTemporalLayer: Int?
    var temporalLayerSeenAt: Nanoseconds = 0

    public init(rid: String? = nil, ssrc: UInt32? = nil, rtxSSRC: UInt32? = nil) {
        self.rid = rid; self.ssrc = ssrc; self.rtxSSRC = rtxSSRC
    }

    /// Takes one packet of this stream (a repair already unwrapped) into its statistics and rates;
    /// false when the packet came before (video only: a probe repeating it over RTX, a duplicate
    /// on the network), which is not forwarded again.
    mutating func receive(_ header: RTPHeader, kind: MediaKind, clockRate: UInt32, temporalLayer: Int?, now: Nanoseconds) -> Bool {
        if kind == .video, !nack.received(header.sequenceNumber, now: now) { return false }
        statistics.update(sequence: header.sequenceNumber, timestamp: header.timestamp, arrival: now, clockRate: clockRate)
        lastPacketAt = now
        bytesSinceSample &+= header.payloadLength + 40
        if let temporal = temporalLayer, temporal < 3 {
            temporalBytesSinceSample[temporal] &+= header.payloadLength + 40
            if temporal >= highestTemporalLayer ?? 0 || now &- temporalLayerSeenAt > 2_000_000_000 {
                highestTemporalLayer = temporal
                temporalLayerSeenAt = now
            }
        }
        return true
    }

    /// A piped copy's layer: whether the origin's publisher sends it (most layers do not cross).
    var activeAtOrigin: Bool?

    /// Sending now: a packet within the last second.
    func isActive(now: Nanoseconds) -> Bool {
        if let activeAtOrigin { return activeAtOrigin }
        guard let lastPacketAt else { return false }
        return now &- lastPacketAt < 1_000_000_000
    }
}
