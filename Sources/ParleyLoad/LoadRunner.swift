import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Histogram
import HummingbirdWSClient
import NIOWebSocket
import Logging
import ParleyBase
import ParleyTransport

/// `parley load` settings; the option names are the interface later tests use.
public struct LoadConfiguration: Sendable {
    public var url: String
    public var meetings = 1
    public var participants = 2
    public var duration: Double = 10
    public var videoBitrate = 500_000
    public var frameRate = 25
    /// Participants per meeting that send video (all by default).
    public var videoPublishers: Int?
    /// Participants per meeting that send audio (all by default).
    public var audioPublishers: Int?
    /// Receive video from at most this many others (all by default).
    public var subscribeTopK: Int?
    /// Audio publishers per meeting whose packets carry a loud audio level (the rest: silence);
    /// nil: no audio-level extension.
    public var loudSpeakers: Int?
    /// Participants joining per second, in order across meetings (nil: all at once).
    public var joinRate: Double?
    /// Nobody here publishes: each receives what `audioPublishers`/`videoPublishers` others (of
    /// another run, in the same meeting) send.
    public var receiveOnly = false
    /// Threads the simulated peers run on (each with its own sockets and timers).
    public var threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
    /// The local address the simulated peers' sockets bind (and announce, when not the wildcard).
    public var bindHost = "0.0.0.0"
    /// The only address media may go to; the --url host unless set (Janus announces its media
    /// on another loopback address than its API's).
    public var mediaHost: String?
    /// The SFU under test: Parley (signaling or WHIP/WHEP) or Janus's VideoRoom (its WebSocket API).
    public var target: LoadTarget = .parley
    /// Join through WHIP (video publishers) and WHEP (everyone else) instead of the signaling WebSocket.
    public var whipWhep = false
    /// How participants leave: participant k of each meeting uses `leaveModes[k % count]`.
    public var leaveModes: [LeaveMode] = [.allAtOnce]
    /// Meetings are named `PREFIX-0`, `PREFIX-1`…, participants `PREFIX-M-K`.
    public var meetingPrefix = "load"
    public init(url: String) { self.url = url }
}

public enum LoadTarget: String, Sendable, CaseIterable {
    case parley, janus
}

/// What a run measured, per participant and overall.
public struct LoadReport: Codable, Sendable {
    public struct Participant: Codable, Sendable {
        public var name: String
        public var joined: Bool
        public var error: String?
        public var joinSeconds: Double?
        public var firstPacketSeconds: Double?
        public var packetsSent: Int
        public var packetsReceived: Int
        public var packetsLost: Int
        public var streamsReceived: Int
        /// Datagrams that came from the server but held no readable probe (or failed authentication).
        public var malformed: Int
        public var jitterMilliseconds: Double
        public var latencyP50Milliseconds: Double?
        public var latencyP99Milliseconds: Double?
        /// Video packets lost on the way and recovered (asked for with NACK, sent again).
        public var packetsRepaired: Int = 0
        public var nacksSent: Int = 0
        /// Packets this participant sent again because the server asked.
        public var retransmissionsSent: Int = 0
        /// Video frames received (every stream), the `framesDecoded` of a browser.
        public var framesReceived: Int = 0
        /// How it was to leave (`--leave`), and when it did, in seconds from the start of the run.
        public var leave: String = LeaveMode.allAtOnce.rawValue
        public var leftAfterSeconds: Double?
        /// For `dtls-close` and `silent`: whether the server ended the media on its own (signaling
        /// said `media-failed`; a WHIP/WHEP session's DELETE found it gone).
        public var mediaEndedByServer: Bool?
        /// A host removed it (signaling said `moderated`, `removed`).
        public var removed: Bool = false
        /// The SFU worker its media went to ("address:port" of the answer's candidate).
        public var server: String?
    }
    /// What each SFU worker's participants received: a cascaded meeting's SFUs side by side.
    public struct Server: Codable, Sendable {
        public var address: String
        public var participants: Int
        public var packetsReceived: Int
        public var packetsLost: Int
        public var lossPercent: Double
        public var latencyP50Milliseconds: Double?
        public var latencyP99Milliseconds: Double?
    }
    public var url: String
    public var meetings: Int
    public var participantsPerMeeting: Int
    public var durationSeconds: Double
    public var joined: Int
    public var failed: Int
    public var packetsSent: Int
    public var packetsReceived: Int
    public var packetsLost: Int
    /// sendto() failures on the load generator's own sockets.
    public var sendErrors: Int
    /// What stayed lost, as a share of what was sent to participants.
    public var lossPercent: Double
    /// Packets lost on the way but recovered, and that as a share of everything lost on the way.
    public var packetsRepaired: Int = 0
    public var repairedPercent: Double = 0
    public var latencyP50Milliseconds: Double?
    public var latencyP99Milliseconds: Double?
    public var joinP50Seconds: Double?
    public var firstPacketP50Seconds: Double?
    /// Participants by the way they left, and of the `dtls-close`/`silent` ones, how many the
    /// server dropped on its own.
    public var leaves: [String: Int] = [:]
    public var mediaEndedByServer: Int = 0
    public var removed: Int = 0
    public var perServer: [Server] = []
    public var participants: [Participant]
}

/// What a run has done so far, once a second (`--progress-json` prints it as one JSON line).
public struct LoadProgress: Codable, Sendable {
    public struct Participant: Codable, Sendable {
        public var connected: Bool
        public var packetsReceived: Int
        public var packetsLost: Int
        public var framesReceived: Int
    }
    public var elapsedSeconds: Double
    public var connected: Int
    public var total: Int
    public var left: Int
    public var packetsSent: Int
    public var packetsReceived: Int
    public var packetsLost: Int
    public var framesReceived: Int
    public var participants: [String: Participant]

    /// The human form.
    public var line: String {
        let loss = packetsReceived + packetsLost == 0 ? 0 : 100 * Double(packetsLost) / Double(packetsReceived + packetsLost)
        return String(format: "t=%3.0fs connected %d/%d sent %d received %d loss %.2f%%", elapsedSeconds, connected, total,
                      packetsSent, packetsReceived, loss) + (left > 0 ? " left \(left)" : "")
    }
}

/// Runs simulated participants against a Parley server through its signaling WebSocket.
public final class LoadRunner: Sendable {
    public let configuration: LoadConfiguration
    let loops: LoadLoops
    let logger: Logger
    let host: String
    let port: Int
    let failures = Mutex<[String: String]>([:])
    let leaves = Mutex<[String: LeaveOutcome]>([:])

    public init(configuration: LoadConfiguration, logger: Logger) throws(LoadError) {
        let schemes = configuration.target == .janus ? ["ws"] : ["http", "https"]
        guard let components = URLComponents(string: configuration.url), let host = components.host,
              let scheme = components.scheme, schemes.contains(scheme) else {
            throw .unreachable("--url must look like \(schemes[0])://HOST:PORT for \(configuration.target.rawValue), got \(configuration.url)")
        }
        for (option, address) in [("--url", host), ("--media-host", configuration.mediaHost ?? host)] {
            guard Self.isIPv4(address) else {
                throw .unreachable("\(option) must name the server by its IPv4 address (the load generator sends media only there), got \(address)")
            }
        }
        self.configuration = configuration
        self.loops = LoadLoops(threads: configuration.threads)
        self.logger = logger
        self.host = host
        self.port = components.port ?? (components.scheme == "https" ? 443 : 80)
    }

    static func isIPv4(_ host: String) -> Bool { host.split(separator: ".", omittingEmptySubsequences: false).compactMap({ UInt8($0) }).count == 4 }

    /// The one address candidates may name.
    var mediaHost: String { configuration.mediaHost ?? host }

    public func run(progress: @escaping @Sendable (LoadProgress) -> Void) async -> LoadReport {
        loops.start()
        defer { loops.stop() }
        let started = Date()
        let deadline = started.addingTimeInterval(configuration.duration)
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if Task.isCancelled { break }
                progress(await self.progress(elapsed: Date().timeIntervalSince(started)))
            }
        }
        await withTaskGroup(of: Void.self) { group in
            for meeting in 0..<configuration.meetings {
                if configuration.target == .janus {
                    group.addTask { await self.runJanusMeeting(meeting, deadline: deadline) }
                    continue
                }
                for participant in 0..<configuration.participants {
                    let leaving = Leaving(mode: leaveMode(index: participant),
                                          at: leaveTime(meeting: meeting, index: participant, started: started, deadline: deadline))
                    leaves.withLock { $0[name(meeting: meeting, index: participant)] = LeaveOutcome(mode: leaving.mode) }
                    let joinDelay = configuration.joinRate.map { Double(meeting * configuration.participants + participant) / $0 } ?? 0
                    group.addTask {
                        if joinDelay > 0 { try? await Task.sleep(for: .seconds(joinDelay)) }
                        if self.configuration.whipWhep {
                            await self.participateOverHTTP(meeting: meeting, index: participant, leaving: leaving, started: started, deadline: deadline)
                        } else {
                            await self.participate(meeting: meeting, index: participant, leaving: leaving, started: started, deadline: deadline)
                        }
                    }
                }
            }
        }
        ticker.cancel()
        return await report()
    }

    func name(meeting: Int, index: Int) -> String { "\(configuration.meetingPrefix)-\(meeting)-\(index)" }
    func meetingID(_ meeting: Int) -> String { "\(configuration.meetingPrefix)-\(meeting)" }

    func options(index: Int) -> LoadPeerOptions {
        let n = configuration.participants
        let videoPublishers = min(n, configuration.videoPublishers ?? n)
        let audioPublishers = min(n, configuration.audioPublishers ?? n)
        var options = LoadPeerOptions()
        options.publishVideo = index < videoPublishers && !configuration.receiveOnly
        options.publishAudio = index < audioPublishers && !configuration.receiveOnly
        if let loud = configuration.loudSpeakers { options.audioLevel = index < loud ? 20 : 127 }
        options.videoBitrate = configuration.videoBitrate
        options.frameRate = configuration.frameRate
        options.audioReceivers = audioPublishers - (options.publishAudio ? 1 : 0)
        let othersWithVideo = videoPublishers - (options.publishVideo ? 1 : 0)
        options.videoReceivers = min(othersWithVideo, configuration.subscribeTopK ?? othersWithVideo)
        options.stopMidHandshake = leaveMode(index: index) == .midHandshake
        return options
    }

    /// One participant: join over signaling, offer, apply the answer, offer again when asked,
    /// leave the way `leaving` says (`leave(_:)`).
    private func participate(meeting: Int, index: Int, leaving: Leaving, started: Date, deadline: Date) async {
        let name = self.name(meeting: meeting, index: index)
        let options = self.options(index: index)
        let scheme = configuration.url.hasPrefix("https") ? "wss" : "ws"
        let url = "\(scheme)://\(host):\(port)/ws"
        let loops = self.loops
        let bindHost = configuration.bindHost
        let mediaHost = self.mediaHost
        let meetingID = self.meetingID(meeting)
        let session = ParticipantSession()
        do {
            try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 20), logger: logger) { inbound, outbound, _ in
                let leaver = Task { await self.leave(name, session: session, leaving: leaving, started: started, deadline: deadline, outbound: outbound) }
                defer { leaver.cancel() }
                try await outbound.write(.text(Self.json(["type": "join", "meeting": meetingID, "name": name])))
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    guard case .text(let text) = message,
                          let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                          let type = object["type"] as? String else { continue }
                    switch type {
                    case "joined":
                        // As a browser does: no more receiving sections than the server has slots.
                        var options = options
                        if let media = object["media"] as? [String: Any] {
                            if let speakers = media["audioSpeakers"] as? Int { options.audioReceivers = min(options.audioReceivers, max(0, speakers)) }
                            if let videos = media["videoSlots"] as? Int { options.videoReceivers = min(options.videoReceivers, max(0, videos)) }
                        }
                        let peer = try await loops.add(label: name, options: options, bindHost: bindHost)
                        session.peer.withLock { $0 = peer }
                        let offer = try await loops.submit(peer) { $0.offer() }
                        try await outbound.write(.text(Self.json(["type": "offer", "sdp": offer, "sources": [:] as [String: String]])))
                    case "answer":
                        guard let peer = session.peer.withLock({ $0 }), let sdp = object["sdp"] as? String else { continue }
                        try await loops.submit(peer) { try $0.apply(answer: sdp, allowedHost: mediaHost) }
                    case "moderated" where object["action"] as? String == "removed":
                        self.leaves.withLock { $0[name]?.removed = true }
                    case "error":
                        // Once it hung up or went silent, losing the media is what it waits for.
                        if object["code"] as? String == "media-failed", session.leaving.load(ordering: .relaxed) {
                            session.mediaGone.store(true, ordering: .relaxed)
                            continue
                        }
                        let reason = "\(object["code"] ?? "error"): \(object["message"] ?? "")"
                        self.failures.withLock { $0[name] = reason }
                    default:
                        continue
                    }
                }
            }
        } catch {
            failures.withLock { $0[name] = "\(error)" }
        }
        // The server ended the conversation (a removal, the meeting ended) or it left: either
        // way its peer goes quiet now, as a browser's would.
        await silence(session)
        leaves.withLock { outcome in
            if outcome[name]?.leftAt == nil { outcome[name]?.leftAt = Date().timeIntervalSince(started) }
        }
        // Keep the slot's time: a participant that failed or left early still counts until the deadline.
        if deadline.timeIntervalSinceNow > 0 { try? await Task.sleep(for: .seconds(deadline.timeIntervalSinceNow)) }
    }

    /// Waits for a signaling participant's moment to leave, then leaves that way.
    private func leave(_ name: String, session: ParticipantSession, leaving: Leaving, started: Date, deadline: Date,
                       outbound: WebSocketOutboundWriter) async {
        await waitForLeaving(session, leaving: leaving, deadline: deadline)
        guard !Task.isCancelled else { return }
        session.leaving.store(true, ordering: .relaxed)
        leaves.withLock { $0[name]?.leftAt = Date().timeIntervalSince(started) }
        switch leaving.mode {
        case .allAtOnce, .oneByOne, .midHandshake:
            try? await outbound.write(.text(#"{"type":"leave"}"#))
            await silence(session)
            try? await outbound.close(.normalClosure, reason: "left")
        case .dtlsClose, .silent:
            await hangUp(session, closeNotify: leaving.mode == .dtlsClose)
            let ended = await Self.poll(until: Date().addingTimeInterval(leaving.mode.serverDropWait)) { session.mediaGone.load(ordering: .relaxed) }
            guard !Task.isCancelled else { return }
            leaves.withLock { $0[name]?.mediaEndedByServer = ended }
            try? await outbound.write(.text(#"{"type":"leave"}"#))
            try? await outbound.close(.normalClosure, reason: "left")
        case .dropSocket:
            // No `leave`: the socket just goes, as a closed tab's does.
            await silence(session)
            try? await outbound.close(.goingAway, reason: "")
        }
    }

    /// Until this participant's time to leave: its leave time, or for `mid-handshake` the moment
    /// its peer went quiet after the ClientHello (or the deadline, if it never got that far).
    private func waitForLeaving(_ session: ParticipantSession, leaving: Leaving, deadline: Date) async {
        if leaving.mode == .midHandshake {
            let loops = self.loops
            _ = await Self.poll(until: deadline, every: .milliseconds(10)) {
                guard let peer = session.peer.withLock({ $0 }) else { return false }
                return (try? await loops.submit(peer) { $0.stoppedMidHandshake }) ?? true
            }
        } else if leaving.at.timeIntervalSinceNow > 0 {
            try? await Task.sleep(for: .seconds(leaving.at.timeIntervalSinceNow))
        }
    }

    private func silence(_ session: ParticipantSession) async {
        await hangUp(session, closeNotify: false)
    }

    private func hangUp(_ session: ParticipantSession, closeNotify: Bool) async {
        guard let peer = session.peer.withLock({ $0 }) else { return }
        _ = try? await loops.submit(peer) { peer in
            if closeNotify { peer.hangUp() } else { peer.silence() }
        }
    }

    /// True as soon as `condition` holds, false if `limit` passes first (or the task is cancelled).
    static func poll(until limit: Date, every interval: Duration = .milliseconds(50), _ condition: () async -> Bool) async -> Bool {
        while !Task.isCancelled {
            if await condition() { return true }
            if limit.timeIntervalSinceNow <= 0 { return false }
            try? await Task.sleep(for: interval)
        }
        return false
    }

    /// One participant over WHIP (if it publishes video) or WHEP: POST the offer, apply the answer,
    /// leave the way `leaving` says; every way ends with a DELETE of the session (after a
    /// `dtls-close` or `silent`, a 404 means the server had ended it on its own).
    private func participateOverHTTP(meeting: Int, index: Int, leaving: Leaving, started: Date, deadline: Date) async {
        let name = self.name(meeting: meeting, index: index)
        let publishes = index < min(configuration.participants, configuration.videoPublishers ?? 1)
        var options = LoadPeerOptions()
        options.publishAudio = publishes
        options.publishVideo = publishes
        options.videoBitrate = configuration.videoBitrate
        options.frameRate = configuration.frameRate
        options.audioReceivers = publishes ? 0 : 1
        options.videoReceivers = publishes ? 0 : 1
        options.stopMidHandshake = leaving.mode == .midHandshake
        let peerOptions = options
        let endpoint = "http://\(host):\(port)/\(publishes ? "whip" : "whep")/\(meetingID(meeting))"
        let bindHost = configuration.bindHost
        let mediaHost = self.mediaHost
        let session = ParticipantSession()
        do {
            let peer = try await loops.add(label: name, options: peerOptions, bindHost: bindHost)
            session.peer.withLock { $0 = peer }
            let offer = try await loops.submit(peer) { $0.offer() }
            var request = URLRequest(url: URL(string: endpoint + (publishes ? "?name=\(name)" : ""))!)
            request.httpMethod = "POST"
            request.setValue("application/sdp", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(offer.utf8)
            let (body, response) = try await URLSession.shared.data(for: request)
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            let text = String(decoding: body, as: UTF8.self)
            guard status == 201 else { throw LoadError.refused("\(endpoint) answered \(status): \(text.prefix(200))") }
            try await loops.submit(peer) { try $0.apply(answer: text, allowedHost: mediaHost) }
            await waitForLeaving(session, leaving: leaving, deadline: deadline)
            leaves.withLock { $0[name]?.leftAt = Date().timeIntervalSince(started) }
            switch leaving.mode {
            case .dtlsClose, .silent:
                await hangUp(session, closeNotify: leaving.mode == .dtlsClose)
                // No channel says when the server dropped it: wait as long as it may take.
                try? await Task.sleep(for: .seconds(leaving.mode.serverDropWait))
            case .allAtOnce, .oneByOne, .midHandshake, .dropSocket:
                break
            }
            if let location = (response as? HTTPURLResponse)?.value(forHTTPHeaderField: "Location"), let url = URL(string: "http://\(host):\(port)\(location)") {
                var delete = URLRequest(url: url)
                delete.httpMethod = "DELETE"
                let answered = (try? await URLSession.shared.data(for: delete)).flatMap { ($0.1 as? HTTPURLResponse)?.statusCode }
                if leaving.mode == .dtlsClose || leaving.mode == .silent {
                    leaves.withLock { $0[name]?.mediaEndedByServer = answered == 404 }
                }
            }
            await silence(session)
        } catch {
            failures.withLock { $0[name] = "\(error)" }
        }
        if deadline.timeIntervalSinceNow > 0 { try? await Task.sleep(for: .seconds(deadline.timeIntervalSinceNow)) }
    }

    static func json(_ object: [String: Any]) -> String {
        (try? String(decoding: JSONSerialization.data(withJSONObject: object), as: UTF8.self)) ?? "{}"
    }

    private func progress(elapsed: Double) async -> LoadProgress {
        // One trip to each loop's thread for everything (a participant's peers share a loop).
        let perLoop = await loops.gather { loop -> ([String: LoadProgress.Participant], Int) in
            // A participant may own several peers (Janus: one publishing, one subscribing).
            let byParticipant = Dictionary(grouping: loop.allPeers, by: \.label).mapValues { peers in
                let streams = peers.flatMap { $0.received.values }
                return LoadProgress.Participant(connected: peers.allSatisfy(\.isConnected), packetsReceived: streams.reduce(0) { $0 + $1.packets },
                                                packetsLost: streams.reduce(0) { $0 + $1.lost }, framesReceived: peers.reduce(0) { $0 + $1.framesReceived })
            }
            return (byParticipant, loop.allPeers.reduce(0) { $0 + $1.packetsSent })
        }
        let byParticipant = perLoop.reduce(into: [String: LoadProgress.Participant]()) { $0.merge($1.0) { first, _ in first } }
        let sent = perLoop.reduce(0) { $0 + $1.1 }
        let left = leaves.withLock { $0.values.filter { $0.leftAt != nil }.count }
        let values = byParticipant.values
        return LoadProgress(elapsedSeconds: elapsed, connected: values.filter(\.connected).count,
                            total: configuration.meetings * configuration.participants, left: left, packetsSent: sent,
                            packetsReceived: values.reduce(0) { $0 + $1.packetsReceived }, packetsLost: values.reduce(0) { $0 + $1.packetsLost },
                            framesReceived: values.reduce(0) { $0 + $1.framesReceived }, participants: byParticipant)
    }

    private func report() async -> LoadReport {
        let failures = self.failures.withLock { $0 }
        let configuration = self.configuration
        let gathered = await loops.gather { loop -> [(LoadReport.Participant, Histogram<UInt64>)] in
            // A participant may own several peers (Janus: one publishing, one subscribing).
            Dictionary(grouping: loop.allPeers, by: \.label).map { label, peers in
                let streams = peers.flatMap { $0.received.values }
                var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
                for stream in streams { merged.add(stream.latency) }
                let createdAt = peers.map(\.createdAt).min() ?? 0
                let connectedAt = peers.allSatisfy { $0.connectedAt != nil } ? peers.compactMap(\.connectedAt).max() : nil
                let firstPacket = streams.compactMap(\.firstPacketAt).min()
                var participant = LoadReport.Participant(
                    name: label, joined: connectedAt != nil && failures[label] == nil, error: failures[label],
                    joinSeconds: connectedAt.map { Double($0 - createdAt) / 1e9 },
                    firstPacketSeconds: firstPacket.map { Double($0 - createdAt) / 1e9 },
                    packetsSent: peers.reduce(0) { $0 + $1.packetsSent }, packetsReceived: streams.reduce(0) { $0 + $1.packets },
                    packetsLost: streams.reduce(0) { $0 + $1.lost }, streamsReceived: streams.count, malformed: peers.reduce(0) { $0 + $1.malformed },
                    jitterMilliseconds: streams.isEmpty ? 0 : streams.reduce(0) { $0 + $1.jitter } / Double(streams.count) / 1e6,
                    latencyP50Milliseconds: merged.totalCount > 0 ? Double(merged.valueAtPercentile(50)) / 1000 : nil,
                    latencyP99Milliseconds: merged.totalCount > 0 ? Double(merged.valueAtPercentile(99)) / 1000 : nil,
                    packetsRepaired: peers.reduce(0) { $0 + $1.packetsRepaired }, nacksSent: peers.reduce(0) { $0 + $1.nacksSent },
                    retransmissionsSent: peers.reduce(0) { $0 + $1.retransmissionsSent }, framesReceived: peers.reduce(0) { $0 + $1.framesReceived })
                participant.server = peers.compactMap(\.remoteAddress).first.map { "\($0)" }
                return (participant, merged)
            }
        }.flatMap { $0 }
        let participants = gathered.map(\.0)
        var all = participants
        // Participants that never got a peer (join refused, server unreachable) are reported too.
        for (name, error) in failures where !all.contains(where: { $0.name == name }) {
            all.append(.init(name: name, joined: false, error: error, packetsSent: 0, packetsReceived: 0, packetsLost: 0,
                             streamsReceived: 0, malformed: 0, jitterMilliseconds: 0))
        }
        let leaves = self.leaves.withLock { $0 }
        for index in all.indices {
            guard let outcome = leaves[all[index].name] else { continue }
            all[index].leave = outcome.mode.rawValue
            all[index].leftAfterSeconds = outcome.leftAt
            all[index].mediaEndedByServer = outcome.mediaEndedByServer
            all[index].removed = outcome.removed
        }
        all.sort { $0.name < $1.name }
        let sendErrors = await loops.gather { loop in loop.sendErrors }.reduce(0, +)
        var latencies = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        for histogram in await loops.gather({ loop -> Histogram<UInt64> in
            var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
            for peer in loop.allPeers { for stream in peer.received.values { merged.add(stream.latency) } }
            return merged
        }) { latencies.add(histogram) }
        let overall: (Double?, Double?) = latencies.totalCount > 0
            ? (Double(latencies.valueAtPercentile(50)) / 1000, Double(latencies.valueAtPercentile(99)) / 1000) : (nil, nil)
        let received = all.reduce(0) { $0 + $1.packetsReceived }
        let lost = all.reduce(0) { $0 + $1.packetsLost }
        let repaired = all.reduce(0) { $0 + $1.packetsRepaired }
        func median(_ values: [Double]) -> Double? { values.isEmpty ? nil : values.sorted()[values.count / 2] }
        var servers: [String: (participants: Int, received: Int, lost: Int, latency: Histogram<UInt64>)] = [:]
        for (participant, latency) in gathered {
            guard let server = participant.server else { continue }
            var entry = servers[server] ?? (0, 0, 0, Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three))
            entry.participants += 1
            entry.received += participant.packetsReceived
            entry.lost += participant.packetsLost
            entry.latency.add(latency)
            servers[server] = entry
        }
        let perServer = servers.sorted { $0.key < $1.key }.map { address, entry in
            LoadReport.Server(address: address, participants: entry.participants, packetsReceived: entry.received, packetsLost: entry.lost,
                              lossPercent: entry.received + entry.lost == 0 ? 0 : 100 * Double(entry.lost) / Double(entry.received + entry.lost),
                              latencyP50Milliseconds: entry.latency.totalCount > 0 ? Double(entry.latency.valueAtPercentile(50)) / 1000 : nil,
                              latencyP99Milliseconds: entry.latency.totalCount > 0 ? Double(entry.latency.valueAtPercentile(99)) / 1000 : nil)
        }
        return LoadReport(
            url: configuration.url, meetings: configuration.meetings, participantsPerMeeting: configuration.participants,
            durationSeconds: configuration.duration, joined: all.filter(\.joined).count, failed: all.filter { !$0.joined }.count,
            packetsSent: all.reduce(0) { $0 + $1.packetsSent }, packetsReceived: received, packetsLost: lost, sendErrors: sendErrors,
            lossPercent: received + lost == 0 ? 0 : 100 * Double(lost) / Double(received + lost),
            packetsRepaired: repaired, repairedPercent: repaired + lost == 0 ? 0 : 100 * Double(repaired) / Double(repaired + lost),
            latencyP50Milliseconds: overall.0, latencyP99Milliseconds: overall.1,
            joinP50Seconds: median(all.compactMap(\.joinSeconds)), firstPacketP50Seconds: median(all.compactMap(\.firstPacketSeconds)),
            leaves: Dictionary(grouping: all, by: \.leave).mapValues(\.count),
            mediaEndedByServer: all.filter { $0.mediaEndedByServer == true }.count, removed: all.filter(\.removed).count,
            perServer: perServer, participants: all)
    }
}

extension LoadReport {
    /// The table printed at the end of a run.
    public var table: String {
        func cell(_ text: String, _ width: Int, left: Bool = false) -> String {
            let padding = String(repeating: " ", count: max(0, width - text.count))
            return left ? text + padding : padding + text
        }
        func number(_ value: Double?, _ digits: Int = 2) -> String { value.map { String(format: "%.\(digits)f", $0) } ?? "-" }
        let widths = [16, 7, 8, 9, 9, 7, 8, 8, 8]
        let headings = ["participant", "joined", "join s", "sent", "received", "lost", "jit ms", "p50 ms", "p99 ms"]
        var lines = [zip(headings, widths).enumerated().map { cell($1.0, $1.1, left: $0 == 0) }.joined(separator: " ")]
        for p in participants {
            let row = [p.name, p.joined ? "yes" : "NO", number(p.joinSeconds), String(p.packetsSent), String(p.packetsReceived),
                       String(p.packetsLost), number(p.jitterMilliseconds), number(p.latencyP50Milliseconds), number(p.latencyP99Milliseconds)]
            lines.append(zip(row, widths).enumerated().map { cell($1.0, $1.1, left: $0 == 0) }.joined(separator: " "))
            if let error = p.error { lines.append("    error: \(error)") }
        }
        lines.append("total: \(joined)/\(joined + failed) joined, sent \(packetsSent), received \(packetsReceived), lost \(packetsLost) "
            + "(\(number(lossPercent))%), repaired \(packetsRepaired) (\(number(repairedPercent))% of what the network lost), latency p50 \(number(latencyP50Milliseconds)) ms p99 \(number(latencyP99Milliseconds)) ms, "
            + "join p50 \(number(joinP50Seconds)) s, first packet p50 \(number(firstPacketP50Seconds)) s")
        if perServer.count > 1 {
            for server in perServer {
                lines.append("server \(server.address): \(server.participants) participants, received \(server.packetsReceived), lost \(server.packetsLost) "
                    + "(\(number(server.lossPercent))%), latency p50 \(number(server.latencyP50Milliseconds)) ms p99 \(number(server.latencyP99Milliseconds)) ms")
            }
        }
        if leaves.keys.contains(where: { $0 != LeaveMode.allAtOnce.rawValue }) || removed > 0 {
            let waited = participants.filter { $0.mediaEndedByServer != nil }.count
            lines.append("left: " + leaves.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                + (waited > 0 ? "; the server dropped \(mediaEndedByServer) of \(waited) that hung up or went silent" : "")
                + (removed > 0 ? "; \(removed) removed by a host" : ""))
        }
        return lines.joined(separator: "\n")
    }
}

import Synchronization
