"""Cascading (issue 13): a meeting that fills its SFU goes on on another SFU, piped to the first.
A real redis-server, two `parley sfu --capacity 2` and a `parley signal`; Chromium participants on
both SFUs see and hear each other through the pipe, which carries only the layers the far side
watches. Then the pipe's port under attack, and kill -9 of an SFU of a cascaded meeting."""
import json
import os
import tempfile
import time
import urllib.request

import pytest

from conftest import PARLEY, ROOT, free_media_ports, free_port
from test_browsers_chromium import Browser, wait_for
from test_cluster_sfus import Process, wait_for_workers, wait_port

TOKEN = "cascade-control-token-0123456789"


@pytest.fixture
def cascade():
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
            "--capacity", "2", "--control-port", str(control), "--control-token-file", token.name, "--log-level", "debug"])}
        processes.append(sfus[name]["process"])
    http_port = free_port()
    signal_node = Process("cascade-signal", [PARLEY, "signal", "--redis", url, "--http-port", str(http_port), "--control-token-file", token.name,
                                             "--admin-token-file", token.name, "--web-root", os.path.join(ROOT, "Web"), "--log-level", "debug"])
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
            assert frames > 40 and audio > 100, (viewer.name, other, b, a)
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
    finally:
        for browser in browsers:
            browser.quit()


def cascade_health(base):
    with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
        return json.loads(response.read())["sfu"]
