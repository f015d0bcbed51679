import ParleyBase
import ParleyControl

/// WHIP and WHEP sessions by the id in their `Location`, so `DELETE` can end them. In a cluster
/// they are also kept in the shared store, so any signaling node can end any session.
actor HTTPSessions {
    typealias Session = MediaSession

    private var sessions: [String: Session] = [:]
    private let shared: (any MediaSessionStore)?

    init(shared: (any MediaSessionStore)? = nil) { self.shared = shared }

    func add(_ session: Session) async -> String {
        let id = RandomToken.make(length: 16)
        sessions[id] = session
        await shared?.save(id, session)
        return id
    }

    /// A transport ended on its own (consent expired, DTLS closed): its session id goes too.
    func forget(transportID: String) async {
        sessions = sessions.filter { $0.value.transportID != transportID }
        if let shared, let id = await shared.session(forTransport: transportID) { await shared.delete(id, transportID: transportID) }
    }

    /// Sessions made through this node.
    var count: Int { sessions.count }

    func remove(id: String, meetingID: String, isPublisher: Bool) async -> Session? {
        var session = sessions[id]
        if let shared {
            // The shared copy is the truth: gone means another node ended the session.
            session = await shared.load(id)
            if session == nil { sessions[id] = nil }
        }
        guard let session, session.meetingID == meetingID, session.isPublisher == isPublisher else { return nil }
        sessions[id] = nil
        await shared?.delete(id, transportID: session.transportID)
        return session
    }
}
