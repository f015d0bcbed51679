"""Large meetings (issue 13) through real clients: a peer connection whose size does not grow
with the meeting. The web client offers no more receiving sections than the server's slots
(`--video-slots`), pages through the participants beyond them, and asks the SFU for the page's
videos (`select-videos`): a page change moves the slots with no renegotiation. Audio: each
subscriber's speaker slots carry the loudest three, chosen per packet from the audio level, so a
new speaker's first loud packet arrives; silent microphones reach nobody."""
import asyncio
import fractions
import json
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request

import aiohttp
import numpy
import pytest
from av import AudioFrame

from conftest import Server
from test_browsers_chromium import Browser, wait_for
from test_cluster_fanout import next_of_type
from test_whip_whep_aiortc import NoiseVideoTrack, http

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack


async def publish_named(url, meeting, name, width, height=120):
    """A WHIP publisher with a name (to find it among the participants) and a picture width of its
    own (to tell by the decoded size whose video a slot carries)."""
    pc = RTCPeerConnection()
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    pc.addTransceiver(NoiseVideoTrack(width, height), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    status, _, answer = await asyncio.to_thread(http, "POST", f"{url}/whip/{meeting}?name={name}", pc.localDescription.sdp)
    assert status == 201, answer
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc


def video_transceivers(browser):
    return browser.js("return window.parley.peerConnection.getTransceivers()"
                      ".filter((t) => t.receiver.track.kind === 'video' && t.direction !== 'sendonly').length")


@pytest.mark.timeout(240)
def test_the_gallery_pages_through_more_videos_than_slots_without_renegotiating():
    server = Server("gallery", extra_args=["--video-slots", "4"])
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    publishers, viewer = [], Browser("gallery-viewer")
    widths = {f"W{index}": 160 + 32 * index for index in range(6)}
    try:
        for name, width in widths.items():
            publishers.append(asyncio.run_coroutine_threadsafe(publish_named(server.url, "gallery", name, width), loop).result(20))
        viewer.driver.set_window_size(1600, 1000)
        viewer.open(f"{server.url}/m/gallery?name=Viewer")
        assert wait_for(viewer.participant_id, 20)
        ids = wait_for(lambda: (lambda p: p if len(p) == 6 else None)(
            {p["name"]: p["id"] for p in viewer.js("return window.parley.participants") if p["name"] in widths}), 20)
        assert ids, viewer.js("return window.parley.participants")
        width_of = {ids[name]: width for name, width in widths.items()}
        assert viewer.js("return window.parley.pageCount") == 2
        # Page one: four tiles, four videos decoding, each at the width of the one it names.

        def page_decoding():
            shown = set(viewer.js("return window.parley.tiles()"))
            stats = viewer.stats()
            good = {pid for pid in shown if stats.get(pid, {}).get("frameWidth") == width_of.get(pid)}
            return shown if len(shown) == len(good) and shown else None

        first = wait_for(page_decoding, 40)
        assert first and len(first) == 4, (viewer.js("return window.parley.tiles()"), viewer.stats())
        assert video_transceivers(viewer) == 4, "more receiving video sections than slots"
        viewer.js("window.keptConnection = window.parley.peerConnection")
        before = viewer.stats()
        # Page two: the other two, on the same peer connection, their own pictures decoding.
        viewer.js("window.parley.nextPage()")
        second = wait_for(lambda: (lambda s: s if s and s.isdisjoint(first) else None)(page_decoding()), 15)
        assert second and len(second) == 2 and first | second == set(width_of), (first, second)
        after = wait_for(lambda: (lambda s: s if all(s.get(p, {}).get("framesDecoded", 0) > before.get(p, {}).get("framesDecoded", 0) + 20
                                                      for p in second) else None)(viewer.stats()), 15)
        assert after, (before, viewer.stats())
        assert viewer.js("return window.parley.peerConnection === window.keptConnection"), "the page change renegotiated"
        assert video_transceivers(viewer) == 4
        print(f"measured: 6 videos, 4 slots: page 1 {sorted(widths[n] for n, i in ids.items() if i in first)} px wide, "
              f"page 2 {sorted(widths[n] for n, i in ids.items() if i in second)} px wide, same peer connection")
    finally:
        for pc in publishers:
            asyncio.run_coroutine_threadsafe(pc.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        viewer.save_console()
        viewer.quit()
        server.stop()


class ToneTrack(AudioStreamTrack):
    """A sine at its own pitch whose loudness the test sets (`amplitude` 0 is silence): aiortc
    writes the audio level of each packet from the samples."""

    def __init__(self, frequency):
        super().__init__()
        self.frequency, self.amplitude = frequency, 0.0

    async def recv(self):
        rate, samples = 48000, 960
        if hasattr(self, "_timestamp"):
            self._timestamp += samples
            await asyncio.sleep(self._start + self._timestamp / rate - time.time())
        else:
            self._start, self._timestamp = time.time(), 0
        t = (self._timestamp + numpy.arange(samples)) / rate
        pcm = (self.amplitude * 32767 * numpy.sin(2 * numpy.pi * self.frequency * t)).astype(numpy.int16)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.pts, frame.sample_rate, frame.time_base = self._timestamp, rate, fractions.Fraction(1, rate)
        return frame


def rtp_audio_level(data, extension_id):
    """The RFC 6464 level in a plain RTP packet with one-byte header extensions (None without)."""
    if not data[0] & 0x10:
        return None
    offset = 12 + 4 * (data[0] & 0x0F)
    length = int.from_bytes(data[offset + 2:offset + 4], "big") * 4
    position, end = offset + 4, offset + 4 + length
    while position < end:
        if data[position] == 0:
            position += 1
            continue
        element, size = data[position] >> 4, (data[position] & 0x0F) + 1
        if element == extension_id:
            return data[position + 1] & 0x7F
        position += 1 + size
    return None


async def tone_publisher(url, meeting, name, frequency):
    """A WHIP microphone that records each packet it sends: (time, sequence, audio level)."""
    track = ToneTrack(frequency)
    pc = RTCPeerConnection()
    pc.addTransceiver(track, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    level_id = next(int(line.split()[0].split(":")[1]) for line in pc.localDescription.sdp.splitlines()
                    if line.startswith("a=extmap:") and "ssrc-audio-level" in line)
    status, _, answer = await asyncio.to_thread(http, "POST", f"{url}/whip/{meeting}?name={name}", pc.localDescription.sdp)
    assert status == 201, answer
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    sent = []
    transport = pc.getSenders()[0].transport
    original = transport._send_rtp

    async def recording(data):
        # Cut off (`track.cut`): nothing more leaves, so what was recorded is what was sent.
        if 192 <= data[1] <= 223:
            return await original(data)  # RTCP (RFC 5761), on the same path
        if getattr(track, "cut", False):
            return
        sent.append((time.monotonic(), int.from_bytes(data[2:4], "big"), rtp_audio_level(data, level_id)))
        return await original(data)
    transport._send_rtp = recording
    return pc, track, sent


async def slot_player(url, meeting, slots):
    """A WHEP player with `slots` audio sections that records every packet: (SSRC, CSRCs, sequence)."""
    pc = RTCPeerConnection()
    for _ in range(slots):
        pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    status, _, answer = await asyncio.to_thread(http, "POST", f"{url}/whep/{meeting}", pc.localDescription.sdp)
    assert status == 201, answer
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    received = []
    for receiver in pc.getReceivers():
        original = receiver._handle_rtp_packet

        async def recording(packet, arrival_time_ms, original=original):
            received.append((packet.ssrc, tuple(packet.csrc), packet.sequence_number, time.monotonic()))
            return await original(packet, arrival_time_ms)
        receiver._handle_rtp_packet = recording
    return pc, received


@pytest.mark.timeout(180)
def test_a_subscriber_hears_exactly_the_three_loudest_and_the_first_loud_packet_of_a_new_speaker(parley):
    async def scenario():
        publishers = [await tone_publisher(parley.url, "topn", f"T{index}", 500 + 200 * index) for index in range(5)]
        player, received = await slot_player(parley.url, "topn", 3)
        async with aiohttp.ClientSession() as session:
            observer = await session.ws_connect(f"{parley.url.replace('http', 'ws')}/ws?meeting=topn")
            await observer.send_json({"type": "join", "meeting": "topn", "name": "Observer"})
            joined = await next_of_type(observer, "joined")
            source_of = {track["sourceId"]: int(p["name"][1:]) for p in joined["participants"] if p["name"].startswith("T")
                         for track in p["tracks"] if track["kind"] == "audio"}
            assert len(source_of) == 5, joined["participants"]

            def heard(since):
                return [source_of.get(csrc[0]) if csrc else None for _, csrc, _, _ in received[since:]]

            for index in (0, 1, 2):
                publishers[index][1].amplitude = 0.5
            await asyncio.sleep(3)
            mark = len(received)
            await asyncio.sleep(2)
            assert set(heard(mark)) == {0, 1, 2}, f"heard {sorted(set(heard(mark)), key=str)} while 0, 1 and 2 spoke"
            # 0 stops; then 3 starts: its first loud packet takes 0's slot.
            publishers[0][1].amplitude = 0.0
            await asyncio.sleep(0.5)
            started = time.monotonic()
            publishers[3][1].amplitude = 0.5
            await asyncio.sleep(2)
            publishers[3][1].cut = True
            await asyncio.sleep(1)
            sent_by_three = publishers[3][2]
            first_loud = next(index for index, (at, _, level) in enumerate(sent_by_three) if at >= started and level is not None and level <= 40)
            loud_from_first = len(sent_by_three) - first_loud
            heard_three = heard(0).count(3)
            assert 4 not in heard(0), "a silent microphone reached the subscriber"
            assert heard_three == loud_from_first, \
                (f"publisher 3 sent {loud_from_first} packets from its first loud one, the subscriber got {heard_three} of them; "
                 f"levels around it {[level for _, _, level in sent_by_three[max(0, first_loud - 3):first_loud + 6]]}, {parley.health()['sfu']}")
            # Each slot: one SSRC, sequence numbers without a gap across speakers.
            by_slot = {}
            for ssrc, _, sequence, _ in received:
                by_slot.setdefault(ssrc, []).append(sequence)
            assert len(by_slot) == 3, by_slot.keys()
            for ssrc, sequences in by_slot.items():
                gaps = [(a, b) for a, b in zip(sequences, sequences[1:]) if (b - a) % 65536 != 1]
                assert not gaps, f"slot {ssrc}: numbering jumps {gaps[:5]}"
            print(f"measured: 5 microphones, 3 slots: heard only the three loud; publisher 3's first loud packet "
                  f"and all {loud_from_first} from it on arrived; {len(by_slot)} slots with gapless numbering")
            await observer.close()
        await player.close()
        for pc, _, _ in publishers:
            await pc.close()
    asyncio.run(scenario())


@pytest.mark.timeout(90)
def test_the_operator_sees_where_a_meetings_media_runs_and_every_stream():
    with tempfile.NamedTemporaryFile("w", suffix=".token", delete=False) as token_file:
        token_file.write("operator-view-token-0123456789")
    server = Server("operator-view", extra_args=["--admin-token-file", token_file.name])

    def get(path, token):
        request = urllib.request.Request(server.url + path, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    async def scenario():
        publisher = await publish_named(server.url, "watched", "Camera", 320)
        player_pc, received = await slot_player(server.url, "watched", 1)
        await asyncio.sleep(3)
        assert get("/api/admin/meetings/watched", "wrong")[0] == 401
        assert get("/api/admin/meetings/nobody-here", "operator-view-token-0123456789")[0] == 404
        status, view = get("/api/admin/meetings/watched", "operator-view-token-0123456789")
        assert status == 200, view
        assert [p["name"] for p in view["participants"]] == ["Camera"]
        routers = view["media"]["routers"]
        assert len(routers) == 1 and routers[0]["node"] == "local" and routers[0]["port"] in (server.udp_port, server.udp_port + 1)
        transports = {t["role"]: t for t in routers[0]["transports"]}
        producers = {p["kind"]: p for p in transports["whip"]["producers"]}
        assert producers["audio"]["layers"][0]["packetsReceived"] > 50 and producers["video"]["layers"][0]["width"] == 320
        heard = transports["whep"]["consumers"][0]
        assert heard["producerId"] == producers["audio"]["id"] and heard["packetsSent"] > 50, heard
        assert heard["packetsSent"] <= len(received) + 5, "the view counts more than the player got"
        print(f"measured: operator view: {len(routers[0]['transports'])} transports, audio in {producers['audio']['layers'][0]['packetsReceived']} "
              f"packets, out to the player {heard['packetsSent']} (player counted {len(received)})")
        await player_pc.close()
        await publisher.close()
    try:
        asyncio.run(scenario())
    finally:
        server.stop()
        os.unlink(token_file.name)
