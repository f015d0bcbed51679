"""Cascading (issue 13): a meeting that fills its SFU goes on on another SFU, piped to the first.
A real redis-server, two `parley sfu --capacity 2` and a `parley signal`; Chromium participants on
both SFUs see and hear each other through the pipe, which carries only the layers the far side
watches. Then the pipe's port under attack, and kill -9 (or a drain, SIGTERM) of an SFU of a
cascaded meeting."""
import base64
import json
import os
import random
import signal
import socket
import tempfile
import time
import urllib.request

import pylibsrtp
import pytest

from conftest import PARLEY, ROOT, free_media_ports, free_port
from test_browsers_chromium import Browser, wait_for
from test_cluster_sfus import Process, redis_get, wait_for_workers, wait_port

TOKEN = "cascade-control-token-0123456789"


@pytest.fixture
def cascade(request):
    options = getattr(request, "param", {})
    capacity, topology = str(options.get("capacity", 2)), options.get("topology", "auto")
    token = tempfile.NamedTemporaryFile("w", delete=False)
    token.write(TOKEN)
    token.close()
    redis_port = free_port()
    processes = []
    redis = Process("cascade-redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
    processes.append(redis)
    assert wait_port(redis_port)
    url = f"redis://127.0.0.1:{redis_port}"
    sfus = {}
    for name in ("sfu-a", "sfu-b", "sfu-c"):
        udp, control = free_media_ports(2), free_port()
        sfus[name] = {"udp": udp, "control": control, "process": Process(f"cascade-{name}", [
            PARLEY, "sfu", "--redis", url, "--node-id", name, "--udp-port", str(udp), "--announce-ip", "127.0.0.1", "--workers", "1",
            "--capacity", capacity, "--control-port", str(control), "--control-token-file", token.name, "--log-level", "debug"]
            + options.get("sfu_args", {}).get(name, []))}
        processes.append(sfus[name]["process"])
    http_port = free_port()
    signal_node = Process("cascade-signal", [PARLEY, "signal", "--redis", url, "--http-port", str(http_port), "--control-token-file", token.name,
                                             "--admin-token-file", token.name, "--cascade-topology", topology, "--web-root", os.path.join(ROOT, "Web"), "--log-level", "debug"])
    processes.append(signal_node)
    assert wait_port(http_port)
    base = f"http://127.0.0.1:{http_port}"
    assert wait_for_workers(base, 3), "the signaling node never saw the three SFU nodes"
    yield {"url": base, "redis": redis_port, "sfus": sfus}
    for process in reversed(processes):
        process.stop()
    os.unlink(token.name)


def operator_view(base, meeting):
    request = urllib.request.Request(f"{base}/api/admin/meetings/{meeting}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def placements(base, meeting):
    """participant id → SFU node carrying its transport."""
    return {t["participantId"]: r["node"] for r in operator_view(base, meeting)["media"]["routers"] for t in r["transports"]}


def pipe_streams(base, meeting, node, producer):
    """Packets per layer of one producer sent into the pipes of `node`."""
    counts = {}
    for router in operator_view(base, meeting)["media"]["routers"]:
        if router["node"] != node:
            continue
        for pipe in router["pipes"]:
            for stream in pipe["streams"]:
                if stream["producerId"] == producer and stream["direction"] == "out":
                    counts[stream["layer"]] = counts.get(stream["layer"], 0) + stream["packets"]
    return counts


def decoding(browser, other):
    stats = browser.stats().get(other, {})
    return stats if stats.get("framesDecoded", 0) > 0 and stats.get("audioPacketsReceived", 0) > 0 else None


@pytest.mark.timeout(300)
def test_participants_on_two_sfus_see_and_hear_each_other_through_a_pipe_that_carries_only_wanted_layers(cascade):
    base = cascade["url"]
    ada, bob, cyd = Browser("cascade-ada"), Browser("cascade-bob"), Browser("cascade-cyd")
    browsers = [ada, bob, cyd]
    try:
        # Ada and Bob (a large window: the full layer) fill the meeting's first SFU; Cyd (a small
        # window: a low layer) goes on on another, piped to it.
        bob.driver.set_window_size(1920, 1200)
        cyd.driver.set_window_size(360, 300)
        ids = []
        for browser in browsers:
            browser.open(f"{base}/m/big?name={browser.name}")
            ids.append(wait_for(browser.participant_id, 20))
            assert ids[-1]
            assert wait_for(lambda n=len(ids): len(placements(base, "big")) == n, 20), operator_view(base, "big")
        placed = placements(base, "big")
        first, second = placed[ids[0]], placed[ids[2]]
        assert placed[ids[1]] == first and second != first, placed
        for viewer, others in ((ada, [ids[1], ids[2]]), (bob, [ids[0], ids[2]]), (cyd, [ids[0], ids[1]])):
            assert wait_for(lambda v=viewer, o=others: all(decoding(v, x) for x in o), 60), (viewer.name, viewer.stats())

        # A window of 5 s: Cyd decodes and hears Ada and Bob across the pipe, and they her.
        camera = next(p["id"] for r in operator_view(base, "big")["media"]["routers"] for t in r["transports"]
                      if t["participantId"] == ids[0] for p in t["producers"] if p["kind"] == "video")
        assert wait_for(lambda: sum(pipe_streams(base, "big", first, camera).values()) > 0, 20)
        time.sleep(3)  # the far side's layer choice settles
        before = {v.name: v.stats() for v in browsers}
        streams_before = pipe_streams(base, "big", first, camera)
        time.sleep(5)
        after = {v.name: v.stats() for v in browsers}
        streams_after = pipe_streams(base, "big", first, camera)
        for viewer, other in ((cyd, ids[0]), (cyd, ids[1]), (ada, ids[2]), (bob, ids[2])):
            b, a = before[viewer.name][other], after[viewer.name][other]
            frames, audio = a["framesDecoded"] - b["framesDecoded"], a["audioPacketsReceived"] - b["audioPacketsReceived"]
            print(f"measured: {viewer.name} from {other} across the pipe: {frames} frames, {audio} audio packets in 5 s")
            assert frames > 40 and audio > 50, (viewer.name, other, b, a)
        crossed = {layer: streams_after.get(layer, 0) - streams_before.get(layer, 0) for layer in streams_after}
        print(f"measured: Ada's camera into the pipe in 5 s, packets by layer: {crossed}; Bob decodes it at "
              f"{after['cascade-bob'][ids[0]].get('frameWidth')} wide, Cyd at {after['cascade-cyd'][ids[0]].get('frameWidth')}")
        # Layers of Ada's 1280-wide camera: q 320, h 640, f 1280. Bob's large tile takes a larger
        # layer than Cyd's small one; it is sent on the first SFU, and does not cross.
        layer_of = {320: 0, 640: 1, 1280: 2}
        near, far = layer_of.get(after["cascade-bob"][ids[0]].get("frameWidth")), layer_of.get(after["cascade-cyd"][ids[0]].get("frameWidth"))
        assert near is not None and far is not None and near > far, (near, far)
        assert crossed.get(near, 0) == 0, f"layer {near}, which only the first SFU's viewer watches, crossed: {crossed}"
        assert crossed.get(far, 0) > 100, crossed
        health = cascade_health(base)
        assert health["pipes"] >= 2 and health["counters"]["pipedPacketsSent"] > 0, health

        # The pipe port under attack: a fake peer SFU (with the control token) sets up a pipe from
        # its own socket, then sends SRTP with the wrong key and garbage; a third address sends
        # SRTP with the right key. All of it is counted and dropped; Cyd keeps decoding Ada.
        attack(cascade["sfus"][first], "big", lambda: cyd.stats()[ids[0]]["framesDecoded"])
    finally:
        for browser in browsers:
            browser.quit()


def sfu_status(sfu):
    request = urllib.request.Request(f"http://127.0.0.1:{sfu['control']}/control/status", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def attack(sfu, meeting, frames_decoded):
    fake, stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fake.bind(("127.0.0.1", 0))
    stranger.bind(("127.0.0.5", 0))
    right, wrong = os.urandom(28), os.urandom(28)
    offer = {"meetingId": meeting, "media": {"audioSpeakers": 3, "videoSlots": 25}, "fromNode": "attacker",
             "from": {"address": "127.0.0.1", "port": fake.getsockname()[1], "key": base64.b64encode(right).decode()}}
    request = urllib.request.Request(f"http://127.0.0.1:{sfu['control']}/control/pipes", data=json.dumps(offer).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        answer = json.loads(response.read())["endpoint"]
    target = ("127.0.0.1", answer["port"])

    def session(key):
        return pylibsrtp.Session(policy=pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                                                          srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM))
    wrong_session, right_session = session(wrong), session(right)

    def rtp(sequence):
        return bytes([0x80, 96, sequence >> 8, sequence & 0xFF, 0, 0, 0, 1, 9, 9, 9, 9]) + os.urandom(100)
    reasons = ("droppedUnauthenticated", "droppedMalformed", "droppedUnknownSender", "droppedUnroutable")
    before, frames_before = sfu_status(sfu)["counters"], frames_decoded()
    for n in range(1000):
        fake.sendto(wrong_session.protect(rtp(n)), target)
        fake.sendto(os.urandom(random.randint(1, 1200)), target)
        stranger.sendto(right_session.protect(rtp(n)), target)
        if n % 50 == 0:
            time.sleep(0.005)
    time.sleep(1)
    status = sfu_status(sfu)
    dropped = {r: status["counters"][r] - before[r] for r in reasons}
    print(f"measured: 3,000 attack datagrams on the pipe port: dropped by reason {dropped}")
    assert sum(dropped.values()) >= 3000, dropped
    assert dropped["droppedUnknownSender"] >= 1000, "SRTP with the right key from another address is not the peer's"
    assert wait_for(lambda: frames_decoded() > frames_before + 30, 10), "media stopped during the attack"
    fake.close()
    stranger.close()


def cascade_health(base):
    with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
        return json.loads(response.read())["sfu"]


# Noted in the page every 100 ms from just before a fault: each source's lowest frame count since
# (a new peer connection counts from zero), its first frame on a new peer connection (once its
# count fell below the one when the watch began), and the first moment every source has grown 5
# frames past its lowest there.
RECOVERY_WATCH = """
const [sources, done] = [arguments[0], arguments[arguments.length - 1]];
const watch = window.recoveryWatch = {first: {}, lowest: {}, firstFrame: {}, back: null};
const sample = async () => {
  const stats = await window.parley.stats().catch(() => ({}));
  return sources.map((s) => (stats[s] || {}).framesDecoded || 0);
};
sample().then((counts) => { sources.forEach((s, i) => { watch.first[s] = watch.lowest[s] = counts[i]; }); done(); });
const timer = setInterval(async () => {
  if (Object.keys(watch.first).length < sources.length) return;
  const counts = await sample();
  sources.forEach((s, i) => {
    watch.lowest[s] = Math.min(watch.lowest[s], counts[i]);
    if (watch.lowest[s] < watch.first[s] && counts[i] > watch.lowest[s]) watch.firstFrame[s] ??= Date.now();
  });
  if (sources.every((s, i) => watch.lowest[s] < watch.first[s] && counts[i] > watch.lowest[s] + 5)) {
    watch.back = Date.now();
    clearInterval(timer);
  }
}, 100);
"""


def watch_recovery(browser, sources):
    browser.driver.execute_async_script(RECOVERY_WATCH, sources)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("stop", ["kill -9", "drain"])
def test_kill_9_or_drain_of_an_sfu_of_a_cascaded_meeting_its_participants_decode_again_elsewhere_and_the_others_never_stop(cascade, stop):
    import asyncio
    import threading
    from test_whip_whep_aiortc import publish

    base = cascade["url"]
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    ada, bob, cyd = Browser("kill-ada"), Browser("kill-bob"), Browser("kill-cyd")
    browsers = [ada, bob, cyd]
    publisher = None
    try:
        ada.open(f"{base}/m/kill?name=ada")
        ada_id = wait_for(ada.participant_id, 20)
        assert ada_id and wait_for(lambda: len(placements(base, "kill")) == 1, 20)
        publisher = asyncio.run_coroutine_threadsafe(publish(base, "kill"), loop).result(20)[0]
        assert wait_for(lambda: len(placements(base, "kill")) == 2, 20)
        ids = [ada_id]
        for browser in (bob, cyd):
            browser.open(f"{base}/m/kill?name={browser.name}")
            ids.append(wait_for(browser.participant_id, 20))
            assert ids[-1] and wait_for(lambda n=len(ids) + 1: len(placements(base, "kill")) == n, 20)
        placed = placements(base, "kill")
        hub = placed[ada_id]
        publisher_id = next(pid for pid in placed if pid not in ids)
        assert placed[publisher_id] == hub and placed[ids[1]] == placed[ids[2]] != hub, placed
        doomed = placed[ids[1]]
        for viewer in (bob, cyd):
            assert wait_for(lambda v=viewer: decoding(v, ada_id) and decoding(v, publisher_id), 60), viewer.stats()
        assert wait_for(lambda: decoding(ada, publisher_id) and decoding(ada, ids[1]), 60), ada.stats()

        # Stop the SFU Bob and Cyd are on (kill -9, or SIGTERM: it drains); Ada's decoding of the publisher on her own SFU is
        # sampled every 250 ms throughout and must never stall. Bob's and Cyd's pages watch their
        # own decoding every 100 ms and note when it grows again, so the gap is measured in the page.
        for viewer in (bob, cyd):
            watch_recovery(viewer, [ada_id, publisher_id])
        killed_at = time.time()
        doomed_process = cascade["sfus"][doomed]["process"]
        if stop == "kill -9":
            doomed_process.kill()
        else:
            doomed_process.process.send_signal(signal.SIGTERM)
        windows, last, back = [], ada.stats()[publisher_id]["framesDecoded"], {}
        while time.time() - killed_at < 15 and len(back) < 2:
            time.sleep(0.25)
            now = ada.stats()[publisher_id]["framesDecoded"]
            windows.append(now - last)
            last = now
            for viewer in (bob, cyd):
                recovered = viewer.js("return window.recoveryWatch.back")
                if viewer.name not in back and recovered and placements(base, "kill").get(ids[(bob, cyd).index(viewer) + 1]) not in (None, doomed):
                    back[viewer.name] = round(recovered / 1000 - killed_at, 2)
        # The media gap: from the stop to each viewer's first frame of both sources on its new connection.
        gaps = {viewer.name: {("ada" if k == ada_id else "whip"): round(v / 1000 - killed_at, 2)
                              for k, v in viewer.js("return window.recoveryWatch.firstFrame").items()} for viewer in (bob, cyd)}
        print(f"measured: {stop} of {doomed}: first frames again after {gaps} s, 5 frames of each after {back} s; "
              f"ada's frames from the publisher per 250 ms: {windows}")
        for viewer in (bob, cyd):
            events = [(e["event"], round(e["at"] / 1000 - killed_at, 2)) for e in viewer.js("return window.parley.mediaEvents") if e["at"] / 1000 > killed_at]
            print(f"  {viewer.name}'s media events since: {events}")
        if len(back) < 2:
            view = operator_view(base, "kill")["media"]["routers"]
            for router in view:
                print("ROUTER", router["node"], [(t["participantId"], t["role"], [(c["mid"], c["kind"], c.get("producerId"), c["packetsSent"]) for c in t["consumers"]]) for t in router["transports"]])
                for pipe in router["pipes"]:
                    print("PIPE", router["node"], pipe["remote"], pipe["packetsSent"], pipe["packetsReceived"], [(x["producerId"], x["kind"], x["layer"], x["direction"], x["packets"], x["wanted"]) for x in pipe["streams"]])
            print("BOB", bob.stats(), bob.js("return window.parley.participants"))
        assert len(back) == 2 and max(back.values()) < 10, (back, placements(base, "kill"))
        # Never half a second without a frame (one empty 250 ms window is the shared cores' jitter:
        # 3 Chromiums, aiortc and 5 servers on 2 cores; the publisher sends 30 frames a second).
        stalls = [i for i in range(len(windows) - 1) if windows[i] == 0 and windows[i + 1] == 0]
        assert not stalls, f"ada stopped decoding the publisher on her own SFU: {windows}"
        placed = placements(base, "kill")
        assert placed[ids[1]] not in (hub, doomed) and placed[ids[2]] == placed[ids[1]], placed
        assert not any("ended" in n.lower() for n in ada.notices()), ada.notices()
        if stop == "drain":
            # Its participants gone, the drained SFU stops by itself, well within its 10 s timeout.
            doomed_process.process.wait(timeout=15)
            with open(doomed_process.log_path) as log:
                drained = [line for line in log if "drained" in line]
            print(f"measured: drain of {doomed}: {drained[-1].strip() if drained else 'no drained line'}")
            assert drained and doomed_process.process.returncode == 0, drained
    finally:
        for browser in browsers:
            browser.quit()
        if publisher:
            asyncio.run_coroutine_threadsafe(publisher.close(), loop).result(10)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("cascade", [{"capacity": 1, "topology": "star"}], indirect=True)
def test_a_star_of_three_sfus_every_participant_decodes_the_others_two_through_the_hub(cascade):
    base = cascade["url"]
    browsers = [Browser("star-ada"), Browser("star-bob"), Browser("star-cyd")]
    try:
        ids = []
        for browser in browsers:
            browser.open(f"{base}/m/star?name={browser.name}")
            ids.append(wait_for(browser.participant_id, 20))
            assert ids[-1] and wait_for(lambda n=len(ids): len(placements(base, "star")) == n, 20)
        placed = placements(base, "star")
        assert len(set(placed.values())) == 3, placed
        hub = placed[ids[0]]
        for n, viewer in enumerate(browsers):
            others = [x for i, x in enumerate(ids) if i != n]
            assert wait_for(lambda v=viewer, o=others: all(decoding(v, x) for x in o), 60), (viewer.name, viewer.stats())
        before = browsers[1].stats()[ids[2]]
        time.sleep(3)
        after = browsers[1].stats()[ids[2]]
        frames = after["framesDecoded"] - before["framesDecoded"]
        print(f"measured: star: bob decodes cyd (spoke to spoke, through the hub) {frames} frames in 3 s")
        assert frames > 30
        routers = {r["node"]: r for r in operator_view(base, "star")["media"]["routers"]}
        pipes = {node: len(r["pipes"]) for node, r in routers.items()}
        assert pipes[hub] == 2 and all(count == 1 for node, count in pipes.items() if node != hub), pipes
    finally:
        for browser in browsers:
            browser.quit()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("cascade", [{"capacity": 100, "sfu_args": {"sfu-a": ["--capacity-packets-per-second", "40"]}}], indirect=True)
def test_an_sfu_past_its_packet_rate_limit_takes_no_newcomers_the_meeting_spreads_instead(cascade):
    """Capacity by load, not only by participants: sfu-a takes at most 40 packets a second. A WHIP
    publisher (about 50 audio and 30 or more video packets a second) on it puts it past that, so the
    meeting's next publisher goes to another SFU, though sfu-a has 99 places left."""
    import asyncio
    import threading
    from test_whip_whep_aiortc import publish

    base = cascade["url"]
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    run = lambda coroutine: asyncio.run_coroutine_threadsafe(coroutine, loop).result(20)  # noqa: E731
    publishers = []
    try:
        # The ring picks each meeting's first SFU: try meetings until one starts on sfu-a.
        meeting = None
        for attempt in range(12):
            name = f"load-{attempt}"
            publishers.append(run(publish(base, name))[0])
            assert wait_for(lambda n=name: len(placements(base, n)) == 1, 20)
            if list(placements(base, name).values()) == ["sfu-a"]:
                meeting = name
                break
        assert meeting, "no meeting started on sfu-a"
        # Its heartbeat (every 0.3 s) shows the publisher's packets.
        def packets_of_a():
            heartbeat = redis_get(cascade["redis"], "sfu:sfu-a")
            return json.loads(heartbeat).get("packetsPerSecond", 0) if heartbeat else 0
        rate = wait_for(lambda: packets_of_a() >= 40 and packets_of_a(), 20)
        assert rate, "sfu-a never saw the publisher's packets"
        second = run(publish(base, meeting))[0]
        publishers.append(second)
        assert wait_for(lambda: len(placements(base, meeting)) == 2, 20)
        placed = sorted(placements(base, meeting).values())
        print(f"measured: sfu-a at {rate} packets/s (limit 40): the meeting's second publisher went to {placed}")
        assert placed[0] == "sfu-a" and placed[1] != "sfu-a", placed
    finally:
        for pc in publishers:
            run(pc.close())
