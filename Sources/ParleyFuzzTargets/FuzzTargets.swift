import ParleyMediaFuzzTargets

/// libFuzzer entry points for every parser that reads bytes from the network (issue 11): each
/// takes one input, runs it through what the server does with such bytes, and traps only on a
/// broken invariant — a thrown parse error is the expected answer to bad input. The fuzzing
/// executables (`fuzz/`, `scripts/fuzz.sh`) and the corpus replay test (`make test`) share them.
public enum FuzzTargets {
    public typealias Target = MediaFuzzTargets.Target

    /// Each target by the name of its corpus directory, `fuzz/corpus/<name>/`: the media plane's
    /// (`MediaFuzzTargets`) and those of signaling, Redis and the HTTP APIs.
    public static let all: [String: Target] = MediaFuzzTargets.all.merging([
        "signaling": SignalingTarget.run,
        "resp": RESPTarget.run,
        "api": APITarget.run,
    ]) { _, _ in fatalError("two fuzz targets of one name") }
}
