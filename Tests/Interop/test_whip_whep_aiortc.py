"""aiortc (a WebRTC stack nobody here wrote) publishes through WHIP and plays through WHEP."""
import asyncio
import fractions
import time
import urllib.error
import urllib.request

import aioice.ice
import numpy
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import AudioStreamTrack
from av import VideoFrame

# aioice leaves 127.0.0.1 out of its host candidates (TESTING.md); inside the test's loopback
# namespace it is the only address there is.
aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]

WIDTH, HEIGHT = 320, 240


class NoiseVideoTrack(VideoStreamTrack):
    """Frames of moving noise, so the encoder produces realistic packets."""

    def __init__(self, width=WIDTH, height=HEIGHT):
        super().__init__()
        self.width, self.height = width, height
        self.rng = numpy.random.default_rng(1)

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        image = self.rng.integers(0, 255, (self.height, self.width, 3), dtype=numpy.uint8)
        frame = VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


def http(method, url, body=None, content_type="application/sdp"):
    request = urllib.request.Request(url, data=body.encode() if body is not None else None, method=method)
    if body is not None:
        request.add_header("Content-Type", content_type)
    request.add_header("Origin", "http://example.test")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def config():
    from aiortc import RTCBundlePolicy
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


async def publish(url, meeting, width=WIDTH, height=HEIGHT):
    pc = RTCPeerConnection(config())
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    pc.addTransceiver(NoiseVideoTrack(width, height), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    status, headers, answer = await asyncio.to_thread(http, "POST", f"{url}/whip/{meeting}", pc.localDescription.sdp)
    assert status == 201, answer
    assert headers.get("Location", "").startswith(f"/whip/{meeting}/")
    assert headers.get("Access-Control-Allow-Origin") == "*"
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc, headers["Location"]


async def play(url, meeting):
    pc = RTCPeerConnection(config())
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    frames = asyncio.Queue()
    audio_frames = []

    @pc.on("track")
    def on_track(track):
        async def pump():
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                if track.kind == "video":
                    await frames.put((frame.width, frame.height, time.monotonic()))
                else:
                    audio_frames.append(frame)
        asyncio.ensure_future(pump())

    await pc.setLocalDescription(await pc.createOffer())
    status, headers, answer = await asyncio.to_thread(http, "POST", f"{url}/whep/{meeting}", pc.localDescription.sdp)
    assert status == 201, answer
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc, headers["Location"], frames, audio_frames


async def first_frame_of_size(frames, width, height, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            w, h, _ = await asyncio.wait_for(frames.get(), timeout=deadline - time.monotonic())
        except asyncio.TimeoutError:
            break
        if (w, h) == (width, height):
            return True
    return False


@pytest.mark.timeout(90)
def test_whep_player_decodes_frames_of_the_size_the_whip_publisher_sends(parley):
    async def scenario():
        publisher, location = await publish(parley.url, "interop")
        player, player_location, frames, audio = await play(parley.url, "interop")
        assert await first_frame_of_size(frames, WIDTH, HEIGHT, 20), "no decoded frame of the published size"
        await asyncio.sleep(1)
        assert len(audio) > 10, "audio frames should flow too"
        health = parley.health()
        assert health["sfu"]["counters"]["rtpForwarded"] > 50
        # Ending the WHIP session removes the publisher.
        status, _, _ = await asyncio.to_thread(http, "DELETE", parley.url + location)
        assert status == 200
        status, _, _ = await asyncio.to_thread(http, "DELETE", parley.url + location)
        assert status == 404
        status, _, _ = await asyncio.to_thread(http, "DELETE", parley.url + player_location)
        assert status == 200
        await publisher.close()
        await player.close()
    asyncio.run(scenario())


@pytest.mark.timeout(120)
def test_whep_player_switches_to_the_next_publisher_when_the_first_leaves(parley):
    async def scenario():
        first, first_location = await publish(parley.url, "switch", 320, 240)
        player, _, frames, _ = await play(parley.url, "switch")
        assert await first_frame_of_size(frames, 320, 240, 20)
        second, _ = await publish(parley.url, "switch", 160, 120)
        # The most recent publisher is played: frames change size without a new negotiation.
        assert await first_frame_of_size(frames, 160, 120, 20), "player did not switch to the newest publisher"
        await second.close()
        await asyncio.to_thread(http, "DELETE", parley.url + first_location)  # first leaves too
        third, _ = await publish(parley.url, "switch", 240, 160)
        assert await first_frame_of_size(frames, 240, 160, 20), "player did not follow the next publisher"
        for pc in (first, player, third):
            await pc.close()
    asyncio.run(scenario())


def test_whip_refuses_bad_offers_with_a_reason(parley):
    status, _, body = http("POST", f"{parley.url}/whip/bad", "this is not sdp")
    assert status == 400 and "SDP" in body
    status, _, body = http("POST", f"{parley.url}/whip/bad", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
    assert status == 400 and "no media" in body
    status, _, body = http("POST", f"{parley.url}/whip/bad", "v=0", content_type="text/plain")
    assert status == 415
    status, _, body = http("POST", f"{parley.url}/whip/bad%20id", "v=0")
    assert status == 400
    status, headers, _ = http("OPTIONS", f"{parley.url}/whep/any")
    assert status in (200, 204) and "POST" in headers.get("Access-Control-Allow-Methods", "")
    assert parley.health()["status"] == "ok"


def prefer(pc, mime):
    from aiortc import RTCRtpSender
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            codecs = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in (mime, "video/rtx")]
            transceiver.setCodecPreferences(codecs)


@pytest.mark.timeout(90)
def test_h264_published_through_whip_is_decoded_by_a_whep_player(parley):
    async def scenario():
        pc = RTCPeerConnection(config())
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        pc.addTransceiver(NoiseVideoTrack(), direction="sendonly")
        prefer(pc, "video/H264")
        await pc.setLocalDescription(await pc.createOffer())
        assert "VP8" not in pc.localDescription.sdp
        status, _, answer = await asyncio.to_thread(http, "POST", f"{parley.url}/whip/h264", pc.localDescription.sdp)
        assert status == 201, answer
        assert "H264/90000" in answer
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        player, _, frames, _ = await play(parley.url, "h264")
        assert await first_frame_of_size(frames, WIDTH, HEIGHT, 20), "no decoded H.264 frame"
        await pc.close()
        await player.close()
    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_a_whip_publisher_appears_in_the_meeting_like_any_participant(parley):
    import json
    import aiohttp

    async def scenario():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(parley.url.replace("http", "ws") + "/ws") as ws:
                await ws.send_str('{"type":"join","meeting":"visible","name":"Watcher"}')
                assert json.loads((await ws.receive(timeout=5)).data)["type"] == "joined"
                pc = RTCPeerConnection(config())
                pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
                pc.addTransceiver(NoiseVideoTrack(), direction="sendonly")
                await pc.setLocalDescription(await pc.createOffer())
                status, _, answer = await asyncio.to_thread(http, "POST", f"{parley.url}/whip/visible?name=OBS", pc.localDescription.sdp)
                assert status == 201
                await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
                seen = {}
                while not seen.get("tracks"):
                    message = json.loads((await ws.receive(timeout=5)).data)
                    if message["type"] in ("participant-joined", "participant-updated"):
                        seen = message["participant"]
                assert seen["name"] == "OBS" and seen["client"] == "whip"
                assert sorted(t["kind"] for t in seen["tracks"]) == ["audio", "video"]
                await pc.close()
    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_a_publisher_that_hangs_up_without_delete_leaves_the_meeting(parley):
    async def scenario():
        publisher, _ = await publish(parley.url, "hangup")
        player, _, frames, _ = await play(parley.url, "hangup")
        assert await first_frame_of_size(frames, WIDTH, HEIGHT, 20)
        assert parley.health()["whipWhepSessions"] == 2 and parley.health()["participants"] == 1
        await publisher.close()  # DTLS close_notify, no DELETE
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and parley.health()["participants"] != 0:
            await asyncio.sleep(0.2)
        health = parley.health()
        assert health["participants"] == 0, "the WHIP publisher is still listed"
        assert health["whipWhepSessions"] == 1, "its session id was not forgotten"
        await player.close()
    asyncio.run(scenario())
