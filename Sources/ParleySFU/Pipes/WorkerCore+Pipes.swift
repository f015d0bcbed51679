import ParleyBase
import ParleyMediaAPI
import ParleyTransport
import ParleyWire

extension WorkerCore {
    /// Carries a meeting on the pipe to the worker at `remote`: the pipe is made now, or the one
    /// there is taken when its keys are the same. Keys that differ mean the far side started
    /// again: the old pipe ends, and its meetings move to the new one.
    /// `relay`: which piped copies the meeting's link carries on (a hub's, see `PipeRelay`).
    public func openPipe(meetingID: String, media: MeetingMediaSettings, remote: PeerAddress, reach: PipeReach = .sameSFU, relay: PipeRelay = .none,
                         sendKey: [UInt8], receiveKey: [UInt8], now: Nanoseconds, output: any DatagramOutput) throws(SRTPError) {
        assertOnOwnerThread()
        var meetings = [(meetingID, relay)]
        if let existing = pipes[remote], existing.sendKey != sendKey || existing.receiveKey != receiveKey {
            meetings += existing.links.values.filter { $0.meetingID != meetingID }.map { ($0.meetingID, $0.relay) }
            closeTrunk(existing, now: now, output: output)
        }
        let trunk: PipeTrunk
        if let existing = pipes[remote] {
            trunk = existing
        } else {
            trunk = try PipeTrunk(remote: remote, reach: reach, sendKey: sendKey, receiveKey: receiveKey)
            pipes[remote] = trunk
        }
        for (meeting, relay) in meetings where trunk.link(for: meeting) == nil {
            // A meeting new to this worker starts with the pipe's settings; one with participants
            // keeps what their negotiations said.
            let router = routers[meeting] ?? Router(meetingID: meeting, media: media)
            routers[meeting] = router
            let link = PipeLink(trunk: trunk, router: router, relay: relay, now: now)
            trunk.addLink(link)
            router.pipeLinks.append(link)
        }
    }

    /// The keys of this worker's pipe to `remote`, if there is one (so a second meeting offered
    /// across reuses the pipe).
    public func pipeKeys(to remote: PeerAddress) -> (send: [UInt8], receive: [UInt8])? {
        pipes[remote].map { ($0.sendKey, $0.receiveKey) }
    }

    /// Ends a meeting's link on the pipe to `remote` (nil: on every pipe, of `reach` if given);
    /// a pipe with no meeting left ends too.
    public func closePipe(meetingID: String, remote: PeerAddress?, reach: PipeReach? = nil, now: Nanoseconds, output: any DatagramOutput) {
        assertOnOwnerThread()
        for trunk in Array(pipes.values) where (remote == nil || trunk.remote == remote) && (reach == nil || trunk.reach == reach) {
            guard let link = trunk.link(for: meetingID) else { continue }
            closeLink(link, now: now)
            if trunk.links.isEmpty { pipes[trunk.remote] = nil }
        }
    }

    /// The workers this one has pipes to (of `reach`), with the meetings on each.
    public func pipeRemotes(reach: PipeReach) -> [PeerAddress: [String]] {
        pipes.filter { $0.value.reach == reach }.mapValues { $0.links.keys.sorted() }
    }

    public var pipeCount: Int { pipes.count }

    /// A meeting's slot counts here, if this worker carries it (what a pipe offer passes on).
    public func mediaSettings(of meetingID: String) -> MeetingMediaSettings? { routers[meetingID]?.media }

    private func closeTrunk(_ trunk: PipeTrunk, now: Nanoseconds, output: any DatagramOutput) {
        for link in Array(trunk.links.values) { closeLink(link, now: now) }
        pipes[trunk.remote] = nil
    }

    private func closeLink(_ link: PipeLink, now: Nanoseconds) {
        let changed = link.close(now: now)
        link.trunk.removeLink(meetingID: link.meetingID)
        let router = link.router
        router.pipeLinks.removeAll { $0 === link }
        if router.isEmpty, routers[router.meetingID] === router { routers[router.meetingID] = nil }
        emitAssignments(changed, meetingID: router.meetingID)
    }

    func emitAssignments(_ changed: [Consumer], meetingID: String) {
        for update in Self.updates(for: changed.filter { $0.transport.role == .participant }) {
            emit(.assignmentsChanged(meetingID: meetingID, update: update))
        }
    }

    /// A datagram from a pipe's peer.
    func receivePipe(_ trunk: PipeTrunk, _ buffer: UnsafeMutableRawBufferPointer, length: Int, now: Nanoseconds, output: any DatagramOutput) {
        var messages: [(PipeLink, PipeMessage)] = []
        trunk.receive(buffer, length: length, now: now, output: output, counters: &counters, messages: &messages)
        for (link, message) in messages { apply(message, on: link, now: now, output: output) }
    }

    private func apply(_ message: PipeMessage, on link: PipeLink, now: Nanoseconds, output: any DatagramOutput) {
        link.heard(now: now)
        switch message {
        case .alive:
            break
        case .announce(let announcement):
            guard let producer = link.announced(announcement, now: now) else { return }
            emitAssignments(link.router.producerAdded(producer, now: now), meetingID: link.meetingID)
        case .withdraw(_, let producerID):
            guard let producer = link.pipedProducers.first(where: { $0.id == producerID }) else { return }
            emitAssignments(link.router.producersRemoved([producer], now: now), meetingID: link.meetingID)
        case .state(let state):
            link.stateArrived(state)
        case .wants(let wants):
            link.wantsArrived(wants)?.requestKeyframe(now: now, output: output, counters: &counters)
        }
    }

    /// Every tick: each pipe's links announce, ask for repairs and keyframes; with the layer
    /// check, states and wants cross, and reports once a second.
    func tickPipes(now: Nanoseconds, layerCheck: Bool, output: any DatagramOutput) {
        for trunk in Array(pipes.values) {
            var messages: [PipeMessage] = []
            for link in Array(trunk.links.values) {
                if layerCheck, link.isSilent(now: now) {
                    closeLink(link, now: now)
                    continue
                }
                link.tick(now: now, output: output, counters: &counters, messages: &messages)
                guard layerCheck else { continue }
                let expired = link.checkLayers(now: now, interval: Self.layerCheckInterval, messages: &messages)
                if !expired.isEmpty { emitAssignments(link.router.producersRemoved(expired, now: now), meetingID: link.meetingID) }
            }
            if trunk.links.isEmpty {
                pipes[trunk.remote] = nil
                continue
            }
            if !messages.isEmpty { trunk.send(messages, output: output, counters: &counters) }
            trunk.sendReports(now: now, output: output, counters: &counters)
        }
    }

    func pipeStatus(of router: Router) -> [PipeStatus] {
        router.pipeLinks.map { $0.trunk.status(meetingID: router.meetingID) }.sorted { $0.remote < $1.remote }
    }
}
