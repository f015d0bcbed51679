import ParleyWire

/// What signaling needs from the media plane, wherever it runs: the SFU in this process
/// (`parley serve`) or SFU processes reached over their control API (`parley signal`).
public protocol MediaServer: Sendable {
    var events: AsyncStream<SFUEvent> { get }
    func negotiate(_ request: NegotiationRequest) async throws -> NegotiationResult
    func closeTransport(meetingID: String, transportID: String, reason: String)
    func closeParticipant(meetingID: String, participantID: String)
    func setBlockedMedia(meetingID: String, participantID: String, blocked: Set<BlockedMedia>)
    /// How large a subscriber shows each received video (by mid): simulcast sends the layer that fits.
    func setViewport(meetingID: String, participantID: String, sizes: [String: VideoSize])
    /// The videos a subscriber shows now (a page of a gallery), at most its video slots: its video
    /// mids carry these and no others, from now on.
    func selectVideos(meetingID: String, participantID: String, sources: [VideoSource])
    func status() async -> SFUStatus
    /// Where a meeting's media runs and every stream in and out (nil: no SFU carries it).
    func meetingStatus(meetingID: String) async -> MeetingMediaStatus?
    /// A participant reconnected its signaling through this node with a transport another node
    /// made: watch it as one of ours (a cluster learns which SFU holds it).
    func adoptTransport(meetingID: String, participantID: String, transportID: String) async
}

/// A negotiation as it crosses the control API: the offer as SDP text.
public struct NegotiationMessage: Codable, Sendable {
    public var meetingID: String
    public var participantID: String
    public var transportID: String?
    public var role: TransportRole
    public var sdp: String
    public var sources: [String: String]
    /// Absent from a node that predates slots: the defaults.
    public var media: MeetingMediaSettings?

    public init(_ request: NegotiationRequest) {
        meetingID = request.meetingID; participantID = request.participantID; transportID = request.transportID
        role = request.role; sdp = request.offer.serialized; sources = request.sources; media = request.media
    }

    public func request() throws(NegotiationError) -> NegotiationRequest {
        let offer: SessionDescription
        do { offer = try SessionDescription(parsing: sdp) } catch { throw .badOffer("\(error)") }
        return NegotiationRequest(meetingID: meetingID, participantID: participantID, transportID: transportID, role: role, offer: offer,
                                  sources: sources, media: (media ?? .defaults).clamped)
    }
}
