import Foundation
import ParleyTestSupport

func bytes(_ hex: String) -> [UInt8] {
    let digits = hex.filter(\.isHexDigit)
    var out: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        out.append(UInt8(digits[index..<next], radix: 16)!)
        index = next
    }
    return out
}

func fixture(_ name: String) throws -> String {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").appendingPathComponent(name)
    return try String(contentsOf: url, encoding: .utf8)
}

/// Random buffers plus mutations (bit flips, truncations, length lies) of valid samples, from a
/// seed the calling test prints (`SeededGenerator`): set `PARLEY_TEST_SEED` to replay a failure.
func fuzzCorpus(from samples: [[UInt8]], count: Int, test: String = #function) -> [[UInt8]] {
    var rng = SeededGenerator(test: test)
    var corpus: [[UInt8]] = []
    for i in 0..<count {
        if i % 3 == 0 || samples.isEmpty {
            corpus.append((0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
            continue
        }
        var sample = samples[i % samples.count]
        switch i % 4 {
        case 0: if !sample.isEmpty { sample = Array(sample.prefix(Int.random(in: 0..<sample.count, using: &rng))) }
        case 1: for _ in 0..<4 where !sample.isEmpty { sample[Int.random(in: 0..<sample.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng) }
        case 2: if sample.count > 4 { sample[2] = UInt8.random(in: 0...255, using: &rng); sample[3] = UInt8.random(in: 0...255, using: &rng) }
        default: sample += (0..<Int.random(in: 1...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
        corpus.append(sample)
    }
    return corpus
}
