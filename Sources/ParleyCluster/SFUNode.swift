import Foundation

/// What an SFU process says about itself in its heartbeat: where it is and how loaded.
public struct SFUNode: Codable, Sendable, Equatable {
    public var id: String
    /// The address browsers reach its UDP ports on, and the ports.
    public var announceAddress: String
    public var ports: [Int]
    /// Where signaling nodes reach its control API.
    public var controlURL: String
    /// Participants it accepts at most.
    public var capacity: Int
    public var participants: Int
    public var streams: Int
    public var packetsPerSecond: Int
    /// Share of one core, 0–100 × cores.
    public var cpuPercent: Double

    public init(id: String, announceAddress: String, ports: [Int], controlURL: String, capacity: Int, participants: Int = 0,
                streams: Int = 0, packetsPerSecond: Int = 0, cpuPercent: Double = 0) {
        self.id = id; self.announceAddress = announceAddress; self.ports = ports; self.controlURL = controlURL
        self.capacity = capacity; self.participants = participants; self.streams = streams
        self.packetsPerSecond = packetsPerSecond; self.cpuPercent = cpuPercent
    }

    public var isFull: Bool { participants >= capacity }
}
