import ParleyBase
import ParleyMediaAPI

/// A subscriber's video slots when it chose what to see (a gallery page, `select-videos`): its
/// video consumers carry the selected videos and nothing else. A video already in a slot keeps
/// it (no keyframe churn); the selected ones missing take the free slots; slots left over fall
/// empty. Without a selection the slots fill in arrival order (`Router.producerAdded`).
extension Router {
    /// The live video producers `selection` names, in its order, but the subscriber's own.
    func producers(selectedBy selection: [VideoSource], for transport: WebRtcTransport) -> [Producer] {
        selection.compactMap { wanted in
            producers.first {
                $0.kind == .video && !$0.closed && $0.participantID == wanted.participantID && $0.participantID != transport.participantID
                    && ($0.source == "screen") == (wanted.source == "screen")
            }
        }
    }

    /// Brings a selecting transport's video consumers in line with its selection; returns the
    /// consumers that now show something else (or nothing).
    func reconcileSelectedVideos(of transport: WebRtcTransport, now: Nanoseconds) -> [Consumer] {
        guard let selection = transport.videoSelection else { return [] }
        let slots = transport.consumers.filter { $0.kind == .video }
        let wanted = producers(selectedBy: selection, for: transport).filter { producer in slots.contains { $0.canConsume(producer) } }
        var missing = wanted.filter { producer in !slots.contains { $0.producer === producer } }
        var changed: [Consumer] = []
        for slot in slots {
            if let shown = slot.producer, !shown.closed, wanted.contains(where: { $0 === shown }) { continue }
            if let index = missing.firstIndex(where: { slot.canConsume($0) }) {
                slot.attach(to: missing.remove(at: index), now: now)
                changed.append(slot)
            } else if slot.producer != nil {
                slot.detach()
                changed.append(slot)
            }
        }
        return changed
    }
}

extension WorkerCore {
    /// A subscriber's gallery page: its video slots carry these videos from now on; the changes go
    /// out as `assignments` at once.
    public func selectVideos(meetingID: String, participantID: String, sources: [VideoSource], now: Nanoseconds) {
        assertOnOwnerThread()
        var changed: [Consumer] = []
        for transport in transports.values where transport.meetingID == meetingID && transport.participantID == participantID
            && transport.role == .participant {
            transport.videoSelection = sources
            changed += transport.router.reconcileSelectedVideos(of: transport, now: now)
        }
        for update in Self.updates(for: changed) { emit(.assignmentsChanged(meetingID: meetingID, update: update)) }
        announceWantedLayers(in: meetingID, now: now)
    }
}
