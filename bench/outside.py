"""`make bench`, outside clients: one aiortc publisher (audio and VP8 video) and N aiortc players,
the same for both SFUs: Parley through WHIP and WHEP, Janus through its VideoRoom (WebSocket API).
What each SFU costs per packet the players received: the SFU process's CPU (from /proc) over a
steady window, divided by the packets the players' `getStats()` counted in it. aiortc is a
WebRTC stack neither SFU's authors wrote, so this is not Parley measured by its own load generator.

Writes its section ("## Outside clients") of bench/RESULTS.md. Timings here decide nothing.
Runs inside the loopback-only namespace `make bench` makes.
"""
import asyncio
import datetime
import json
import os
import random
import sys
import time
import urllib.request

import aioice.ice
import aiohttp
import numpy
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import AudioStreamTrack
from av import VideoFrame

sys.path.insert(0, os.path.dirname(__file__))
import run  # noqa: E402
from janus import MEDIA_HOST  # noqa: E402

SECTION = "## Outside clients"
QUICK = os.environ.get("BENCH_QUICK") == "1"
FANOUTS = [int(n) for n in os.environ["OUTSIDE_FANOUTS"].split(",")] if os.environ.get("OUTSIDE_FANOUTS") \
    else [5, 10] if QUICK else [5, 10, 20, 40]
WINDOW = 5 if QUICK else 10


class NoiseVideo(VideoStreamTrack):
    """Small frames of noise: real VP8 packets at little cost to the (Python) encoder."""

    def __init__(self):
        super().__init__()
        self.rng = numpy.random.default_rng(1)

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame.from_ndarray(self.rng.integers(0, 255, (120, 160, 3), dtype=numpy.uint8), format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


def peer():
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

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


async def received(players):
    """Packets the players received so far (audio and video, from their stats)."""
    total = 0
    for pc in players:
        for stat in (await pc.getStats()).values():
            if stat.type == "inbound-rtp":
                total += stat.packetsReceived
    return total


async def video_everywhere(players):
    for pc in players:
        stats = [s for s in (await pc.getStats()).values() if s.type == "inbound-rtp" and s.kind == "video"]
        if not stats or stats[0].packetsReceived == 0:
            return False
    return True


def post_sdp(url, sdp):
    request = urllib.request.Request(url, data=sdp.encode(), method="POST", headers={"Content-Type": "application/sdp"})
    with urllib.request.urlopen(request, timeout=15) as response:
        return response.read().decode()


async def parley_session(sfu, n):
    """WHIP publisher, WHEP players."""
    meeting = f"outside-{n}"
    publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    publisher.addTransceiver(AudioStreamTrack(), direction="sendonly")
    publisher.addTransceiver(NoiseVideo(), direction="sendonly")
    await publisher.setLocalDescription(await publisher.createOffer())
    answer = await asyncio.to_thread(post_sdp, f"{sfu.url}/whip/{meeting}", publisher.localDescription.sdp)
    await publisher.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    players = []
    for _ in range(n):
        pc = peer()
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        answer = await asyncio.to_thread(post_sdp, f"{sfu.url}/whep/{meeting}", pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        players.append(pc)
    return publisher, players, None


class JanusAPI:
    """Janus's JSON API over its WebSocket: a transaction per request, the plugin's event as its reply."""

    def __init__(self, socket):
        self.socket, self.waiting, self.session = socket, {}, None
        self.reader = asyncio.ensure_future(self.read())

    async def read(self):
        async for message in self.socket:
            reply = json.loads(message.data)
            if reply.get("janus") == "ack":
                continue
            future = self.waiting.pop(reply.get("transaction"), None)
            if future and not future.done():
                future.set_result(reply)

    async def request(self, body, handle=None):
        transaction = f"{random.getrandbits(64):x}"
        body = {**body, "transaction": transaction, **({"session_id": self.session} if self.session else {}),
                **({"handle_id": handle} if handle else {})}
        self.waiting[transaction] = asyncio.get_running_loop().create_future()
        await self.socket.send_str(json.dumps(body))
        reply = await asyncio.wait_for(self.waiting[transaction], 15)
        if reply.get("janus") == "error" or "error" in reply.get("plugindata", {}).get("data", {}):
            raise RuntimeError(f"Janus refused {body.get('body', body.get('janus'))}: {reply}")
        return reply

    async def attach(self):
        return (await self.request({"janus": "attach", "plugin": "janus.plugin.videoroom"}))["data"]["id"]

    async def message(self, handle, body, jsep=None):
        return await self.request({"janus": "message", "body": body, **({"jsep": jsep} if jsep else {})}, handle)


async def janus_session(sfu, n):
    http = aiohttp.ClientSession()
    socket = await http.ws_connect(sfu.janus.url, protocols=["janus-protocol"])
    api = JanusAPI(socket)
    api.session = (await api.request({"janus": "create"}))["data"]["id"]
    control = await api.attach()
    room = random.randint(1, 1 << 52)
    await api.message(control, {"request": "create", "room": room, "publishers": 3, "bitrate": 0})
    handle = await api.attach()
    joined = await api.message(handle, {"request": "join", "ptype": "publisher", "room": room})
    feed = joined["plugindata"]["data"]["id"]
    publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    publisher.addTransceiver(AudioStreamTrack(), direction="sendonly")
    publisher.addTransceiver(NoiseVideo(), direction="sendonly")
    await publisher.setLocalDescription(await publisher.createOffer())
    configured = await api.message(handle, {"request": "configure", "audio": True, "video": True},
                                   {"type": "offer", "sdp": publisher.localDescription.sdp})
    await publisher.setRemoteDescription(RTCSessionDescription(**configured["jsep"]))
    for _ in range(100):  # Janus refuses to subscribe to a feed before its media is up
        listed = await api.message(control, {"request": "listparticipants", "room": room})
        if any(p.get("publisher") for p in listed["plugindata"]["data"].get("participants", [])):
            break
        await asyncio.sleep(0.1)
    players = []
    for _ in range(n):
        handle = await api.attach()
        attached = await api.message(handle, {"request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": feed}]})
        pc = peer()
        await pc.setRemoteDescription(RTCSessionDescription(**attached["jsep"]))
        await pc.setLocalDescription(await pc.createAnswer())
        await api.message(handle, {"request": "start", "room": room}, {"type": "answer", "sdp": pc.localDescription.sdp})
        players.append(pc)

    async def keepalive():
        while True:
            await asyncio.sleep(20)
            await api.request({"janus": "keepalive"})
    keeping = asyncio.ensure_future(keepalive())

    async def close():
        keeping.cancel()
        api.reader.cancel()
        await socket.close()
        await http.close()
    return publisher, players, close


async def measure(sfu_class, n):
    # aioice leaves loopback out of its candidates; Janus takes media only on MEDIA_HOST (janus.py).
    host = MEDIA_HOST if sfu_class is run.JanusSFU else "127.0.0.1"
    aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: [host]
    sfu = sfu_class()
    publisher, players, close = None, [], None
    try:
        publisher, players, close = await (janus_session if sfu_class is run.JanusSFU else parley_session)(sfu, n)
        deadline = time.time() + 40
        while not await video_everywhere(players):
            if time.time() > deadline:
                raise RuntimeError("not every player received video within 40 s")
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)
        cpu, packets = run.cpu_seconds(sfu.process.pid), await received(players)
        await asyncio.sleep(WINDOW)
        cpu, packets = run.cpu_seconds(sfu.process.pid) - cpu, await received(players) - packets
        result = {"sfu": sfu_class.name, "fanout": n, "packets": packets, "cpu": cpu,
                  "perCPUSecond": round(packets / cpu) if cpu > 0 else None, "perSecond": round(packets / WINDOW)}
    except Exception as error:  # a scenario that cannot run is reported, not fatal
        result = {"sfu": sfu_class.name, "fanout": n, "error": str(error)[:300]}
    finally:
        for pc in players + ([publisher] if publisher else []):
            await pc.close()
        if close:
            await close()
        sfu.stop()
    print(f"  {json.dumps(result)}", flush=True)
    return result


def write(results):
    by = {(r["sfu"], r["fanout"]): r for r in results}
    lines = [SECTION, "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; machine: {run.machine()}",
             "- reproduce: `make bench` (this section: `bench/outside.py`, run by it; `make bench-outside` alone)",
             "- one aiortc publisher (Opus and VP8 at 160×120, aiortc's own rates) and N aiortc players, the same clients for both",
             "  SFUs: Parley `serve --workers 1` through WHIP/WHEP, Janus 1.1 VideoRoom through its WebSocket API. The clients run",
             f"  on the same 2 cores. Cost: the SFU's CPU over {WINDOW} s of steady state ÷ the packets the players' `getStats()` counted.",
             "- the players are one Python process decoding every frame beside the SFU: past about 20 of them they fall behind, and",
             "  a row whose delivered rate stops growing with N (or falls) measures the clients and the SFU's reaction to them, not",
             "  the SFU's forwarding cost.", "",
             "| fan-out N | Parley pkts/s delivered | Parley pkts per CPU-s | Janus pkts/s delivered | Janus pkts per CPU-s | Parley ÷ Janus |",
             "| --- | --- | --- | --- | --- | --- |"]
    for n in FANOUTS:
        p, j = by.get(("Parley", n), {}), by.get(("Janus", n), {})
        ratio = run.ratio(p.get("perCPUSecond"), j.get("perCPUSecond"))
        lines.append(f"| {n} | {p.get('perSecond', p.get('error', '-'))} | {p.get('perCPUSecond', '-')} | "
                     f"{j.get('perSecond', j.get('error', '-'))} | {j.get('perCPUSecond', '-')} | {ratio} |")
    run.write_section(lines)


async def main():
    results = []
    for sfu_class in (run.ParleySFU, run.JanusSFU):
        print(f"outside clients (aiortc) against {sfu_class.name}", flush=True)
        for n in FANOUTS:
            results.append(await measure(sfu_class, n))
    write(results)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
