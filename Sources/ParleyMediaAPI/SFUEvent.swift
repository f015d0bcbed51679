/// What the SFU tells the control plane.
public enum SFUEvent: Sendable, Equatable, Codable {
    case transportConnected(meetingID: String, participantID: String, transportID: String)
    case transportClosed(meetingID: String, participantID: String, transportID: String, reason: String)
    /// A participant's receiving mids show other tracks now (a source left, another took its place).
    case assignmentsChanged(meetingID: String, update: AssignmentUpdate)
    /// Simulcast: which layers (rids) of a publisher's track somebody receives; the publisher
    /// pauses the others.
    case layersWanted(meetingID: String, participantID: String, mid: String, rids: [String])
    /// The participant now speaking in a meeting (the loudest, held for half a second).
    case activeSpeaker(meetingID: String, participantID: String)
    /// The receiving video mids of a participant that are paused because its bandwidth estimate
    /// leaves no room for them (the whole list, each time it changes); audio is never paused.
    case videoPaused(meetingID: String, participantID: String, mids: [String])
}
