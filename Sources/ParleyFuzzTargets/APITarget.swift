import Foundation
import ParleyControl
import ParleyMediaAPI
import ParleyMediaFuzzTargets
import ParleyServer

/// JSON request bodies of the meetings API and the SFU control API, decoded as the routes
/// decode them and then validated as the routes go on to do. The first input byte picks the
/// body's type; the rest is the body.
enum APITarget {
    static let bodies: [(String, @Sendable (Data) -> Void)] = [
        ("POST /api/meetings", { data in
            guard let body = try? JSONDecoder().decode(CreateMeetingRequest.self, from: data) else { return }
            let id: String?
            do { id = try body.validatedID() } catch { return }
            require(id == body.id, "validation changed the meeting id")
            var settings = MeetingSettings()
            body.settings.apply(to: &settings)
        }),
        ("PATCH /api/meetings/{meeting}", { data in
            guard let patch = try? JSONDecoder().decode(MeetingSettingsPatch.self, from: data), (try? patch.validate()) != nil else { return }
            var settings = MeetingSettings()
            patch.apply(to: &settings)
        }),
        ("POST /api/meetings/{meeting}/tokens", { data in
            guard let body = try? JSONDecoder().decode(MeetingTokenRequest.self, from: data) else { return }
            if let name = try? body.validatedHostIssuedName() { require(!name.isEmpty && name.count <= 64, "a display name outside its limits") }
            _ = JoinRequest(meeting: "m", name: body.name ?? "", password: body.password, invite: body.invite, idToken: body.idToken)
        }),
        ("POST /control/negotiate", { data in
            // The route reads the offer (`request()`), then the SFU answers it: the `sdp` target's part.
            guard let message = try? JSONDecoder().decode(NegotiationMessage.self, from: data), (try? message.request()) != nil else { return }
            require(SDPTarget.parse(message.sdp) != nil, "NegotiationMessage accepted SDP the parser refuses")
        }),
        ("POST /control/close-transport", { data in _ = try? JSONDecoder().decode(SFUNodeServer.CloseTransport.self, from: data) }),
        ("POST /control/close-participant", { data in _ = try? JSONDecoder().decode(SFUNodeServer.CloseParticipant.self, from: data) }),
        ("POST /control/blocked-media", { data in
            guard let body = try? JSONDecoder().decode(SFUNodeServer.Blocked.self, from: data) else { return }
            _ = Set(body.blocked)
        }),
        ("POST /control/viewport", { data in _ = try? JSONDecoder().decode(SFUNodeServer.Viewport.self, from: data) }),
        ("POST /control/select-videos", { data in _ = try? JSONDecoder().decode(SFUNodeServer.SelectVideos.self, from: data) }),
    ]

    /// The largest body the meetings API collects.
    static let maximumBody = 64 * 1024

    static func run(_ data: UnsafeRawBufferPointer) {
        guard let selector = data.first, data.count - 1 <= maximumBody else { return }
        bodies[Int(selector) % bodies.count].1(Data(data[1...]))
    }
}
