/// A summary of the SFU for health checks and logs.
public struct SFUStatus: Sendable, Codable {
    public var workers: Int
    public var ports: [UInt16]
    public var meetings: Int
    public var transports: Int
    /// Incoming tracks (streams) across every meeting.
    public var producers: Int = 0
    public var counters: [String: Int]
    /// The meetings this SFU carries (an SFU node re-claims them if Redis lost its assignments).
    public var meetingIDs: [String]?
    /// OpenSSL DTLS endpoints and libsrtp2 sessions alive in the process (`dtls`, `srtp`): they
    /// follow the transports, and a soak watches them stay flat.
    public var liveCObjects: [String: Int]?
    /// Pipes between this SFU's workers and to other SFUs (a pipe carries every meeting its two
    /// workers share).
    public var pipes: Int?

    public init(workers: Int, ports: [UInt16], meetings: Int, transports: Int, producers: Int = 0, counters: [String: Int]) {
        self.workers = workers; self.ports = ports; self.meetings = meetings; self.transports = transports
        self.producers = producers; self.counters = counters
    }
}
