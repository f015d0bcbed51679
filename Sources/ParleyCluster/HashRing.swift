/// A consistent-hash ring of nodes, each placed at many points so keys spread evenly and a node
/// leaving moves only its own keys. `candidates` walks clockwise from a key's point.
public struct HashRing: Sendable {
    public static let pointsPerNode = 128
    private var points: [(hash: UInt64, node: String)] = []
    public private(set) var nodes: Set<String> = []

    public init(nodes: some Sequence<String> = []) {
        for node in nodes { insert(node) }
    }

    public mutating func insert(_ node: String) {
        guard nodes.insert(node).inserted else { return }
        for index in 0..<Self.pointsPerNode { points.append((Self.hash("\(node)#\(index)"), node)) }
        points.sort { $0.hash < $1.hash }
    }

    public mutating func remove(_ node: String) {
        guard nodes.remove(node) != nil else { return }
        points.removeAll { $0.node == node }
    }

    /// Up to `count` distinct nodes, in ring order from the key's point.
    public func candidates(for key: String, count: Int) -> [String] {
        guard !points.isEmpty else { return [] }
        let target = Self.hash(key)
        var low = 0, high = points.count
        while low < high {
            let middle = (low + high) / 2
            if points[middle].hash < target { low = middle + 1 } else { high = middle }
        }
        var chosen: [String] = []
        var index = low % points.count
        for _ in 0..<points.count where chosen.count < min(count, nodes.count) {
            let node = points[index].node
            if !chosen.contains(node) { chosen.append(node) }
            index = (index + 1) % points.count
        }
        return chosen
    }

    /// FNV-1a, then a 64-bit finalizer (splitmix) so nearby names land far apart; stable across
    /// processes and machines, as every signaling node must agree.
    static func hash(_ text: String) -> UInt64 {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { value = (value ^ UInt64(byte)) &* 0x100_0000_01b3 }
        value = (value ^ (value >> 30)) &* 0xbf58_476d_1ce4_e5b9
        value = (value ^ (value >> 27)) &* 0x94d0_49bb_1331_11eb
        return value ^ (value >> 31)
    }
}
