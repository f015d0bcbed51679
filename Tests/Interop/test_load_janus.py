"""`parley load --target janus` against a real Janus (Debian's package): the adapter the benchmark
compares Parley with. Runs in the loopback-only namespace of `make test`; Janus gets 127.0.0.2 on a
veth pair there (bench/janus.py)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import PARLEY

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
from janus import MEDIA_HOST, Janus  # noqa: E402


@pytest.fixture
def janus():
    server = Janus()
    yield server
    server.stop()


def run_load(janus_url, *args, timeout=60):
    return subprocess.run([PARLEY, "load", "--target", "janus", "--url", janus_url, "--bind-host", MEDIA_HOST,
                           "--media-host", MEDIA_HOST, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(90)
def test_load_generator_drives_janus_videoroom_and_measures_what_it_forwards(janus):
    result = run_load(janus.url, "--participants", "3", "--video-publishers", "2", "--subscribe", "1", "--duration", "5", "--json")
    assert result.returncode == 0, result.stderr + janus.log_tail()
    report = json.loads(result.stdout)
    assert report["joined"] == 3 and report["failed"] == 0, report["participants"]
    streams = sorted(p["streamsReceived"] for p in report["participants"])
    # Everyone hears the 2 others and sees one video (--subscribe 1): the third, audio-only, would see two without it.
    assert streams == [3, 3, 3], report["participants"]
    for participant in report["participants"]:
        assert participant["packetsReceived"] > 100, participant
        assert participant["malformed"] == 0
    assert report["lossPercent"] < 1.0
    assert report["latencyP50Milliseconds"] is not None


def test_janus_target_refuses_an_http_url_and_reports_an_unreachable_janus():
    result = subprocess.run([PARLEY, "load", "--target", "janus", "--url", "http://127.0.0.1:8088/janus", "--duration", "1"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "ws://HOST:PORT" in result.stderr
    result = run_load("ws://127.0.0.1:9", "--participants", "2", "--duration", "1", "--json", timeout=30)
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["joined"] == 0 and report["failed"] == 2
    assert all("Janus at ws://127.0.0.1:9" in p["error"] for p in report["participants"]), report["participants"]
