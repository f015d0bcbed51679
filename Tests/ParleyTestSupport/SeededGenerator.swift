import Foundation

/// The random generator of the tests' mutation loops: SplitMix64 from a seed that is printed, so
/// a loop that found something can be run again with the same inputs. Each run takes a new seed
/// unless `PARLEY_TEST_SEED` names one.
///
///     PARLEY_TEST_SEED=12345 swift test --filter malformedInputIsAnErrorNeverACrash
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    public let seed: UInt64
    private var state: UInt64

    /// A generator for the test `name`; its seed goes to standard error at once, so that even a
    /// crash of the test process leaves it in the log.
    public init(test name: String = #function) {
        let chosen = ProcessInfo.processInfo.environment["PARLEY_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        self.init(seed: chosen)
        FileHandle.standardError.write(Data("mutation seed \(chosen) for \(name) (replay: PARLEY_TEST_SEED=\(chosen))\n".utf8))
    }

    /// A generator with a fixed seed (the same sequence every run).
    public init(seed: UInt64) {
        self.seed = seed
        self.state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// For an expectation's comment: how to replay this run's inputs.
    public var replay: String { "replay with PARLEY_TEST_SEED=\(seed)" }

    /// `count` random bytes.
    public mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) }
    }
}
