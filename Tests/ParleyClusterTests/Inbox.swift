import ParleyControl
import ParleyTestSupport

/// A connection's messages, as a hub delivers them; a test waits for the message it expects
/// (the suite's `.timeLimit` fails a wait that never ends), no polling pause to guess.
final class Inbox: Sendable {
    private struct State {
        var messages: [String] = []
        var waiters: [(fragments: [String], continuation: CheckedContinuation<Void, Never>)] = []
    }
    private let state = Locked(State())

    var sink: MessageSink { { message in self.receive(message.json) } }

    var messages: [String] { state.withLock { $0.messages } }

    private func receive(_ json: String) {
        let ready = state.withLock { state in
            state.messages.append(json)
            let ready = state.waiters.filter { waiter in waiter.fragments.allSatisfy(json.contains) }
            state.waiters.removeAll { waiter in waiter.fragments.allSatisfy(json.contains) }
            return ready.map(\.continuation)
        }
        for continuation in ready { continuation.resume() }
    }

    func contains(_ fragments: String...) -> Bool {
        state.withLock { $0.messages.contains { message in fragments.allSatisfy(message.contains) } }
    }

    /// Returns (true) once a message with every fragment has arrived, or at once if one has.
    @discardableResult
    func waitFor(_ fragments: String...) async -> Bool {
        await withCheckedContinuation { continuation in
            let arrived = state.withLock { state in
                if state.messages.contains(where: { message in fragments.allSatisfy(message.contains) }) { return true }
                state.waiters.append((fragments, continuation))
                return false
            }
            if arrived { continuation.resume() }
        }
        return true
    }
}
