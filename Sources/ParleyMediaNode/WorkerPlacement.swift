/// Which worker each transport of each meeting lives on (pure, control path only). A meeting
/// starts on its hash worker; a newcomer goes to the least loaded of the meeting's workers that
/// is under `capacity` (participants per worker per meeting); when all of them are full, the
/// least loaded worker without the meeting takes it on (and is piped to the others). A transport
/// renegotiating stays where it is; a participant's further transports join its first.
struct WorkerPlacement: Equatable {
    let workers: Int
    /// Participants (transports) per worker per meeting before the meeting spills to another worker.
    let capacity: Int
    private(set) var transports: [String: (meeting: String, participant: String, worker: Int)] = [:]
    /// How many of `transports` are reservations.
    private var reservations = 0
    private var nextReservation = 0

    init(workers: Int, capacity: Int) {
        self.workers = max(1, workers)
        self.capacity = max(1, capacity)
    }

    static func == (a: WorkerPlacement, b: WorkerPlacement) -> Bool {
        a.workers == b.workers && a.capacity == b.capacity && a.transports.mapValues { "\($0)" } == b.transports.mapValues { "\($0)" }
    }

    /// The hash worker of a meeting (where it starts): a stable hash of its id.
    func homeWorker(of meetingID: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in meetingID.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int(hash % UInt64(workers))
    }

    /// Transports per worker of a meeting (only workers carrying it).
    func load(of meetingID: String) -> [Int: Int] {
        var load: [Int: Int] = [:]
        for entry in transports.values where entry.meeting == meetingID { load[entry.worker, default: 0] += 1 }
        return load
    }

    /// The workers a meeting is on, lowest first.
    func workers(of meetingID: String) -> [Int] { load(of: meetingID).keys.sorted() }

    private func totalLoad(of worker: Int) -> Int { transports.values.count { $0.worker == worker } }

    /// The worker for a negotiation: the transport's own, else its participant's, else by load.
    func worker(meetingID: String, participantID: String, transportID: String?) -> Int {
        if let transportID, let entry = transports[transportID] { return entry.worker }
        if let entry = transports.values.first(where: { $0.meeting == meetingID && $0.participant == participantID }) { return entry.worker }
        let load = load(of: meetingID)
        if load.isEmpty { return homeWorker(of: meetingID) }
        if let open = load.filter({ $0.value < capacity }).min(by: { ($0.value, $0.key) < ($1.value, $1.key) }) { return open.key }
        let others = (0..<workers).filter { load[$0] == nil }
        if let spare = others.min(by: { (totalLoad(of: $0), $0) < (totalLoad(of: $1), $1) }) { return spare }
        // Every worker carries the meeting and is full: the least loaded takes one more.
        return load.min { ($0.value, $0.key) < ($1.value, $1.key) }!.key
    }

    mutating func placed(transportID: String, meetingID: String, participantID: String, worker: Int) {
        transports[transportID] = (meetingID, participantID, worker)
    }

    /// Chooses the worker for a negotiation and, for a new transport, holds its place at once
    /// (under a reservation id until its transport id is known), so that simultaneous joins see
    /// each other and spread instead of all landing where the first saw room.
    mutating func reserve(meetingID: String, participantID: String, transportID: String?) -> (worker: Int, reservation: String?) {
        let worker = worker(meetingID: meetingID, participantID: participantID, transportID: transportID)
        if let transportID, transports[transportID] != nil { return (worker, nil) }
        let reservation = "reserved-\(nextReservation)"
        nextReservation += 1
        transports[reservation] = (meetingID, participantID, worker)
        reservations += 1
        return (worker, reservation)
    }

    /// The reserved place becomes the transport's (or is given back, nil: the negotiation failed).
    mutating func settle(_ reservation: String, transportID: String?) {
        guard let entry = transports.removeValue(forKey: reservation) else { return }
        reservations -= 1
        if let transportID { transports[transportID] = entry }
    }

    /// Transports that exist, without the places held for negotiations under way.
    var settledCount: Int { transports.count - reservations }

    /// A transport closed; returns its worker when the meeting has no transport left there.
    mutating func closed(transportID: String) -> (meeting: String, worker: Int)? {
        guard let entry = transports.removeValue(forKey: transportID) else { return nil }
        return load(of: entry.meeting)[entry.worker] == nil ? (entry.meeting, entry.worker) : nil
    }
}
