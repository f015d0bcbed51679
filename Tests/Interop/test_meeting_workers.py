"""A meeting across the workers of one SFU (issue 13): past `--worker-capacity` participants on
one worker, the meeting takes a second worker, piped to the first over loopback UDP with SRTP,
the same pipe as between SFU nodes. Browsers on each worker see and hear each other."""
import json
import os
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from conftest import Server
from test_browsers_chromium import Browser, wait_for


@pytest.mark.timeout(240)
def test_a_meeting_split_over_two_workers_browsers_on_each_decode_and_hear_each_other():
    with tempfile.NamedTemporaryFile("w", suffix=".token", delete=False) as token_file:
        token_file.write("workers-operator-token-0123456789")
    server = Server("meeting-workers", workers=2, extra_args=["--worker-capacity", "1", "--admin-token-file", token_file.name])
    browsers = [Browser("ada"), Browser("bob")]
    try:
        ids = []
        for browser in browsers:
            browser.open(f"{server.url}/m/split?name={browser.name}")
            ids.append(wait_for(browser.participant_id, 20))
        assert all(ids)

        def operator_view():
            request = urllib.request.Request(f"{server.url}/api/admin/meetings/split",
                                             headers={"Authorization": "Bearer workers-operator-token-0123456789"})
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        # Which worker each one's media reached: the worker's port, from the operator view.
        def placements():
            found = {t["participantId"]: r["port"] for r in operator_view()["media"]["routers"] for t in r["transports"]}
            return found if len(found) == 2 else None
        placed = wait_for(placements, 20) or {}
        assert {placed.get(ids[0]), placed.get(ids[1])} == {server.udp_port, server.udp_port + 1}, f"one browser per worker: {placed}"

        def receiving(browser, other):
            stats = browser.stats().get(other, {})
            return stats if stats.get("framesDecoded", 0) > 0 and stats.get("audioPacketsReceived", 0) > 0 else None
        assert wait_for(lambda: receiving(browsers[0], ids[1]) and receiving(browsers[1], ids[0]), 40), \
            (browsers[0].stats(), browsers[1].stats())
        # Counted over a window after both decode: new frames and audio, not what came before.
        before = [browsers[0].stats()[ids[1]], browsers[1].stats()[ids[0]]]
        health_before = server.health()["sfu"]
        time.sleep(5)
        after = [browsers[0].stats()[ids[1]], browsers[1].stats()[ids[0]]]
        health = server.health()["sfu"]
        for name, b, a in zip(("ada sees bob", "bob sees ada"), before, after):
            frames, audio = a["framesDecoded"] - b["framesDecoded"], a["audioPacketsReceived"] - b["audioPacketsReceived"]
            print(f"measured: {name} across the pipe: {frames} frames, {audio} audio packets in 5 s")
            assert frames > 50 and audio > 100, (name, b, a)
        assert health["pipes"] == 2, health
        piped = health["counters"]["pipedPacketsSent"] - health_before["counters"]["pipedPacketsSent"]
        assert piped > 400, health
        assert health["counters"]["pipedPacketsReceived"] > 0

        routers = operator_view()["media"]["routers"]
        assert sorted(r["port"] for r in routers) == [server.udp_port, server.udp_port + 1], routers
        for router in routers:
            assert len(router["pipes"]) == 1, router
            streams = router["pipes"][0]["streams"]
            out = [s for s in streams if s["direction"] == "out" and s["packets"] > 0]
            assert {s["kind"] for s in out} == {"audio", "video"}, streams

        # One leaves: the other worker's part of the meeting ends, and so does the pipe.
        browsers[1].quit()
        assert wait_for(lambda: server.health()["sfu"].get("pipes") == 0, 20), server.health()["sfu"]
    finally:
        for browser in browsers:
            try:
                browser.quit()
            except Exception:
                pass
        server.stop()
        os.unlink(token_file.name)
