/// What the far side of a pipe can take, from the loss its receiver reports give back (once a
/// second), and how many temporal layers of video cross for it. Loss-based, as libwebrtc's
/// sender-side estimate: above 10 % loss it is what was sent less half the loss; below 2 % it grows by
/// 8 % a report; between, it holds. While there is loss and what the pipe sends is above the
/// estimate, video crosses at one temporal layer less (a frame rate halved, no keyframe needed, audio untouched); once the
/// estimate has room for the layer above, it comes back. No loss seen: no limit at all.
struct PipeBandwidth: Sendable, Equatable {
    /// Bits per second; nil while no report showed loss worth acting on.
    private(set) var estimate: Int?
    /// The highest temporal layer video may cross at (0...2).
    private(set) var temporalCap = 2

    static let decreaseAbove = 0.10
    static let increaseBelow = 0.02
    /// How much more than it sends the estimate must allow before one more temporal layer crosses
    /// (the layer above adds about half of what the ones below send).
    static let headroomForLayer = 1.5

    /// One receiver report: `loss` (0...1) on what we sent, `sending` what the pipe sends now.
    /// Returns whether the cap changed.
    @discardableResult
    mutating func report(loss: Double, sending: Int) -> Bool {
        let before = temporalCap
        let sending = max(0, sending)
        if loss > Self.decreaseAbove {
            // From what was sent (what got through says what the pipe takes), not from the last
            // estimate: a loss that goes on at the base layer does not drive it down to nothing.
            estimate = Int(Double(sending) * (1 - 0.5 * min(loss, 1)))
        } else if loss < Self.increaseBelow, let current = estimate {
            // What crossed without loss, the pipe took: the estimate grows from there at least.
            let grown = Int(Double(max(current, sending)) * 1.08) + 1
            // Far above what we send with every layer crossing: no limit any more.
            estimate = temporalCap == 2 && Double(grown) > Double(sending) * 2 ? nil : grown
        }
        if let estimate {
            // Fewer layers only while loss says so: on a clean pipe a stale, low estimate grows instead.
            if sending > estimate, temporalCap > 0, loss >= Self.increaseBelow {
                temporalCap -= 1
            } else if Double(estimate) >= Double(sending) * Self.headroomForLayer, temporalCap < 2, loss < Self.increaseBelow {
                temporalCap += 1
            }
        } else {
            temporalCap = 2
        }
        return temporalCap != before
    }
}
