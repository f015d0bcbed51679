/// Waits until `condition` holds: for what crosses a real Redis or socket (I/O, not a clock), so
/// no pause is guessed; the test's `.timeLimit` fails a wait that never ends.
public func eventually(_ condition: () async throws -> Bool) async rethrows {
    while try await !condition() { await Task.yield() }
}
