import ParleyMediaAPI
import ParleySFU

extension SFU: MediaServer {
    /// One process: every transport is already this SFU's.
    public func adoptTransport(meetingID: String, participantID: String, transportID: String) async {}

    public func meetingStatus(meetingID: String) async -> MeetingMediaStatus? {
        await meetingStatus(meetingID: meetingID, node: "local")
    }
}
