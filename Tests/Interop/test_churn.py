"""Issue 11, item 3: a minute of churn against the AddressSanitizer build of `parley serve`.

A few hundred peers (`parley load`'s and aiortc's) join and leave one SFU in every way a peer can
leave (churn.py) while two steady meetings send media the whole time. Afterwards the server still
serves and holds the steady meetings' transports only; it exits 0 on SIGTERM (with the steady
meetings still in it) and its log has no sanitizer finding; the steady meetings lost no more
during the churn than before it, and kept receiving frames after it.
Then the sequence of the report, ten times: a WHIP publisher and five WHEP players close within
milliseconds of each other and SIGTERM follows at once.
"""
import asyncio
import os
import time

import pytest

from churn import AIORTC_SIZE, SANITIZER_ENV, STEADY_MEETINGS, STEADY_PARTICIPANTS, Churn, ServerProcess, SteadyMeetings, settled
from conftest import ARTIFACTS, PARLEY, ROOT
from test_whip_whep_aiortc import first_frame_of_size, play, publish

ASAN_PARLEY = os.environ.get("PARLEY_ASAN_BIN", os.path.join(ROOT, ".build-asan", "debug", "parley"))
# The steady meetings may lose at most this much more (percentage points) during the churn than
# in the quiet window before it. The README's sizing guide calls 0.5 % the loss a deployment can
# accept; on loopback with NACK repair both windows measured 0.00-0.0x % here, so a server that
# stalls its workers on leaving peers, or drops streams of the wrong meeting, fails it.
LOSS_MARGIN = 0.5
# And no single second of the churn may lose more than this: a worker stalled for half a second
# by a leaving peer overflows its socket buffer and shows here even when the minute's average hides it.
WORST_SECOND_LOSS = 5.0
# Each steady participant receives its 3 others' video at 25 frames/s; count what arrives in a
# window and require most of it (the load generator's own scheduling on 2 busy cores varies).
FRAMES_PER_SECOND = (STEADY_PARTICIPANTS - 1) * 25
FRAMES_SHARE = 0.8


def asan_server(name):
    if not os.path.exists(ASAN_PARLEY):
        pytest.fail(f"no AddressSanitizer build of parley at {ASAN_PARLEY}: `make asan-test` builds it "
                    "(swift build --sanitize=address --scratch-path .build-asan); PARLEY_ASAN_BIN names another")
    if not os.path.exists(PARLEY):
        pytest.fail(f"no release build of parley at {PARLEY} (its load generator drives the churn): swift build -c release --product parley")
    return ServerProcess(ASAN_PARLEY, name, env=SANITIZER_ENV)


def check_alive(server, when):
    if server.process.poll() is not None:
        pytest.fail(f"parley serve died {when} (exit {server.process.returncode}); {server.log_path}:\n" + "\n".join(server.findings()[:20]))


def check_exit(server, code, seconds):
    """After SIGTERM: exit 0 within a few seconds (LeakSanitizer's scan at exit included), and no
    finding in the log."""
    findings = server.findings()
    assert not findings, f"sanitizer or runtime report in {server.log_path}:\n" + "\n".join(findings[:20])
    assert code == 0, f"parley serve exited {code} after SIGTERM; see {server.log_path}"
    assert seconds < 10, f"parley serve took {seconds:.1f} s to exit after SIGTERM"


def check_frames(window, label):
    expected = FRAMES_PER_SECOND * window["seconds"]
    for name, got in window["participants"].items():
        assert got["frames"] >= FRAMES_SHARE * expected, f"{name} received {got['frames']} frames {label}, expected about {expected:.0f}"


@pytest.mark.timeout(240)
def test_a_minute_of_churn_leaves_no_sanitizer_finding_and_other_meetings_unharmed():
    server = asan_server("churn-asan")
    steady_transports = STEADY_MEETINGS * STEADY_PARTICIPANTS

    async def scenario():
        steady = SteadyMeetings(server.url, 300, os.path.join(ARTIFACTS, "churn-steady.log"))
        churn = Churn(server.url, os.path.join(ARTIFACTS, "churn-waves.log"))
        await steady.start()
        try:
            assert await steady.wait_connected(), "the steady meetings did not connect"
            await asyncio.sleep(2)  # past the first keyframes
            quiet_start = time.monotonic()
            await asyncio.sleep(10)
            quiet_end = time.monotonic()
            baseline = await asyncio.to_thread(server.health)
            await churn.minute(0)
            churn_end = time.monotonic()
            check_alive(server, "during the churn")
            health = await settled(server, steady_transports)
            status = await asyncio.to_thread(server.health_status)
            after_start = time.monotonic()
            await asyncio.sleep(6)
            windows = steady.window(quiet_start, quiet_end), steady.window(quiet_end, churn_end), \
                steady.window(after_start, time.monotonic() - 1)
            windows[1]["worst_second"] = steady.worst_second(quiet_end, churn_end)
            # SIGTERM with the steady meetings still in the call.
            code, seconds = await asyncio.to_thread(server.terminate, 15)
            return baseline, health, status, windows, (code, seconds), churn
        finally:
            churn.close()
            await steady.stop()
            server.kill()

    baseline, health, status, (quiet, during, after), (code, seconds), churn = asyncio.run(scenario())
    peers = sum(churn.peers.values())
    print(f"\nchurn: {peers} peers: " + ", ".join(f"{kind} {n}" for kind, n in sorted(churn.peers.items())))
    print(f"steady meetings' loss: quiet {quiet['loss_percent']:.3f} % ({quiet['lost']} of {quiet['received'] + quiet['lost']} "
          f"in {quiet['seconds']:.0f} s), during the churn {during['loss_percent']:.3f} % ({during['lost']} of "
          f"{during['received'] + during['lost']} in {during['seconds']:.0f} s; worst second {during['worst_second']:.2f} %)")
    print(f"frames per steady participant after the churn ({after['seconds']:.0f} s): "
          + ", ".join(str(p["frames"]) for p in after["participants"].values()))
    print(f"after the churn: transports {health['sfu']['transports']}, WHIP/WHEP sessions {health['whipWhepSessions']}, "
          f"participants {health['participants']}, C objects {health['sfu'].get('liveCObjects')}; SIGTERM: exit {code} in {seconds:.1f} s")
    assert not churn.problems, f"{len(churn.problems)} problems (churn-waves.log):\n" + "\n".join(churn.problems[:30])
    assert peers >= 200, churn.peers
    assert status == 200
    assert health["sfu"]["transports"] == baseline["sfu"]["transports"] == STEADY_MEETINGS * STEADY_PARTICIPANTS, health
    assert health["whipWhepSessions"] == 0 and health["participants"] == baseline["participants"], health
    if "liveCObjects" in baseline["sfu"]:
        assert health["sfu"]["liveCObjects"] == baseline["sfu"]["liveCObjects"], "OpenSSL/libsrtp2 objects outlived their transports"
    assert during["loss_percent"] <= quiet["loss_percent"] + LOSS_MARGIN
    assert during["worst_second"] <= WORST_SECOND_LOSS
    check_frames(during, "during the churn")
    check_frames(after, "after the churn")
    check_exit(server, code, seconds)


@pytest.mark.timeout(180)
def test_publisher_and_five_players_closing_at_once_then_sigterm_ten_times():
    """The sequence of the report (issue 11): 1 aiortc WHIP publisher + 5 WHEP players, a few
    seconds of media, everyone closes within milliseconds, SIGTERM at once."""
    for round_ in range(10):
        server = asan_server(f"churn-asan-round-{round_}")

        async def one_round():
            publisher, _ = await publish(server.url, "round", *AIORTC_SIZE)
            players = [await play(server.url, "round") for _ in range(5)]
            for _, _, frames, _ in players:
                assert await first_frame_of_size(frames, *AIORTC_SIZE, 15), "a WHEP player decoded no frame"
            await asyncio.sleep(1)
            started = time.monotonic()
            await asyncio.gather(publisher.close(), *(pc.close() for pc, _, _, _ in players))
            return time.monotonic() - started

        try:
            spread = asyncio.run(one_round())
            code, seconds = server.terminate(timeout=15)
        finally:
            server.kill()
        print(f"round {round_}: 6 peers closed within {spread * 1000:.0f} ms; SIGTERM: exit {code} in {seconds:.1f} s")
        check_exit(server, code, seconds)
