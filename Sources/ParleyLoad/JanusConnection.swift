import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOWebSocket
import Synchronization

/// One reply or event from Janus, kept as its JSON text so it can cross tasks.
struct JanusMessage: Sendable {
    let text: String

    var object: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:] }
    var type: String { object["janus"] as? String ?? "" }
    var transaction: String? { object["transaction"] as? String }
    var sender: UInt64? { (object["sender"] as? NSNumber)?.uint64Value }
    /// `data.id` of `create` and `attach` replies.
    var id: UInt64? { ((object["data"] as? [String: Any])?["id"] as? NSNumber)?.uint64Value }
    /// The plugin's own answer (`plugindata.data`).
    var pluginData: [String: Any] { ((object["plugindata"] as? [String: Any])?["data"] as? [String: Any]) ?? [:] }
    var sdp: String? { (object["jsep"] as? [String: Any])?["sdp"] as? String }

    /// Janus's own errors and the plugin's, as one readable reason.
    var error: String? {
        if let error = object["error"] as? [String: Any] { return "janus \(error["code"] ?? "?"): \(error["reason"] ?? "")" }
        let data = pluginData
        if let reason = data["error"] as? String { return "videoroom \(data["error_code"] ?? "?"): \(reason)" }
        return nil
    }
}

/// Janus's JSON API over its WebSocket transport (subprotocol `janus-protocol`): each request
/// carries a transaction; its reply (an `ack` first for asynchronous plugin requests, then the
/// `event`) and unsolicited events such as `webrtcup` come back on the same socket.
final class JanusConnection: Sendable {
    private let outbound: WebSocketOutboundWriter
    private struct Pending {
        var continuation: CheckedContinuation<JanusMessage, any Error>
        /// keepalive and trickle end with the ack; plugin messages with the event after it.
        var ackIsFinal: Bool
    }
    private struct State {
        var pending: [String: Pending] = [:]
        var handlesUp: Set<UInt64> = []
        var sessionID: UInt64?
        var closed = false
    }
    private let state = Mutex(State())
    static let replyTimeout: Duration = .seconds(15)

    static let configuration = WebSocketClientConfiguration(
        maxFrameSize: 1 << 22, additionalHeaders: [HTTPField.Name("Sec-WebSocket-Protocol")!: "janus-protocol"])

    init(outbound: WebSocketOutboundWriter) { self.outbound = outbound }

    /// Routes everything Janus sends until the socket closes, then fails what is still waiting.
    func dispatch(_ inbound: WebSocketInboundStream) async {
        do {
            for try await message in inbound.messages(maxSize: 1 << 22) {
                guard case .text(let text) = message else { continue }
                receive(JanusMessage(text: text))
            }
        } catch {}
        let waiting = state.withLock { state -> [Pending] in
            state.closed = true
            defer { state.pending.removeAll() }
            return Array(state.pending.values)
        }
        for pending in waiting { pending.continuation.resume(throwing: LoadError.unreachable("Janus closed the WebSocket")) }
    }

    private func receive(_ message: JanusMessage) {
        let type = message.type
        if type == "webrtcup", let sender = message.sender {
            state.withLock { _ = $0.handlesUp.insert(sender) }
            return
        }
        guard let transaction = message.transaction else { return }
        let pending = state.withLock { state -> Pending? in
            guard let pending = state.pending[transaction], type != "ack" || pending.ackIsFinal else { return nil }
            state.pending[transaction] = nil
            return pending
        }
        guard let pending else { return }
        if let error = message.error {
            pending.continuation.resume(throwing: LoadError.refused(error))
        } else {
            pending.continuation.resume(returning: message)
        }
    }

    /// Sends one request and waits for its final reply (or an error, or the timeout).
    func request(_ body: [String: Any], handle: UInt64? = nil, ackIsFinal: Bool = false) async throws -> JanusMessage {
        var body = body
        let transaction = UUID().uuidString
        body["transaction"] = transaction
        if let sessionID = state.withLock({ $0.sessionID }) { body["session_id"] = sessionID }
        if let handle { body["handle_id"] = handle }
        let text = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
        let request = body["janus"] as? String ?? "?"
        let timeout = Task { [weak self] in
            try await Task.sleep(for: Self.replyTimeout)
            self?.fail(transaction, with: .timeout("Janus did not answer \(request) within \(Self.replyTimeout)"))
        }
        defer { timeout.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            let closed = state.withLock { state -> Bool in
                if !state.closed { state.pending[transaction] = Pending(continuation: continuation, ackIsFinal: ackIsFinal) }
                return state.closed
            }
            if closed {
                continuation.resume(throwing: LoadError.unreachable("Janus closed the WebSocket"))
                return
            }
            Task {
                do { try await outbound.write(.text(text)) } catch { fail(transaction, with: .unreachable("\(error)")) }
            }
        }
    }

    private func fail(_ transaction: String, with error: LoadError) {
        let pending = state.withLock { $0.pending.removeValue(forKey: transaction) }
        pending?.continuation.resume(throwing: error)
    }

    /// `create`: the session every later request belongs to.
    func createSession() async throws {
        let reply = try await request(["janus": "create"])
        guard let id = reply.id else { throw LoadError.badAnswer("Janus create: no session id in \(reply.text.prefix(200))") }
        state.withLock { $0.sessionID = id }
    }

    func attachVideoRoom() async throws -> UInt64 {
        let reply = try await request(["janus": "attach", "plugin": "janus.plugin.videoroom"])
        guard let id = reply.id else { throw LoadError.badAnswer("Janus attach: no handle id in \(reply.text.prefix(200))") }
        return id
    }

    /// A VideoRoom request; `jsep` (an offer or an answer) rides along with it.
    func message(_ handle: UInt64, _ body: [String: Any], jsep: (type: String, sdp: String)? = nil) async throws -> JanusMessage {
        var envelope: [String: Any] = ["janus": "message", "body": body]
        if let jsep { envelope["jsep"] = ["type": jsep.type, "sdp": jsep.sdp] }
        return try await request(envelope, handle: handle)
    }

    func keepalive() async throws { _ = try await request(["janus": "keepalive"], ackIsFinal: true) }

    /// Waits for Janus's `webrtcup` on a handle: its PeerConnection is up (ICE and DTLS done).
    func waitUntilUp(_ handle: UInt64, timeout: Duration) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while !state.withLock({ $0.handlesUp.contains(handle) }) {
            guard clock.now < deadline else { throw LoadError.timeout("Janus never reported webrtcup for handle \(handle)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
