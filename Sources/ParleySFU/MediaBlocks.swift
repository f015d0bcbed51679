import ParleyMediaAPI

extension BlockedMedia {
    static func category(of producer: Producer) -> BlockedMedia {
        switch producer.kind {
        case .audio: return .audio
        case .video: return producer.source == "screen" ? .screen : .video
        }
    }
}

extension WorkerCore {
    /// Sets what a participant may not send, now and for producers it adds later.
    public func setBlockedMedia(meetingID: String, participantID: String, blocked: Set<BlockedMedia>) {
        assertOnOwnerThread()
        if blocked.isEmpty {
            blockedMedia[meetingID]?[participantID] = nil
            if blockedMedia[meetingID]?.isEmpty == true { blockedMedia[meetingID] = nil }
        } else {
            blockedMedia[meetingID, default: [:]][participantID] = blocked
        }
        for transport in transports.values where transport.meetingID == meetingID && transport.participantID == participantID {
            applyBlockedMedia(to: transport)
        }
    }

    func applyBlockedMedia(to transport: WebRtcTransport) {
        let blocked = blockedMedia[transport.meetingID]?[transport.participantID] ?? []
        for producer in transport.producers { producer.blocked = blocked.contains(BlockedMedia.category(of: producer)) }
    }
}
