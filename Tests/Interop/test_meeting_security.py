"""Meeting security (issue 4) attacked through the real server: the meetings API, signaling, WHIP and
WHEP. Every test asserts what the server answered."""
import asyncio
import json
import os
import re
import tempfile
import urllib.parse

import aiohttp
import pytest

from conftest import Server
from oidc_issuer import Issuer
from test_whip_whep_aiortc import NoiseVideoTrack, config

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture
def server(parley):
    return parley


class Client:
    """One HTTP session and helpers for the API and signaling."""

    def __init__(self, server, session):
        self.server, self.session = server, session

    async def api(self, method, path, body=None, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(method, self.server.url + path, json=body, headers=headers) as response:
            text = await response.text()
            try:
                payload = json.loads(text)
            except ValueError:
                payload = {"text": text}
            return response.status, dict(response.headers), payload

    async def create(self, **settings):
        status, _, body = await self.api("POST", "/api/meetings", settings)
        assert status == 201, body
        return body

    async def signaling(self):
        return Signaling(await self.session.ws_connect(self.server.url.replace("http", "ws") + "/ws"))


class Signaling:
    def __init__(self, ws):
        self.ws = ws
        self.seen = []

    async def send(self, **message):
        await self.ws.send_str(json.dumps(message))

    async def expect(self, *types, timeout=5):
        """The next message of one of these types (others are kept in `seen`)."""
        while True:
            message = await self.ws.receive(timeout=timeout)
            if message.type != aiohttp.WSMsgType.TEXT:
                return {"type": "closed"}
            body = json.loads(message.data)
            self.seen.append(body)
            if body["type"] in types:
                return body

    async def join(self, meeting, name="Ada", **credentials):
        await self.send(type="join", meeting=meeting, name=name, **credentials)
        return await self.expect("joined", "waiting", "error")


def with_client(server, scenario):
    async def main():
        async with aiohttp.ClientSession() as session:
            return await scenario(Client(server, session))
    return run(main())


async def post_offer(server, path, pc, token):
    """POSTs the peer connection's offer to WHIP or WHEP; returns (status, headers, body)."""
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}{path}", data=pc.localDescription.sdp, headers=headers) as response:
            return response.status, dict(response.headers), await response.text()


async def whip(server, meeting, token=None, name="WHIP publisher"):
    """An aiortc publisher (noise video + audio) through WHIP; returns (status, headers, pc or body)."""
    pc = RTCPeerConnection(config())
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    pc.addTransceiver(NoiseVideoTrack(), direction="sendonly")
    status, headers, body = await post_offer(server, f"/whip/{meeting}?name={name}", pc, token)
    if status != 201:
        await pc.close()
        return status, headers, body
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    return 201, {}, pc


async def whep_status(server, meeting, token=None):
    pc = RTCPeerConnection(config())
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    status, _, body = await post_offer(server, f"/whep/{meeting}", pc, token)
    await pc.close()
    return status, body


def receiving(*kinds):
    """An aiortc peer connection that receives `kinds` and takes every frame it gets."""
    pc = RTCPeerConnection(config())
    for kind in kinds:
        pc.addTransceiver(kind, direction="recvonly")

    @pc.on("track")
    def on_track(track):
        async def drain():
            while True:
                try:
                    await track.recv()
                except Exception:
                    return
        asyncio.ensure_future(drain())
    return pc


async def whep_player(server, meeting, token=None):
    """An aiortc WHEP player that takes every frame it gets; returns (status, pc)."""
    pc = receiving("audio", "video")
    status, _, body = await post_offer(server, f"/whep/{meeting}", pc, token)
    if status != 201:
        await pc.close()
        return status, None
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    return 201, pc


async def packets_received(pc):
    """RTP packets the peer connection has received so far, by kind."""
    counts = {"audio": 0, "video": 0}
    for stat in (await pc.getStats()).values():
        if stat.type == "inbound-rtp":
            counts[stat.kind] += stat.packetsReceived
    return counts


async def received_during(pc, seconds=1.5):
    """Packets received by kind in the next `seconds`: what arrives now, not the total so far."""
    before = await packets_received(pc)
    await asyncio.sleep(seconds)
    after = await packets_received(pc)
    return {kind: after[kind] - before[kind] for kind in before}


async def window_where(pc, enough, windows):
    """Half-second windows of received packets until one is `enough` (at most `windows`): the last one."""
    counts = None
    for _ in range(windows):
        counts = await received_during(pc, 0.5)
        if enough(counts):
            break
    return counts


async def host_and_whip_publisher(client, name):
    """A new meeting, its host on signaling and an aiortc WHIP publisher called `name` with a token
    the API issued; returns (meeting, host, issued token body, publisher pc, publisher's participant id)."""
    created = await client.create()
    meeting = created["id"]
    host = await client.signaling()
    await host.join(meeting, name="Host", token=created["hostToken"])
    status, _, issued = await client.api("POST", f"/api/meetings/{meeting}/tokens", {"name": name})
    status, _, publisher = await whip(client.server, meeting, token=issued["token"], name=name)
    assert status == 201
    target = (await host.expect("participant-joined"))["participant"]["id"]
    return meeting, host, issued, publisher, target


@pytest.mark.timeout(60)
def test_passwords_and_invite_links_on_every_way_in(server):
    async def scenario(client):
        created = await client.create(title="Board", password="correct horse")
        meeting, invite_url = created["id"], created["inviteURL"]
        assert created["hasPassword"] and created["hostToken"].count(".") == 2
        assert "correct" not in invite_url and "horse" not in invite_url and "invite=" in invite_url
        status, _, public = await client.api("GET", f"/api/meetings/{meeting}")
        assert status == 200 and public["hasPassword"] and "password" not in json.dumps(public).replace("hasPassword", "")
        # Signaling: no password, a wrong one, the right one, the invite link, a tampered link.
        ws = await client.signaling()
        assert (await ws.join(meeting))["code"] == "password-required"
        assert (await ws.join(meeting, password="wrong"))["code"] == "wrong-password"
        joined = await ws.join(meeting, password="correct horse")
        assert joined["type"] == "joined" and joined["role"] == "participant" and joined["token"]
        invite = urllib.parse.parse_qs(urllib.parse.urlparse(invite_url).query)["invite"][0]
        other = await client.signaling()
        assert (await other.join(meeting, name="Grace", invite=invite))["type"] == "joined"
        tampered = invite[:-3] + ("AAA" if not invite.endswith("AAA") else "BBB")
        third = await client.signaling()
        refused = await third.join(meeting, name="Eve", invite=tampered)
        assert refused["code"] == "invalid-invite", refused
        # WHIP and WHEP: nothing, a forged token, a token of another meeting, then a real one.
        status, headers, body = await whip(client.server, meeting)
        assert status == 401 and headers.get("WWW-Authenticate") == "Bearer" and json.loads(body)["error"] == "password-required"
        forged = joined["token"][:-4] + ("AAAA" if not joined["token"].endswith("AAAA") else "BBBB")
        assert (await whip(client.server, meeting, token=forged))[0] == 401
        elsewhere = (await client.create())["hostToken"]
        status, body = await whep_status(client.server, meeting, token=elsewhere)
        assert status == 401 and json.loads(body)["error"] == "wrong-meeting"
        status, _, issued = await client.api("POST", f"/api/meetings/{meeting}/tokens", {"name": "Cam", "password": "correct horse"})
        assert status == 201 and issued["role"] == "participant"
        status, _, pc = await whip(client.server, meeting, token=issued["token"], name="Cam")
        assert status == 201
        await pc.close()
        assert (await whep_status(client.server, meeting, token=issued["token"]))[0] == 201
        status, _, body = await client.api("POST", f"/api/meetings/{meeting}/tokens", {"name": "Eve", "password": "nope"})
        assert status == 401 and body["error"] == "wrong-password"
    with_client(server, scenario)


@pytest.mark.timeout(60)
def test_brute_force_is_limited_per_address_with_a_clear_retry_time(server):
    async def scenario(client):
        meeting = (await client.create(password="a long passphrase"))["id"]
        for _ in range(5):
            status, _, body = await client.api("POST", f"/api/meetings/{meeting}/tokens", {"name": "Eve", "password": "guess"})
            assert status == 401
        status, headers, body = await client.api("POST", f"/api/meetings/{meeting}/tokens", {"name": "Eve", "password": "a long passphrase"})
        assert status == 429 and body["error"] == "too-many-attempts"
        assert re.fullmatch(r"too many attempts, retry in \d+ s", body["message"]) and int(headers["Retry-After"]) > 0
        ws = await client.signaling()
        refused = await ws.join(meeting, password="a long passphrase")
        assert refused["code"] == "too-many-attempts"
    with_client(server, scenario)


@pytest.mark.timeout(60)
def test_a_locked_meeting_admits_nobody_new_by_any_path_and_keeps_who_is_in(server):
    async def scenario(client):
        created = await client.create()
        meeting, host_token = created["id"], created["hostToken"]
        host = await client.signaling()
        assert (await host.join(meeting, name="Host", token=host_token))["role"] == "host"
        ada = await client.signaling()
        ada_joined = await ada.join(meeting, name="Ada")
        # Ada is no host: her controls are refused, at signaling and at the API.
        await ada.send(type="host", action="lock")
        assert (await ada.expect("error"))["code"] == "forbidden"
        status, _, _ = await client.api("PATCH", f"/api/meetings/{meeting}", {"locked": True}, token=ada_joined["token"])
        assert status == 403
        assert (await client.api("PATCH", f"/api/meetings/{meeting}", {"locked": True}))[0] == 401
        await host.send(type="host", action="lock")
        assert (await ada.expect("meeting-state"))["state"]["locked"] is True
        eve = await client.signaling()
        assert (await eve.join(meeting, name="Eve"))["code"] == "locked"
        status, _, body = await client.api("POST", f"/api/meetings/{meeting}/tokens", {"name": "Eve"})
        assert status == 403 and body["error"] == "locked"
        assert (await whip(client.server, meeting))[0] == 403
        assert (await whep_status(client.server, meeting))[0] == 403
        status, _, view = await client.api("GET", f"/api/meetings/{meeting}", token=host_token)
        assert status == 200 and view["meeting"]["locked"] and {p["name"] for p in view["participants"]} == {"Host", "Ada"}
        await host.send(type="host", action="unlock")
        assert (await (await client.signaling()).join(meeting, name="Eve"))["type"] == "joined"
    with_client(server, scenario)


@pytest.mark.timeout(60)
def test_waiting_room_admit_and_deny(server):
    async def scenario(client):
        created = await client.create(waitingRoom=True)
        meeting = created["id"]
        host = await client.signaling()
        await host.join(meeting, name="Host", token=created["hostToken"])
        ada = await client.signaling()
        waiting = await ada.join(meeting, name="Ada")
        assert waiting["type"] == "waiting"
        # Nothing but leaving works while waiting: no chat, and no transport from the SFU.
        await ada.send(type="chat", text="let me in")
        assert (await ada.expect("error"))["code"] == "forbidden"
        transports = client.server.health()["sfu"]["transports"]
        await ada.send(type="offer", sdp="v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", sources={})
        assert (await ada.expect("error", "answer"))["code"] == "forbidden"
        assert client.server.health()["sfu"]["transports"] == transports
        listed = await host.expect("waiting-room")
        while not listed["waiting"]:
            listed = await host.expect("waiting-room")
        assert [w["name"] for w in listed["waiting"]] == ["Ada"]
        await host.send(type="host", action="admit", participantId=waiting["participantId"])
        assert (await ada.expect("joined"))["participantId"] == waiting["participantId"]
        eve = await client.signaling()
        eve_waiting = await eve.join(meeting, name="Eve")
        await host.send(type="host", action="deny", participantId=eve_waiting["participantId"])
        assert (await eve.expect("error"))["code"] == "denied"
        # WHIP cannot wait: without a host-issued token it is refused.
        status, _, body = await whip(client.server, meeting)
        assert status == 403 and "waiting room" in json.loads(body)["message"]
        status, _, issued = await client.api("POST", f"/api/meetings/{meeting}/tokens", {"name": "Cam"}, token=created["hostToken"])
        status, _, pc = await whip(client.server, meeting, token=issued["token"], name="Cam")
        assert status == 201
        await pc.close()
    with_client(server, scenario)


@pytest.mark.timeout(90)
def test_host_mute_and_removal_are_enforced_in_the_sfu(server):
    async def scenario(client):
        meeting, host, issued, publisher, target = await host_and_whip_publisher(client, "Loud")
        for _ in range(100):
            if client.server.health()["sfu"]["counters"]["rtpReceived"] > 100:
                break
            await asyncio.sleep(0.1)
        # The publisher's client keeps sending audio; once muted by the host the SFU drops it.
        await host.send(type="host", action="mute-audio", participantId=target)
        updated = await host.expect("participant-updated")
        while not (updated["participant"]["id"] == target and updated["participant"]["audioMuted"]):
            updated = await host.expect("participant-updated")
        before = client.server.health()["sfu"]["counters"]["droppedBlocked"]
        await asyncio.sleep(1.5)
        dropped = client.server.health()["sfu"]["counters"]["droppedBlocked"] - before
        assert dropped >= 40, dropped  # ~50 audio packets a second, none forwarded
        await host.send(type="host", action="allow-audio", participantId=target)
        await asyncio.sleep(0.5)
        settled = client.server.health()["sfu"]["counters"]["droppedBlocked"]
        await asyncio.sleep(1.0)
        assert client.server.health()["sfu"]["counters"]["droppedBlocked"] == settled
        # Removal closes the publisher's transport at once, and its credential no longer works.
        transports = client.server.health()["sfu"]["transports"]
        await host.send(type="host", action="remove", participantId=target)
        assert (await host.expect("participant-left"))["participantId"] == target
        for _ in range(30):
            if client.server.health()["sfu"]["transports"] < transports:
                break
            await asyncio.sleep(0.1)
        assert client.server.health()["sfu"]["transports"] < transports
        status, _, body = await whip(client.server, meeting, token=issued["token"], name="Loud")
        assert status == 403 and json.loads(body)["error"] == "removed"
        ws = await client.signaling()
        assert (await ws.join(meeting, name="Loud", token=issued["token"]))["code"] == "removed"
        await publisher.close()
    with_client(server, scenario)


@pytest.mark.timeout(120)
def test_a_subscriber_gets_none_of_what_a_host_stopped_and_all_of_it_once_allowed(server):
    """The publisher (aiortc through WHIP) ignores the host and keeps sending both tracks; a WHEP
    player in the meeting is the subscriber whose received packets are counted in each window."""
    async def scenario(client):
        meeting, host, _, publisher, target = await host_and_whip_publisher(client, "Stubborn")
        status, _, watcher = await client.api("POST", f"/api/meetings/{meeting}/tokens", {"name": "Watcher"})
        status, player = await whep_player(client.server, meeting, token=watcher["token"])
        assert status == 201
        try:
            flowing = await window_where(player, lambda c: c["audio"] > 10 and c["video"] > 5, 40)
            assert flowing["audio"] > 10 and flowing["video"] > 5, f"the player never received the publisher: {flowing}"

            async def blocked(stop, allow, kind, targeted=True):
                extra = {"participantId": target} if targeted else {}
                await host.send(type="host", action=stop, **extra)
                await asyncio.sleep(0.5)  # what was already on its way
                during = await received_during(player)
                assert during[kind] == 0, f"after {stop} the subscriber still received {during[kind]} {kind} packets"
                other = "video" if kind == "audio" else "audio"
                assert during[other] > 5, f"{stop} stopped {other} too: {during}"
                if allow:
                    await host.send(type="host", action=allow, participantId=target)
                else:
                    # Everyone's mute is lifted one by one; the participant lifts its own (allowed by default).
                    await host.send(type="host", action="allow-audio" if kind == "audio" else "allow-video", participantId=target)
                again = await window_where(player, lambda c: c[kind] > 5, 20)
                assert again[kind] > 5, f"{kind} did not flow again after {allow or stop} was lifted: {again}"
                print(f"measured: {stop}: 0 {kind} packets reached the subscriber in 1.5 s ({during[other]} {other}); "
                      f"after allowing, {again[kind]} in 0.5 s")

            await blocked("mute-audio", "allow-audio", "audio")
            await blocked("stop-video", "allow-video", "video")
            await blocked("mute-all-audio", None, "audio", targeted=False)
            await blocked("stop-all-video", None, "video", targeted=False)
        finally:
            await player.close()
            await publisher.close()
    with_client(server, scenario)


@pytest.mark.timeout(90)
def test_hosts_only_screen_share_stops_a_participants_screen_at_the_sfu_until_allowed(server):
    """A participant (aiortc over signaling) shares a "screen" and ignores the meeting's rule; the
    host's own aiortc peer connection is the subscriber whose received packets are counted."""
    async def scenario(client):
        created = await client.create()
        meeting = created["id"]
        host = await client.signaling()
        await host.join(meeting, name="Host", token=created["hostToken"])
        watching = receiving("video")
        await watching.setLocalDescription(await watching.createOffer())
        await host.send(type="offer", sdp=watching.localDescription.sdp, sources={}, newConnection=True)
        await watching.setRemoteDescription(RTCSessionDescription(sdp=(await host.expect("answer"))["sdp"], type="answer"))

        status, _, issued = await client.api("POST", f"/api/meetings/{meeting}/tokens", {"name": "Sharer"})
        sharer = await client.signaling()
        assert (await sharer.join(meeting, name="Sharer", token=issued["token"]))["type"] == "joined"
        sharing = RTCPeerConnection(config())
        screen = sharing.addTransceiver(NoiseVideoTrack(), direction="sendonly")
        await sharing.setLocalDescription(await sharing.createOffer())
        await sharer.send(type="offer", sdp=sharing.localDescription.sdp, sources={screen.mid: "screen"}, newConnection=True)
        await sharing.setRemoteDescription(RTCSessionDescription(sdp=(await sharer.expect("answer"))["sdp"], type="answer"))
        try:
            flowing = await window_where(watching, lambda c: c["video"] > 5, 40)
            assert flowing["video"] > 5, f"the host never received the shared screen: {flowing}"
            await host.send(type="host", action="hosts-only-screen-share")
            await asyncio.sleep(0.5)
            during = await received_during(watching)
            assert during["video"] == 0, f"with hosts-only screen share the host still received {during['video']} screen packets"
            await host.send(type="host", action="everyone-screen-share")
            again = await window_where(watching, lambda c: c["video"] > 5, 20)
            assert again["video"] > 5, f"the screen did not flow again once everyone may share: {again}"
            print(f"measured: hosts-only screen share: 0 screen packets reached the host in 1.5 s; "
                  f"after everyone-screen-share, {again['video']} in 0.5 s")
        finally:
            await sharing.close()
            await watching.close()
    with_client(server, scenario)


@pytest.mark.timeout(60)
def test_removed_web_participant_is_told_and_disconnected_and_reports_reach_hosts():
    admin_file = tempfile.NamedTemporaryFile("w", delete=False)
    admin_file.write("operator-secret-token-123")
    admin_file.close()
    instance = Server("reports", extra_args=["--admin-token-file", admin_file.name])
    try:
        async def scenario(client):
            created = await client.create()
            meeting, host_token = created["id"], created["hostToken"]
            host = await client.signaling()
            await host.join(meeting, name="Host", token=host_token)
            ada, eve = await client.signaling(), await client.signaling()
            await ada.join(meeting, name="Ada")
            eve_joined = await eve.join(meeting, name="Eve")
            await ada.send(type="report", participantId=eve_joined["participantId"], reason="shouting")
            reported = await host.expect("reported")
            assert reported["report"]["reportedName"] == "Eve" and reported["report"]["reason"] == "shouting"
            status, _, reports = await client.api("GET", f"/api/meetings/{meeting}/reports", token=host_token)
            assert status == 200 and [r["reason"] for r in reports] == ["shouting"]
            assert (await client.api("GET", f"/api/meetings/{meeting}/reports", token=eve_joined["token"]))[0] == 403
            assert (await client.api("GET", "/api/admin/reports", token="wrong"))[0] == 401
            status, _, everything = await client.api("GET", "/api/admin/reports", token="operator-secret-token-123")
            assert status == 200 and everything[0]["meeting"] == meeting
            await host.send(type="host", action="remove", participantId=eve_joined["participantId"])
            moderated = await eve.expect("moderated")
            assert moderated["action"] == "removed"
            assert (await eve.expect("meeting-ended", "closed"))["type"] in ("meeting-ended", "closed")
            again = await client.signaling()
            assert (await again.join(meeting, name="Eve", token=eve_joined["token"]))["code"] == "removed"
            await host.send(type="host", action="allow-rejoin", participantId=eve_joined["participantId"])
            await asyncio.sleep(0.2)
            assert (await (await client.signaling()).join(meeting, name="Eve", token=eve_joined["token"]))["type"] == "joined"
        with_client(instance, scenario)
    finally:
        instance.stop()
        os.unlink(admin_file.name)


@pytest.mark.timeout(60)
def test_unknown_meetings_are_404_when_ad_hoc_meetings_are_off():
    instance = Server("no-adhoc", extra_args=["--no-adhoc-meetings"])
    try:
        async def scenario(client):
            async with client.session.get(instance.url + "/m/nowhere") as response:
                assert response.status == 404 and "no meeting nowhere" in (await response.text())
            ws = await client.signaling()
            assert (await ws.join("nowhere"))["code"] == "meeting-not-found"
            assert (await whip(instance, "nowhere"))[0] == 404
            created = await client.create()
            async with client.session.get(instance.url + f"/m/{created['id']}") as response:
                assert response.status == 200
        with_client(instance, scenario)
    finally:
        instance.stop()


@pytest.mark.timeout(60)
def test_sign_in_with_openid_connect_and_email_domains():
    issuer = Issuer()
    instance = Server("oidc", extra_args=["--oidc-issuer", f"name=Test,issuer={issuer.url},client-id={Issuer.CLIENT_ID}"])
    try:
        async def scenario(client):
            meeting = (await client.create(requireSignIn=True, allowedDomains=["example.org"]))["id"]

            async def nonce():
                status, _, body = await client.api("POST", "/api/auth/nonce")
                assert status == 201
                return body["nonce"]

            async def join(**credentials):
                return await (await client.signaling()).join(meeting, name="Someone", **credentials)

            assert (await join())["code"] == "sign-in-required"
            status, _, providers = await client.api("GET", "/api/auth/providers")
            assert providers[0]["authorizationEndpoint"] == issuer.url + "/authorize"
            good = issuer.id_token(await nonce())
            joined = await join(idToken=good)
            assert joined["type"] == "joined", joined
            # The same ID token again: its nonce was used.
            assert (await join(idToken=good))["code"] == "sign-in-failed"
            # A nonce the server never issued, an expired token, another audience, another key.
            assert (await join(idToken=issuer.id_token("made-up-nonce")))["code"] == "sign-in-failed"
            assert (await join(idToken=issuer.id_token(await nonce(), expires_in=-60)))["code"] == "sign-in-failed"
            assert (await join(idToken=issuer.id_token(await nonce(), audience="someone-else")))["code"] == "sign-in-failed"
            from cryptography.hazmat.primitives.asymmetric import rsa
            stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            assert (await join(idToken=issuer.id_token(await nonce(), key=stranger)))["code"] == "sign-in-failed"
            assert (await join(idToken=issuer.id_token(await nonce(), issuer="http://127.0.0.1:9/other")))["code"] == "sign-in-failed"
            # Signed in, but from the wrong domain, or with an email the provider did not verify.
            assert (await join(idToken=issuer.id_token(await nonce(), sub="u2", email="eve@evil.example")))["code"] == "domain-not-allowed"
            unverified = issuer.id_token(await nonce(), sub="u3", email="eve@example.org", email_verified=False)
            assert (await join(idToken=unverified))["code"] == "domain-not-allowed"
        with_client(instance, scenario)
    finally:
        instance.stop()
        issuer.stop()


@pytest.mark.timeout(60)
def test_attempt_limits_count_the_real_client_behind_a_trusted_proxy_only():
    async def scenario(client):
        meeting = (await client.create(password="behind the proxy"))["id"]

        async def attempt(forwarded, password="guess"):
            async with client.session.post(f"{client.server.url}/api/meetings/{meeting}/tokens", json={"name": "Eve", "password": password},
                                           headers={"X-Forwarded-For": forwarded}) as response:
                return response.status
        for _ in range(5):
            assert await attempt("203.0.113.1") == 401
        assert await attempt("203.0.113.1", "behind the proxy") == 429
        # Another client behind the same proxy is not held back by the first one.
        assert await attempt("203.0.113.2", "behind the proxy") == 201
    trusted = Server("trusted-proxy", extra_args=["--trusted-proxy", "127.0.0.1"])
    try:
        with_client(trusted, scenario)
    finally:
        trusted.stop()
    # Without --trusted-proxy anyone's X-Forwarded-For is ignored: the failures all count for 127.0.0.1.
    plain = Server("untrusted-proxy")
    try:
        async def spoofing(client):
            meeting = (await client.create(password="no spoofing"))["id"]
            for index in range(5):
                async with client.session.post(f"{client.server.url}/api/meetings/{meeting}/tokens", json={"name": "Eve", "password": "x"},
                                               headers={"X-Forwarded-For": f"198.51.100.{index}"}) as response:
                    assert response.status == 401
            async with client.session.post(f"{client.server.url}/api/meetings/{meeting}/tokens", json={"name": "Eve", "password": "no spoofing"},
                                           headers={"X-Forwarded-For": "198.51.100.99"}) as response:
                assert response.status == 429
        with_client(plain, spoofing)
    finally:
        plain.stop()
