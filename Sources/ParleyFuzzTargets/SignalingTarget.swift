import Foundation
import ParleyControl
import ParleyMediaFuzzTargets

/// The signaling WebSocket's client messages: decoded as the server decodes each text frame,
/// then checked as it checks them before acting (names, chat, reports, offers as SDP).
enum SignalingTarget {
    static func run(_ data: UnsafeRawBufferPointer) {
        let text = String(decoding: data, as: UTF8.self)
        guard let message = try? ClientMessage(json: text) else { return }
        switch message {
        case .join(let request):
            _ = try? Validation.meetingID(request.meeting)
            _ = try? Validation.displayName(request.name)
        case .offer(let sdp, _, _):
            // What the SFU does with the offer is the `sdp` target's; here, the text as it arrives.
            _ = SDPTarget.parse(sdp)
        case .chat(let body):
            if let chat = try? Validation.chatText(body) { require(!chat.isEmpty && chat.count <= 2000, "chat text outside its limits") }
        case .report(_, let reason):
            _ = try? Validation.reportReason(reason)
        case .ping(let id):
            // Echoed back in `pong`: the answer must be JSON carrying the same id.
            let json = ServerMessage.pong(id: id).json
            let decoded = try? JSONDecoder().decode([String: String].self, from: Data(json.utf8))
            require(decoded?["type"] == "pong" && decoded?["id"] == id, "pong does not carry the ping's id")
        case .viewport(let sizes):
            require(sizes.count <= 256, "viewport with more than 256 mids")
        case .selectVideos(let videos):
            require(videos.count <= 49, "select-videos with more than 49 videos")
        case .mute, .host, .leave:
            break
        }
    }
}
