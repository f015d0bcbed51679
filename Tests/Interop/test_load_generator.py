"""`parley load` against a real `parley serve`: the report says what a user would check."""
import json
import subprocess

import pytest

from conftest import PARLEY


def run_load(*args, timeout=60):
    result = subprocess.run([PARLEY, "load", *args], capture_output=True, text=True, timeout=timeout)
    return result


@pytest.mark.timeout(90)
def test_load_generator_joins_every_participant_and_measures_what_they_receive(parley):
    result = run_load("--url", parley.url, "--meetings", "2", "--participants", "3", "--duration", "4", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["joined"] == 6 and report["failed"] == 0
    assert "connected 6/6" in result.stderr  # the progress line
    for participant in report["participants"]:
        # Two others, each with audio and video.
        assert participant["streamsReceived"] == 4, participant
        assert participant["packetsReceived"] > 300, participant
        assert participant["latencyP50Milliseconds"] is not None
    assert report["packetsReceived"] >= report["packetsSent"]  # each packet goes to two others
    assert report["lossPercent"] < 1.0
    assert report["sendErrors"] == 0 and all(p["malformed"] == 0 for p in report["participants"])
    assert parley.health()["sfu"]["counters"]["rtpForwarded"] >= report["packetsReceived"]


@pytest.mark.timeout(90)
def test_top_k_subscription_and_audio_only_participants(parley):
    result = run_load("--url", parley.url, "--participants", "4", "--video-publishers", "2", "--subscribe", "1",
                      "--duration", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    streams = sorted(p["streamsReceived"] for p in report["participants"])
    # Everyone hears the 3 others; each receives one video (the publishers see each other's).
    assert streams == [4, 4, 4, 4], report["participants"]


def test_load_generator_reports_an_unreachable_server_clearly():
    result = run_load("--url", "http://127.0.0.1:9", "--duration", "1", "--json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["joined"] == 0 and report["failed"] == 2
    assert all(p["error"] for p in report["participants"])
    result = run_load("--url", "http://example.test:8080", "--duration", "1")
    assert result.returncode != 0 and "IPv4 address" in result.stderr


@pytest.mark.timeout(90)
def test_load_generator_over_whip_and_whep(parley):
    result = run_load("--url", parley.url, "--meetings", "2", "--participants", "3", "--whip", "--duration", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["joined"] == 6
    players = [p for p in report["participants"] if p["packetsSent"] == 0]
    assert len(players) == 4
    for player in players:
        assert player["streamsReceived"] == 2 and player["packetsReceived"] > 150, player


@pytest.mark.timeout(120)
def test_a_stream_keeps_flowing_past_half_the_sequence_space(parley):
    """A forwarded stream used to go silent for 32,768 packets once it had gone half the 16-bit
    sequence space past its first packet (found by the 30-minute soak, audio at minute 11). Video
    at 16 Mb/s crosses that point in about 17 s."""
    result = run_load("--url", parley.url, "--participants", "2", "--video-bitrate", "16000000", "--frame-rate", "30",
                      "--duration", "28", "--json", timeout=90)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    sent = {p["name"]: p["packetsSent"] for p in report["participants"]}
    for participant in report["participants"]:
        other = next(n for n in sent if n != participant["name"])
        assert sent[other] > 40_000, "the stream did not get far enough to cross 2^15 packets"
        # Everything the other sent arrives, bar the last moment's packets in flight.
        assert participant["packetsReceived"] >= 0.98 * sent[other], (participant, sent[other])
