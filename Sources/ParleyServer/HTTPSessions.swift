import ParleyTransport

/// WHIP and WHEP sessions by the id in their `Location`, so `DELETE` can end them.
actor HTTPSessions {
    struct Session: Sendable {
        var meetingID: String
        var participantID: String
        var transportID: String
        var isPublisher: Bool
    }

    private var sessions: [String: Session] = [:]

    func add(_ session: Session) -> String {
        let id = RandomToken.make(length: 16)
        sessions[id] = session
        return id
    }

    /// A transport ended on its own (consent expired, DTLS closed): its session id goes too.
    func forget(transportID: String) {
        sessions = sessions.filter { $0.value.transportID != transportID }
    }

    var count: Int { sessions.count }

    func remove(id: String, meetingID: String, isPublisher: Bool) -> Session? {
        guard let session = sessions[id], session.meetingID == meetingID, session.isPublisher == isPublisher else { return nil }
        sessions[id] = nil
        return session
    }
}
