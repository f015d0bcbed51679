/// What one sink does with one incoming packet, decided without changing anything (tests assert
/// on it); the sink then applies it. No payloads beyond a layer number: deciding never allocates.
enum ForwardingDecision: Equatable {
    case forward
    /// Forward, switching to this simulcast layer first (its keyframe has come).
    case switchLayer(to: Int)
    /// Do not forward, and ask the publisher for a keyframe (the sink has waited for one long enough).
    case requestKeyframe
    case drop(ForwardingDropReason)
}

/// Why a sink does not forward a packet it was offered.
enum ForwardingDropReason: Equatable {
    /// The subscriber's transport is not connected (no keys, no address yet).
    case notSending
    /// Its bandwidth leaves no room for this video.
    case pausedForBandwidth
    /// Another simulcast layer than the one it sends (or the wanted one, before its keyframe).
    case otherLayer
    /// Its stream starts (or resumes) from a keyframe, which has not come yet.
    case waitingForKeyframe
    /// A VP8 temporal layer above what its bandwidth leaves room for (a lower frame rate).
    case temporalLayerFiltered
}
