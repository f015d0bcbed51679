import Foundation
import HummingbirdWSClient
import NIOWebSocket
import ParleyBase
import ParleyTransport
import Synchronization

/// The publishers of one Janus room as they come up, so subscribers know which feeds to ask for.
actor JanusRoomFeeds {
    struct Feed: Sendable {
        var id: UInt64
        var audio: Bool
        var video: Bool
    }
    private(set) var feeds: [Int: Feed] = [:]
    func add(_ feed: Feed, index: Int) { feeds[index] = feed }
}

extension LoadRunner {
    /// One meeting on Janus's VideoRoom: one Janus session (one WebSocket) for the meeting's
    /// participants, a room made for the run, and per participant a publishing PeerConnection
    /// (if it sends anything) and a subscribing one that receives the others' feeds.
    func runJanusMeeting(_ meeting: Int, deadline: Date) async {
        let url = configuration.url
        do {
            try await WebSocketClient.connect(url: url, configuration: JanusConnection.configuration, logger: logger) { inbound, outbound, _ in
                let janus = JanusConnection(outbound: outbound)
                let reader = Task { await janus.dispatch(inbound) }
                defer { reader.cancel() }
                try await janus.createSession()
                let keepalive = Task {
                    while !Task.isCancelled {
                        try await Task.sleep(for: .seconds(20))
                        try await janus.keepalive()
                    }
                }
                defer { keepalive.cancel() }
                let control = try await janus.attachVideoRoom()
                let room = UInt64.random(in: 1...(1 << 52))
                _ = try await janus.message(control, [
                    "request": "create", "room": room, "publishers": max(3, self.configuration.participants),
                    "description": "parley load \(meeting)", "bitrate": 0,
                ])
                let feeds = JanusRoomFeeds()
                await withTaskGroup(of: Void.self) { group in
                    for index in 0..<self.configuration.participants {
                        group.addTask { await self.participateOnJanus(janus, room: room, feeds: feeds, meeting: meeting, index: index, deadline: deadline) }
                    }
                }
                try? await outbound.close(.normalClosure, reason: "load run finished")
            }
        } catch {
            // Participants that had not failed on their own all fail with the meeting's reason.
            for index in 0..<configuration.participants {
                let name = self.name(meeting: meeting, index: index)
                failures.withLock { if $0[name] == nil { $0[name] = "Janus at \(url): \(error)" } }
            }
            if deadline.timeIntervalSinceNow > 0 { try? await Task.sleep(for: .seconds(deadline.timeIntervalSinceNow)) }
        }
    }

    private func participateOnJanus(_ janus: JanusConnection, room: UInt64, feeds: JanusRoomFeeds, meeting: Int, index: Int, deadline: Date) async {
        let name = self.name(meeting: meeting, index: index)
        let options = self.options(index: index)
        let loops = self.loops
        let bindHost = configuration.bindHost
        let mediaHost = self.mediaHost
        do {
            if options.publishAudio || options.publishVideo {
                var publishing = options
                publishing.audioReceivers = 0
                publishing.videoReceivers = 0
                let sending = publishing
                let peer = try await loops.add(label: name, options: sending, bindHost: bindHost)
                let handle = try await janus.attachVideoRoom()
                let joined = try await janus.message(handle, ["request": "join", "ptype": "publisher", "room": room, "display": name])
                guard let feed = (joined.pluginData["id"] as? NSNumber)?.uint64Value else {
                    throw LoadError.badAnswer("Janus join: no publisher id in \(joined.text.prefix(200))")
                }
                let offer = try await loops.submit(peer) { $0.offer() }
                let configured = try await janus.message(handle, ["request": "configure", "audio": sending.publishAudio, "video": sending.publishVideo],
                                                         jsep: ("offer", offer))
                guard let answer = configured.sdp else { throw LoadError.badAnswer("Janus configure: no answer in \(configured.text.prefix(200))") }
                try await loops.submit(peer) { try $0.apply(answer: answer, allowedHost: mediaHost) }
                try await janus.waitUntilUp(handle, timeout: .seconds(15))
                await feeds.add(.init(id: feed, audio: sending.publishAudio, video: sending.publishVideo), index: index)
            }
            // Subscribe once every publisher of the room is up (Janus refuses feeds that are not).
            let publishers = (0..<configuration.participants).filter { self.options(index: $0).publishAudio || self.options(index: $0).publishVideo }
            while await feeds.feeds.count < publishers.count, deadline.timeIntervalSinceNow > 0 {
                try await Task.sleep(for: .milliseconds(100))
            }
            let others = await feeds.feeds.filter { $0.key != index }.sorted { $0.key < $1.key }.map(\.value)
            var videosWanted = options.videoReceivers
            var streams: [[String: Any]] = []
            for feed in others {
                if feed.video && videosWanted > 0 {
                    videosWanted -= 1
                    streams.append(["feed": feed.id])
                } else if feed.audio {
                    streams.append(["feed": feed.id, "mid": "0"])  // audio is the first section of every load publisher
                }
            }
            if !streams.isEmpty {
                let receiving = LoadPeerOptions.receiveOnly
                let peer = try await loops.add(label: name, options: receiving, bindHost: bindHost)
                let handle = try await janus.attachVideoRoom()
                let attached = try await janus.message(handle, ["request": "join", "ptype": "subscriber", "room": room, "streams": streams])
                guard let offer = attached.sdp else { throw LoadError.badAnswer("Janus subscribe: no offer in \(attached.text.prefix(200))") }
                let answer = try await loops.submit(peer) { try $0.answer(offer: offer, allowedHost: mediaHost) }
                _ = try await janus.message(handle, ["request": "start", "room": room], jsep: ("answer", answer))
            }
        } catch {
            failures.withLock { $0[name] = "\(error)" }
        }
        if deadline.timeIntervalSinceNow > 0 { try? await Task.sleep(for: .seconds(deadline.timeIntervalSinceNow)) }
    }
}

extension LoadPeerOptions {
    static var receiveOnly: LoadPeerOptions {
        var options = LoadPeerOptions()
        options.publishAudio = false
        options.publishVideo = false
        return options
    }
}
