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
    /// Load limits beside `capacity` (`--capacity-packets-per-second`, `--capacity-cpu`): past
    /// either, the SFU takes no newcomers. Absent when not set (and in older nodes' heartbeats).
    public var maxPacketsPerSecond: Int?
    public var maxCPUPercent: Double?
    /// Stopping (SIGTERM): its participants are moving to the meeting's other SFUs, and it takes
    /// nobody new.
    public var draining: Bool?

    public init(id: String, announceAddress: String, ports: [Int], controlURL: String, capacity: Int, participants: Int = 0,
                streams: Int = 0, packetsPerSecond: Int = 0, cpuPercent: Double = 0, maxPacketsPerSecond: Int? = nil,
                maxCPUPercent: Double? = nil, draining: Bool = false) {
        self.id = id; self.announceAddress = announceAddress; self.ports = ports; self.controlURL = controlURL
        self.capacity = capacity; self.participants = participants; self.streams = streams
        self.packetsPerSecond = packetsPerSecond; self.cpuPercent = cpuPercent
        self.maxPacketsPerSecond = maxPacketsPerSecond; self.maxCPUPercent = maxCPUPercent
        self.draining = draining ? true : nil
    }

    /// Takes no newcomers: at its participant capacity, past a load limit, or draining.
    public var isFull: Bool { load >= 1 || draining == true }

    /// The highest of its loads relative to their limits (participants, packets/s, CPU): 1 is full.
    public var load: Double {
        var load = Double(participants) / Double(max(1, capacity))
        if let maxPacketsPerSecond { load = max(load, Double(packetsPerSecond) / Double(max(1, maxPacketsPerSecond))) }
        if let maxCPUPercent { load = max(load, cpuPercent / max(1, maxCPUPercent)) }
        return load
    }
}
