import Foundation
import ParleyFuzzTargets
import Testing

/// `make test` replays what the fuzzers keep (`fuzz/corpus/<target>/`: inputs that reach new
/// code; `fuzz/regressions/<target>/`: every crash or hang found) through the same entry points
/// `scripts/fuzz.sh` fuzzes. A broken invariant traps, which fails the run.
@Suite(.serialized) struct CorpusReplayTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fuzz")

    static func directories(in kind: String) -> [String] {
        let url = fuzzDirectory.appendingPathComponent(kind)
        return ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).filter { name in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: url.appendingPathComponent(name).path, isDirectory: &isDirectory) && isDirectory.boolValue
        }.sorted()
    }

    static func inputs(_ kind: String, _ target: String) throws -> [URL] {
        let url = fuzzDirectory.appendingPathComponent(kind).appendingPathComponent(target)
        guard FileManager.default.fileExists(atPath: url.path) else { return [] }
        return try FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)
            .filter { !$0.lastPathComponent.hasPrefix(".") }.sorted { $0.path < $1.path }
    }

    /// Foundation's `Data(contentsOf:)` leaks the 4 KiB buffer it reads an empty file into
    /// (swift-foundation's readBytesFromFile, seen under LeakSanitizer); empty inputs are kept
    /// regressions (an empty RTCP packet), so they are read as what they are.
    static func contents(of file: URL) throws -> Data {
        let size = try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int ?? 0
        return size == 0 ? Data() : try Data(contentsOf: file)
    }

    @Test func everyTargetHasACorpusAndEveryCorpusATarget() throws {
        let targets = Set(FuzzTargets.all.keys)
        for name in Self.directories(in: "corpus") + Self.directories(in: "regressions") {
            #expect(targets.contains(name), "fuzz/…/\(name) has no fuzz target of that name")
        }
        for name in targets.sorted() {
            #expect(try !Self.inputs("corpus", name).isEmpty, "fuzz target \(name) has no seed corpus in fuzz/corpus/\(name)")
        }
    }

    @Test(arguments: FuzzTargets.all.keys.sorted())
    func corpusAndRegressionsReplayWithoutFinding(_ target: String) throws {
        let run = try #require(FuzzTargets.all[target])
        let files = try Self.inputs("corpus", target) + Self.inputs("regressions", target)
        for file in files {
            try Self.contents(of: file).withUnsafeBytes { run($0) }
        }
    }
}
