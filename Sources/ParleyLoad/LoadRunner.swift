import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Histogram
import HummingbirdWSClient
import NIOWebSocket
import Logging
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
    /// The local address the simulated peers' sockets bind (and announce, when not the wildcard).
    public var bindHost = "0.0.0.0"
    /// The only address media may go to; the --url host unless set (Janus announces its media
    /// on another loopback address than its API's).
    public var mediaHost: String?
    /// The SFU under test: Parley (signaling or WHIP/WHEP) or Janus's VideoRoom (its WebSocket API).
    public var target: LoadTarget = .parley
    /// Join through WHIP (video publishers) and WHEP (everyone else) instead of the signaling WebSocket.
    public var whipWhep = false
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
    public var participants: [Participant]
}

/// Runs simulated participants against a Parley server through its signaling WebSocket.
public final class LoadRunner: Sendable {
    public let configuration: LoadConfiguration
    let loop = LoadLoop()
    let logger: Logger
    let host: String
    let port: Int
    let failures = Mutex<[String: String]>([:])

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
        self.logger = logger
        self.host = host
        self.port = components.port ?? (components.scheme == "https" ? 443 : 80)
    }

    static func isIPv4(_ host: String) -> Bool { host.split(separator: ".", omittingEmptySubsequences: false).compactMap({ UInt8($0) }).count == 4 }

    /// The one address candidates may name.
    var mediaHost: String { configuration.mediaHost ?? host }

    public func run(progress: @escaping @Sendable (String) -> Void) async -> LoadReport {
        loop.start()
        defer { loop.stop() }
        let started = Date()
        let deadline = started.addingTimeInterval(configuration.duration)
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if Task.isCancelled { break }
                let line = await self.progressLine(elapsed: Date().timeIntervalSince(started))
                progress(line)
            }
        }
        await withTaskGroup(of: Void.self) { group in
            for meeting in 0..<configuration.meetings {
                if configuration.target == .janus {
                    group.addTask { await self.runJanusMeeting(meeting, deadline: deadline) }
                    continue
                }
                for participant in 0..<configuration.participants {
                    group.addTask {
                        if self.configuration.whipWhep {
                            await self.participateOverHTTP(meeting: meeting, index: participant, deadline: deadline)
                        } else {
                            await self.participate(meeting: meeting, index: participant, deadline: deadline)
                        }
                    }
                }
            }
        }
        ticker.cancel()
        return await report()
    }

    func name(meeting: Int, index: Int) -> String { "load-\(meeting)-\(index)" }

    func options(index: Int) -> LoadPeerOptions {
        let n = configuration.participants
        let videoPublishers = min(n, configuration.videoPublishers ?? n)
        let audioPublishers = min(n, configuration.audioPublishers ?? n)
        var options = LoadPeerOptions()
        options.publishVideo = index < videoPublishers
        options.publishAudio = index < audioPublishers
        options.videoBitrate = configuration.videoBitrate
        options.frameRate = configuration.frameRate
        options.audioReceivers = audioPublishers - (options.publishAudio ? 1 : 0)
        let othersWithVideo = videoPublishers - (options.publishVideo ? 1 : 0)
        options.videoReceivers = min(othersWithVideo, configuration.subscribeTopK ?? othersWithVideo)
        return options
    }

    /// One participant: join over signaling, offer, apply the answer, offer again when asked,
    /// leave at the deadline.
    private func participate(meeting: Int, index: Int, deadline: Date) async {
        let name = self.name(meeting: meeting, index: index)
        let options = self.options(index: index)
        let scheme = configuration.url.hasPrefix("https") ? "wss" : "ws"
        let url = "\(scheme)://\(host):\(port)/ws"
        let loop = self.loop
        let bindHost = configuration.bindHost
        let mediaHost = self.mediaHost
        do {
            try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 20), logger: logger) { inbound, outbound, _ in
                let closer = Task {
                    try? await Task.sleep(for: .seconds(max(0, deadline.timeIntervalSinceNow)))
                    try? await outbound.write(.text(#"{"type":"leave"}"#))
                    try? await outbound.close(.normalClosure, reason: "load run finished")
                }
                defer { closer.cancel() }
                try await outbound.write(.text(Self.json(["type": "join", "meeting": "load-\(meeting)", "name": name])))
                var peerIndex: Int?
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    guard case .text(let text) = message,
                          let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                          let type = object["type"] as? String else { continue }
                    switch type {
                    case "joined":
                        peerIndex = try await loop.submit { loop in
                            try loop.add(LoadPeer(label: name, options: options, now: MonotonicClock.now()), bindHost: bindHost)
                        }
                        guard let peerIndex else { continue }
                        let offer = try await loop.submit { loop in loop.peer(peerIndex).offer() }
                        try await outbound.write(.text(Self.json(["type": "offer", "sdp": offer, "sources": [:] as [String: String]])))
                    case "answer":
                        guard let peerIndex, let sdp = object["sdp"] as? String else { continue }
                        try await loop.submit { loop in try loop.peer(peerIndex).apply(answer: sdp, allowedHost: mediaHost) }
                    case "error":
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
        // Keep the slot's time: a participant that failed early still counts until the deadline.
        if deadline.timeIntervalSinceNow > 0 { try? await Task.sleep(for: .seconds(deadline.timeIntervalSinceNow)) }
    }

    /// One participant over WHIP (if it publishes video) or WHEP: POST the offer, apply the answer,
    /// DELETE the session at the deadline.
    private func participateOverHTTP(meeting: Int, index: Int, deadline: Date) async {
        let name = self.name(meeting: meeting, index: index)
        let publishes = index < min(configuration.participants, configuration.videoPublishers ?? 1)
        var options = LoadPeerOptions()
        options.publishAudio = publishes
        options.publishVideo = publishes
        options.videoBitrate = configuration.videoBitrate
        options.frameRate = configuration.frameRate
        options.audioReceivers = publishes ? 0 : 1
        options.videoReceivers = publishes ? 0 : 1
        let peerOptions = options
        let endpoint = "http://\(host):\(port)/\(publishes ? "whip" : "whep")/load-\(meeting)"
        let bindHost = configuration.bindHost
        let mediaHost = self.mediaHost
        do {
            let peerIndex = try await loop.submit { loop in
                try loop.add(LoadPeer(label: name, options: peerOptions, now: MonotonicClock.now()), bindHost: bindHost)
            }
            let offer = try await loop.submit { loop in loop.peer(peerIndex).offer() }
            var request = URLRequest(url: URL(string: endpoint + (publishes ? "?name=\(name)" : ""))!)
            request.httpMethod = "POST"
            request.setValue("application/sdp", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(offer.utf8)
            let (body, response) = try await URLSession.shared.data(for: request)
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            let text = String(decoding: body, as: UTF8.self)
            guard status == 201 else { throw LoadError.refused("\(endpoint) answered \(status): \(text.prefix(200))") }
            try await loop.submit { loop in try loop.peer(peerIndex).apply(answer: text, allowedHost: mediaHost) }
            if deadline.timeIntervalSinceNow > 0 { try? await Task.sleep(for: .seconds(deadline.timeIntervalSinceNow)) }
            if let location = (response as? HTTPURLResponse)?.value(forHTTPHeaderField: "Location"), let url = URL(string: "http://\(host):\(port)\(location)") {
                var delete = URLRequest(url: url)
                delete.httpMethod = "DELETE"
                _ = try? await URLSession.shared.data(for: delete)
            }
        } catch {
            failures.withLock { $0[name] = "\(error)" }
            if deadline.timeIntervalSinceNow > 0 { try? await Task.sleep(for: .seconds(deadline.timeIntervalSinceNow)) }
        }
    }

    static func json(_ object: [String: Any]) -> String {
        (try? String(decoding: JSONSerialization.data(withJSONObject: object), as: UTF8.self)) ?? "{}"
    }

    private func progressLine(elapsed: Double) async -> String {
        let summary = try? await loop.submit { loop -> (Int, Int, Int, Int) in
            let peers = loop.allPeers
            let connected = Dictionary(grouping: peers, by: \.label).values.filter { $0.allSatisfy(\.isConnected) }.count
            return (connected, peers.reduce(0) { $0 + $1.packetsSent },
                    peers.reduce(0) { $0 + $1.received.values.reduce(0) { $0 + $1.packets } },
                    peers.reduce(0) { $0 + $1.received.values.reduce(0) { $0 + $1.lost } })
        }
        let (connected, sent, received, lost) = summary ?? (0, 0, 0, 0)
        let total = configuration.meetings * configuration.participants
        let loss = received + lost == 0 ? 0 : 100 * Double(lost) / Double(received + lost)
        return String(format: "t=%3.0fs connected %d/%d sent %d received %d loss %.2f%%", elapsed, connected, total, sent, received, loss)
    }

    private func report() async -> LoadReport {
        let failures = self.failures.withLock { $0 }
        let configuration = self.configuration
        let participants = (try? await loop.submit { loop -> [LoadReport.Participant] in
            // A participant may own several peers (Janus: one publishing, one subscribing).
            Dictionary(grouping: loop.allPeers, by: \.label).map { label, peers in
                let streams = peers.flatMap { $0.received.values }
                var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
                for stream in streams { merged.add(stream.latency) }
                let createdAt = peers.map(\.createdAt).min() ?? 0
                let connectedAt = peers.allSatisfy { $0.connectedAt != nil } ? peers.compactMap(\.connectedAt).max() : nil
                let firstPacket = streams.compactMap(\.firstPacketAt).min()
                return LoadReport.Participant(
                    name: label, joined: connectedAt != nil && failures[label] == nil, error: failures[label],
                    joinSeconds: connectedAt.map { Double($0 - createdAt) / 1e9 },
                    firstPacketSeconds: firstPacket.map { Double($0 - createdAt) / 1e9 },
                    packetsSent: peers.reduce(0) { $0 + $1.packetsSent }, packetsReceived: streams.reduce(0) { $0 + $1.packets },
                    packetsLost: streams.reduce(0) { $0 + $1.lost }, streamsReceived: streams.count, malformed: peers.reduce(0) { $0 + $1.malformed },
                    jitterMilliseconds: streams.isEmpty ? 0 : streams.reduce(0) { $0 + $1.jitter } / Double(streams.count) / 1e6,
                    latencyP50Milliseconds: merged.totalCount > 0 ? Double(merged.valueAtPercentile(50)) / 1000 : nil,
                    latencyP99Milliseconds: merged.totalCount > 0 ? Double(merged.valueAtPercentile(99)) / 1000 : nil,
                    packetsRepaired: peers.reduce(0) { $0 + $1.packetsRepaired }, nacksSent: peers.reduce(0) { $0 + $1.nacksSent },
                    retransmissionsSent: peers.reduce(0) { $0 + $1.retransmissionsSent })
            }
        }) ?? []
        var all = participants
        // Participants that never got a peer (join refused, server unreachable) are reported too.
        for (name, error) in failures where !all.contains(where: { $0.name == name }) {
            all.append(.init(name: name, joined: false, error: error, packetsSent: 0, packetsReceived: 0, packetsLost: 0,
                             streamsReceived: 0, malformed: 0, jitterMilliseconds: 0))
        }
        all.sort { $0.name < $1.name }
        let sendErrors = (try? await loop.submit { loop in loop.sendErrors }) ?? 0
        let overall = try? await loop.submit { loop -> (Double?, Double?) in
            var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
            for peer in loop.allPeers { for stream in peer.received.values { merged.add(stream.latency) } }
            guard merged.totalCount > 0 else { return (nil, nil) }
            return (Double(merged.valueAtPercentile(50)) / 1000, Double(merged.valueAtPercentile(99)) / 1000)
        }
        let received = all.reduce(0) { $0 + $1.packetsReceived }
        let lost = all.reduce(0) { $0 + $1.packetsLost }
        let repaired = all.reduce(0) { $0 + $1.packetsRepaired }
        func median(_ values: [Double]) -> Double? { values.isEmpty ? nil : values.sorted()[values.count / 2] }
        return LoadReport(
            url: configuration.url, meetings: configuration.meetings, participantsPerMeeting: configuration.participants,
            durationSeconds: configuration.duration, joined: all.filter(\.joined).count, failed: all.filter { !$0.joined }.count,
            packetsSent: all.reduce(0) { $0 + $1.packetsSent }, packetsReceived: received, packetsLost: lost, sendErrors: sendErrors,
            lossPercent: received + lost == 0 ? 0 : 100 * Double(lost) / Double(received + lost),
            packetsRepaired: repaired, repairedPercent: repaired + lost == 0 ? 0 : 100 * Double(repaired) / Double(repaired + lost),
            latencyP50Milliseconds: overall?.0, latencyP99Milliseconds: overall?.1,
            joinP50Seconds: median(all.compactMap(\.joinSeconds)), firstPacketP50Seconds: median(all.compactMap(\.firstPacketSeconds)),
            participants: all)
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
        return lines.joined(separator: "\n")
    }
}

import Synchronization
