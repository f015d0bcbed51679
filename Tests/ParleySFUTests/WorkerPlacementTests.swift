import Testing
@testable import ParleyMediaNode

/// Which worker each transport of a meeting goes to (pure).
@Suite struct WorkerPlacementTests {
    @Test func aMeetingStaysOnItsHomeWorkerUpToCapacityThenSpreadsToTheLeastLoadedAndComesBackWhenRoomFrees() {
        var placement = WorkerPlacement(workers: 3, capacity: 2)
        let home = placement.homeWorker(of: "m")
        func join(_ transport: String, _ participant: String) -> Int {
            let worker = placement.worker(meetingID: "m", participantID: participant, transportID: nil)
            placement.placed(transportID: transport, meetingID: "m", participantID: participant, worker: worker)
            return worker
        }
        #expect(join("t1", "p1") == home)
        #expect(join("t2", "p2") == home)
        // Another meeting fills a worker: the spill goes to the emptiest one.
        let busy = (0..<3).first { $0 != home }!
        let spare = (0..<3).first { $0 != home && $0 != busy }!
        placement.placed(transportID: "other", meetingID: "other", participantID: "x", worker: busy)
        #expect(join("t3", "p3") == spare)
        #expect(placement.workers(of: "m") == [home, spare].sorted())
        // A transport renegotiating, and a participant's second transport, stay where they are.
        #expect(placement.worker(meetingID: "m", participantID: "p1", transportID: "t1") == home)
        #expect(placement.worker(meetingID: "m", participantID: "p3", transportID: nil) == spare)
        // The meeting leaves a worker when its last transport there closes.
        #expect(placement.closed(transportID: "t3")?.worker == spare)
        #expect(placement.workers(of: "m") == [home])
        // Room on the home worker again: the next newcomer goes there.
        #expect(placement.closed(transportID: "t1") == nil, "the meeting is still on the home worker")
        #expect(join("t4", "p4") == home)
    }

    @Test func everyWorkerFullTakesOneMoreOnTheLeastLoaded() {
        var placement = WorkerPlacement(workers: 2, capacity: 1)
        for index in 0..<4 {
            let worker = placement.worker(meetingID: "m", participantID: "p\(index)", transportID: nil)
            placement.placed(transportID: "t\(index)", meetingID: "m", participantID: "p\(index)", worker: worker)
        }
        #expect(placement.load(of: "m").values.sorted() == [2, 2])
    }

    @Test func aNegotiationUnderWayHoldsAPlaceButIsNoTransportYet() {
        var placement = WorkerPlacement(workers: 2, capacity: 1)
        placement.placed(transportID: "t0", meetingID: "m", participantID: "p0", worker: 0)
        let (worker, reservation) = placement.reserve(meetingID: "m", participantID: "p1", transportID: nil)
        // The place counts for where the next newcomer goes, not as a transport (the control API
        // counts the join in flight itself: counted here too, it took two of the SFU's places).
        #expect(placement.load(of: "m")[worker] != nil)
        #expect(placement.settledCount == 1)
        placement.settle(reservation!, transportID: "t1")
        #expect(placement.settledCount == 2)
        let (_, failed) = placement.reserve(meetingID: "m", participantID: "p2", transportID: nil)
        placement.settle(failed!, transportID: nil)
        #expect(placement.settledCount == 2 && placement.transports.count == 2)
        // A renegotiation holds nothing new.
        #expect(placement.reserve(meetingID: "m", participantID: "p1", transportID: "t1").reservation == nil)
    }
}
