import Foundation
import ParleySFU

/// Version of the WebSocket signaling protocol (docs/signaling.md).
public let signalingProtocolVersion = 1

/// A message from a client over the signaling WebSocket, decoded by its `type`.
public enum ClientMessage: Sendable, Equatable {
    case join(meeting: String, name: String)
    case offer(sdp: String, sources: [String: String])
    case chat(text: String)
    case mute(kind: MediaKind, muted: Bool)
    case leave

    private struct Envelope: Decodable {
        var type: String
        var meeting: String?
        var name: String?
        var sdp: String?
        var sources: [String: String]?
        var text: String?
        var kind: String?
        var muted: Bool?
    }

    public static let maximumSize = 256 * 1024

    /// Parses one message; the error says what is wrong so the client can be told.
    public init(json: String) throws(SignalingError) {
        guard json.utf8.count <= Self.maximumSize else { throw .badMessage("message larger than \(Self.maximumSize) bytes") }
        let envelope: Envelope
        do {
            envelope = try JSONCoding.decoder.decode(Envelope.self, from: Data(json.utf8))
        } catch {
            throw .badMessage("not a JSON object with a string \"type\"")
        }
        switch envelope.type {
        case "join":
            guard let meeting = envelope.meeting else { throw .badMessage("join needs \"meeting\"") }
            self = .join(meeting: meeting, name: envelope.name ?? "")
        case "offer":
            guard let sdp = envelope.sdp else { throw .badMessage("offer needs \"sdp\"") }
            self = .offer(sdp: sdp, sources: envelope.sources ?? [:])
        case "chat":
            guard let text = envelope.text else { throw .badMessage("chat needs \"text\"") }
            self = .chat(text: text)
        case "mute":
            guard let kind = envelope.kind.flatMap(MediaKind.init(rawValue:)), let muted = envelope.muted else {
                throw .badMessage("mute needs \"kind\" (audio or video) and \"muted\"")
            }
            self = .mute(kind: kind, muted: muted)
        case "leave":
            self = .leave
        default:
            throw .badMessage("unknown message type \"\(envelope.type.prefix(32))\"")
        }
    }
}

/// A participant as every client sees it.
public struct ParticipantInfo: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    /// "web" for the browser client, "whip" for a WHIP publisher.
    public var client: String
    public var audioMuted: Bool
    public var videoMuted: Bool
    public var tracks: [PublishedTrack]
}

/// A typed error that reaches the client as `{type:"error", code, message}` (or an HTTP status).
public enum SignalingError: Error, Equatable, Sendable, CustomStringConvertible {
    case badMessage(String)
    case badRequest(String)
    case notJoined
    case alreadyJoined
    case negotiationFailed(String)
    case meetingFull

    public var code: String {
        switch self {
        case .badMessage: return "bad-message"
        case .badRequest: return "bad-request"
        case .notJoined: return "not-joined"
        case .alreadyJoined: return "already-joined"
        case .negotiationFailed: return "negotiation-failed"
        case .meetingFull: return "meeting-full"
        }
    }

    public var description: String {
        switch self {
        case .badMessage(let reason), .badRequest(let reason), .negotiationFailed(let reason): return reason
        case .notJoined: return "join a meeting first"
        case .alreadyJoined: return "this connection already joined a meeting"
        case .meetingFull: return "the meeting is full"
        }
    }
}

/// Messages the server sends, each encoded with its `type`.
public enum ServerMessage: Sendable {
    case joined(participantID: String, meeting: String, participants: [ParticipantInfo])
    case answer(sdp: String, assignments: [MidAssignment], assignmentsVersion: Int)
    case assignments([MidAssignment], version: Int)
    case participantJoined(ParticipantInfo)
    case participantUpdated(ParticipantInfo)
    case participantLeft(participantID: String)
    case chat(from: String, name: String, text: String, at: Double)
    case error(code: String, message: String)
    case meetingEnded(reason: String)

    private struct Wire: Encodable {
        var type: String
        var version: Int?
        var participantId: String?
        var meeting: String?
        var participants: [ParticipantInfo]?
        var participant: ParticipantInfo?
        var sdp: String?
        var assignments: [MidAssignment]?
        var assignmentsVersion: Int?
        var from: String?
        var name: String?
        var text: String?
        var at: Double?
        var code: String?
        var message: String?
        var reason: String?
    }

    public var json: String {
        var wire: Wire
        switch self {
        case .joined(let id, let meeting, let participants):
            wire = Wire(type: "joined", version: signalingProtocolVersion, participantId: id, meeting: meeting, participants: participants)
        case .answer(let sdp, let assignments, let version):
            wire = Wire(type: "answer", sdp: sdp, assignments: assignments, assignmentsVersion: version)
        case .assignments(let assignments, let version): wire = Wire(type: "assignments", assignments: assignments, assignmentsVersion: version)
        case .participantJoined(let p): wire = Wire(type: "participant-joined", participant: p)
        case .participantUpdated(let p): wire = Wire(type: "participant-updated", participant: p)
        case .participantLeft(let id): wire = Wire(type: "participant-left", participantId: id)
        case .chat(let from, let name, let text, let at): wire = Wire(type: "chat", from: from, name: name, text: text, at: at)
        case .error(let code, let message): wire = Wire(type: "error", code: code, message: message)
        case .meetingEnded(let reason): wire = Wire(type: "meeting-ended", reason: reason)
        }
        return (try? String(decoding: JSONCoding.encoder.encode(wire), as: UTF8.self)) ?? "{\"type\":\"error\"}"
    }
}
