/// What a meeting's rule asks the hub to do once the new state is in place. Rules never send,
/// store or await anything themselves: they return these, the hub applies them in order, and
/// tests assert on them.
enum MeetingEffect: Sendable, Equatable {
    /// To this node's connections of these participants (or waiting people), picked when the rule ran.
    case deliver(to: [String], OutgoingMessage)
    /// To the live store: it stores the change, then tells the other nodes (their deliveries too).
    case publish(MeetingEvent.Change?, MeetingEvent.Delivery?)
    /// The meeting's record changed: write it through, in order.
    case persist(MeetingRecord)
    /// A host on another node let in someone who waits on this node: send them `joined`.
    case sendJoined(participantID: String, identity: JoinIdentity, others: [ParticipantInfo])
    /// A participant whose node died did not come back in time: its media stops.
    case stopMedia(participantID: String)
    /// This node took over a dead node's WHIP publisher: watch its transport.
    case watchAdopted(participantID: String, transportID: String?)
    /// Takes the store's entry of a participant whose node died (unless it moved meanwhile).
    case removeOrphan(participantID: String, node: String)
    /// Nobody here is in the meeting any more: stop receiving its events.
    case unfollow
}
