/// Why the SFU dropped a packet: each reason has a counter of its own (`dropped<Reason>` in
/// `/healthz`), so an operator can tell an attack from a broken client from a bug of ours.
public enum DropReason: CaseIterable, Sendable {
    /// From an address no transport knows, and not a STUN check naming one (or over the ICE-TCP limits).
    case unknownSender
    /// From a known peer, but not from the address ICE selected for it.
    case wrongAddress
    /// DTLS before any ICE check was answered.
    case dtlsBeforeICE
    /// SRTP or SRTCP before DTLS gave keys.
    case mediaBeforeSRTP
    /// A STUN check that failed its integrity or username checks, an SRTP or SRTCP packet that
    /// failed authentication or replay protection, or ICE-TCP that did not start with STUN.
    case unauthenticated
    /// Not a packet of its kind at all (truncated RTP or RTCP, an empty frame, an unknown first byte).
    case malformed
    /// Video that had come before (a probe repeating it over RTX, a duplicate on the network).
    case duplicate
    /// From a producer a host blocked (muted, video stopped, screen sharing disabled).
    case blocked
    /// RTP of no producer, layer or payload type of the transport (and padding-only RTX probes).
    case unroutable
    /// SRTP or SRTCP protection failed on the way out: the packet was not sent.
    case encryptionFailed

    /// The name of its counter, as `/healthz` shows it.
    public var counterName: String {
        switch self {
        case .unknownSender: "droppedUnknownSender"
        case .wrongAddress: "droppedWrongAddress"
        case .dtlsBeforeICE: "droppedDTLSBeforeICE"
        case .mediaBeforeSRTP: "droppedMediaBeforeSRTP"
        case .unauthenticated: "droppedUnauthenticated"
        case .malformed: "droppedMalformed"
        case .duplicate: "droppedDuplicate"
        case .blocked: "droppedBlocked"
        case .unroutable: "droppedUnroutable"
        case .encryptionFailed: "droppedEncryptionFailed"
        }
    }
}

/// Packets dropped, by reason. Stored fields rather than an array, so counting on the media
/// path never copies or allocates; the subscript's switch is exhaustive, so a new reason cannot
/// be left out of sums or of `/healthz`.
public struct DropCounts: Sendable, Equatable {
    private var unknownSender = 0, wrongAddress = 0, dtlsBeforeICE = 0, mediaBeforeSRTP = 0, unauthenticated = 0
    private var malformed = 0, duplicate = 0, blocked = 0, unroutable = 0, encryptionFailed = 0

    public init() {}

    public subscript(reason: DropReason) -> Int {
        get {
            switch reason {
            case .unknownSender: unknownSender
            case .wrongAddress: wrongAddress
            case .dtlsBeforeICE: dtlsBeforeICE
            case .mediaBeforeSRTP: mediaBeforeSRTP
            case .unauthenticated: unauthenticated
            case .malformed: malformed
            case .duplicate: duplicate
            case .blocked: blocked
            case .unroutable: unroutable
            case .encryptionFailed: encryptionFailed
            }
        }
        set {
            switch reason {
            case .unknownSender: unknownSender = newValue
            case .wrongAddress: wrongAddress = newValue
            case .dtlsBeforeICE: dtlsBeforeICE = newValue
            case .mediaBeforeSRTP: mediaBeforeSRTP = newValue
            case .unauthenticated: unauthenticated = newValue
            case .malformed: malformed = newValue
            case .duplicate: duplicate = newValue
            case .blocked: blocked = newValue
            case .unroutable: unroutable = newValue
            case .encryptionFailed: encryptionFailed = newValue
            }
        }
    }

    /// Every packet dropped, whatever the reason.
    public var total: Int { DropReason.allCases.reduce(0) { $0 + self[$1] } }

    public static func + (a: DropCounts, b: DropCounts) -> DropCounts {
        var sum = a
        for reason in DropReason.allCases { sum[reason] += b[reason] }
        return sum
    }
}

/// Counts of what a worker did with packets; bad input is counted here, never thrown out of the loop.
public struct PacketCounters: Sendable, Equatable {
    public var datagramsReceived = 0
    public var rtpReceived = 0
    public var rtcpReceived = 0
    public var rtpForwarded = 0
    public var retransmitted = 0
    public var nacksSent = 0
    /// Repairs (RTX) of packets that were lost on the way here.
    public var repairsReceived = 0
    public var keyframeRequestsSent = 0
    /// NACKed packets not resent because the same subscriber got them resent under 100 ms ago.
    public var resendsHeldBack = 0
    /// Transport-wide congestion control feedback sent to publishers.
    public var transportFeedbackSent = 0
    /// Padding packets sent to probe a subscriber's path for more bandwidth.
    public var probePacketsSent = 0
    /// Audio packets of a source not among the meeting's loudest: ranked, then sent to nobody.
    public var audioNotLoudest = 0
    /// A subscriber's speaker slot taken over by another source.
    public var speakerSwitches = 0
    /// RTP sent into and taken out of pipes to other workers and SFUs (each packet once per pipe).
    public var pipedPacketsSent = 0
    public var pipedPacketsReceived = 0
    /// Pipe control messages (RTCP APP) that did not parse: counted, the pipe goes on.
    public var pipeMessagesRejected = 0
    public var dropped = DropCounts()

    public init() {}

    /// Every count but the drops, by its `/healthz` name: the one list that sums and shows them.
    static let counts: [(name: String, keyPath: any WritableKeyPath<PacketCounters, Int> & Sendable)] = [
        ("datagramsReceived", \.datagramsReceived), ("rtpReceived", \.rtpReceived), ("rtcpReceived", \.rtcpReceived),
        ("rtpForwarded", \.rtpForwarded), ("retransmitted", \.retransmitted), ("resendsHeldBack", \.resendsHeldBack), ("nacksSent", \.nacksSent),
        ("repairsReceived", \.repairsReceived), ("keyframeRequestsSent", \.keyframeRequestsSent),
        ("transportFeedbackSent", \.transportFeedbackSent), ("probePacketsSent", \.probePacketsSent),
        ("audioNotLoudest", \.audioNotLoudest), ("speakerSwitches", \.speakerSwitches),
        ("pipedPacketsSent", \.pipedPacketsSent), ("pipedPacketsReceived", \.pipedPacketsReceived),
        ("pipeMessagesRejected", \.pipeMessagesRejected),
    ]

    /// Every count by name, drops as `dropped<Reason>`: what `/healthz` shows.
    public var dictionary: [String: Int] {
        var result: [String: Int] = [:]
        for (name, keyPath) in Self.counts { result[name] = self[keyPath: keyPath] }
        for reason in DropReason.allCases { result[reason.counterName] = dropped[reason] }
        return result
    }

    public static func + (a: PacketCounters, b: PacketCounters) -> PacketCounters {
        var sum = a
        for (_, keyPath) in counts { sum[keyPath: keyPath] += b[keyPath: keyPath] }
        sum.dropped = a.dropped + b.dropped
        return sum
    }
}
