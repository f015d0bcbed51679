"""SFU nodes behind a signaling node (issue 5, first part): a real redis-server, two `parley sfu`
processes and one `parley signal`; aiortc publishes and plays through WHIP/WHEP. Meetings spread
over the SFUs; kill -9 of an SFU moves its meeting to the other one."""
import asyncio
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import ARTIFACTS, PARLEY, ROOT, free_media_ports, free_port, stop_process
from test_whip_whep_aiortc import play, publish


class Process:
    def __init__(self, name, args):
        os.makedirs(ARTIFACTS, exist_ok=True)
        self.log_path = os.path.join(ARTIFACTS, f"cluster-{name}.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)

    def kill(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self):
        stop_process(self.process)
        self.log.close()


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def redis_get(port, key):
    return subprocess.run(["redis-cli", "-p", str(port), "GET", key], capture_output=True, text=True).stdout.strip()


def health(url):
    with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
        return json.loads(response.read())


def wait_for_workers(url, count, timeout=30):
    """Until the signaling node sees `count` SFU workers (it answers errors while starting)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if health(url)["sfu"]["workers"] >= count:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def answer_port(sdp):
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            return int(line.split()[5])
    return None


@pytest.fixture
def cluster():
    token = tempfile.NamedTemporaryFile("w", delete=False)
    token.write("cluster-control-token-0123456789")
    token.close()
    redis_port = free_port()
    processes = []
    redis = Process("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
    processes.append(redis)
    assert wait_port(redis_port)
    url = f"redis://127.0.0.1:{redis_port}"
    sfus = {}
    for name in ("sfu-a", "sfu-b"):
        udp = free_media_ports(4)
        control = free_port()
        sfus[name] = {"udp": udp, "control": control, "process": Process(name, [
            PARLEY, "sfu", "--redis", url, "--node-id", name, "--udp-port", str(udp), "--announce-ip", "127.0.0.1", "--workers", "1",
            "--control-port", str(control), "--control-token-file", token.name, "--log-level", "debug"])}
        processes.append(sfus[name]["process"])
    http_port = free_port()
    # The operator API shares the control token here (a test); deployments give it one of its own.
    signal_node = Process("signal", [PARLEY, "signal", "--redis", url, "--http-port", str(http_port), "--control-token-file", token.name,
                                     "--admin-token-file", token.name, "--web-root", os.path.join(ROOT, "Web"), "--log-level", "debug"])
    processes.append(signal_node)
    assert wait_port(http_port)
    base = f"http://127.0.0.1:{http_port}"
    assert wait_for_workers(base, 2), "the signaling node never saw both SFU nodes"
    yield {"url": base, "redis": redis_port, "sfus": sfus, "token": token.name}
    for process in reversed(processes):
        process.stop()
    os.unlink(token.name)


@pytest.mark.timeout(120)
def test_meetings_spread_over_sfu_nodes_and_move_when_one_is_killed(cluster):
    async def scenario():
        url = cluster["url"]
        assert health(url)["sfu"]["workers"] == 2, "the signaling node does not see both SFU nodes"
        # The control API refuses callers without the token.
        control = cluster["sfus"]["sfu-a"]["control"]
        request = urllib.request.Request(f"http://127.0.0.1:{control}/control/status")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 401

        # Media flows through a remote SFU: a WHEP player decodes the WHIP publisher's frames.
        publisher, _ = await publish(url, "alpha")
        player, _, frames, _ = await play(url, "alpha")
        width, _, _ = await asyncio.wait_for(frames.get(), 15)
        assert width == 320
        owner = redis_get(cluster["redis"], "meeting:alpha:sfu")
        assert owner in cluster["sfus"]
        answer = publisher.remoteDescription.sdp
        assert answer_port(answer) == cluster["sfus"][owner]["udp"]
        # The operator sees the meeting on that SFU node, with the publisher's and the player's streams.
        view = urllib.request.Request(f"{url}/api/admin/meetings/alpha", headers={"Authorization": "Bearer cluster-control-token-0123456789"})
        with urllib.request.urlopen(view, timeout=5) as response:
            routers = json.loads(response.read())["media"]["routers"]
        assert [r["node"] for r in routers] == [owner], routers
        assert sorted(t["role"] for t in routers[0]["transports"]) == ["whep", "whip"]

        # Meetings spread over both nodes.
        owners = set()
        for index in range(12):
            pc, _ = await publish(url, f"spread-{index}")
            owners.add(redis_get(cluster["redis"], f"meeting:spread-{index}:sfu"))
            await pc.close()
        assert owners == set(cluster["sfus"]), owners

        # kill -9 the SFU of "alpha": its publisher leaves the meeting, and a new WHIP session for
        # "alpha" lands on the other node, with media, as soon as the death is seen.
        killed_at = time.time()
        cluster["sfus"][owner]["process"].kill()
        survivor = next(name for name in cluster["sfus"] if name != owner)
        await publisher.close()
        await player.close()
        republished = None
        while time.time() - killed_at < 10:
            try:
                republished, _ = await publish(url, "alpha")
                break
            except AssertionError:
                await asyncio.sleep(0.1)
        assert republished, "no new WHIP session for the meeting after its SFU died"
        assert answer_port(republished.remoteDescription.sdp) == cluster["sfus"][survivor]["udp"]
        player, _, frames, _ = await play(url, "alpha")
        await asyncio.wait_for(frames.get(), 15)
        media_back = time.time() - killed_at
        print(f"measured: SFU kill -9 -> frames again through the other SFU in {media_back:.2f} s")
        assert redis_get(cluster["redis"], "meeting:alpha:sfu") == survivor
        await republished.close()
        await player.close()
    asyncio.run(scenario())


@pytest.mark.timeout(180)
def test_browsers_rebuild_their_media_on_the_new_sfu_after_a_kill(cluster):
    from test_browsers_chromium import Browser, receiving_from_everyone, wait_for

    url = cluster["url"]
    ada, bob = Browser("cluster-ada"), Browser("cluster-bob")
    try:
        ada.open(f"{url}/m/failover?name=Ada")
        bob.open(f"{url}/m/failover?name=Bob")
        ada_id, bob_id = wait_for(ada.participant_id, 20), wait_for(bob.participant_id, 20)
        assert ada_id and bob_id
        assert wait_for(lambda: receiving_from_everyone(ada, [bob_id]) and receiving_from_everyone(bob, [ada_id]), 40)
        # State the SFU's death must not touch: Bob muted his microphone.
        from selenium.webdriver.common.by import By
        bob.driver.find_element(By.ID, "toggle-mic").click()

        def bob_muted():
            return any(p["id"] == bob_id and p["audioMuted"] for p in ada.js("return window.parley.participants"))
        assert wait_for(bob_muted, 10)
        owner = redis_get(cluster["redis"], "meeting:failover:sfu")
        killed_at = time.time()
        cluster["sfus"][owner]["process"].kill()

        def decoding_again():
            stats = [browser.stats() for browser in (ada, bob)]
            frames = [s.get(other, {}).get("framesDecoded", 0) for s, other in zip(stats, (bob_id, ada_id))]
            return all(f > 0 for f in frames) and all(b.js("return window.parley.mediaRebuilds || 0") >= 1 for b in (ada, bob))

        assert wait_for(decoding_again, 30), "the browsers did not get media back through the other SFU"
        media_back = time.time() - killed_at
        print(f"measured: SFU kill -9 -> both browsers decoding again in {media_back:.2f} s")
        survivor = next(name for name in cluster["sfus"] if name != owner)
        assert redis_get(cluster["redis"], "meeting:failover:sfu") == survivor
        # The meeting itself never noticed: same participants, nobody left, Bob still muted.
        assert {p["id"] for p in ada.js("return window.parley.participants")} == {bob_id}
        assert ada.js("return window.parley.departures") == [] and bob_muted(), "the meeting's state changed with the SFU"
    finally:
        for browser in (ada, bob):
            browser.save_console()
            browser.quit()


def test_redis_unavailable_at_start_is_a_clear_error_not_a_hang():
    nowhere = f"redis://127.0.0.1:{free_port()}"
    for command in (["signal", "--redis", nowhere, "--http-port", str(free_port())],
                    ["sfu", "--redis", nowhere, "--udp-port", str(free_media_ports(4))]):
        started = time.time()
        result = subprocess.run([PARLEY, *command], capture_output=True, text=True, timeout=30)
        assert result.returncode != 0
        assert "Redis unavailable" in result.stderr and "cannot connect" in result.stderr, result.stderr[-500:]
        assert time.time() - started < 10
    result = subprocess.run([PARLEY, "signal", "--redis", "http://127.0.0.1:6379"], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "redis://" in result.stderr


@pytest.mark.timeout(120)
def test_a_killed_signaling_node_loses_no_meeting(cluster):
    secret = tempfile.NamedTemporaryFile("w", delete=False)
    secret.write("ab" * 32)
    secret.close()
    port = free_port()
    args = [PARLEY, "signal", "--redis", f"redis://127.0.0.1:{cluster['redis']}", "--http-port", str(port),
            "--control-token-file", cluster["token"], "--secret-file", secret.name, "--no-adhoc-meetings",
            "--web-root", os.path.join(ROOT, "Web")]
    base = f"http://127.0.0.1:{port}"

    def call(method, path, body=None, token=None):
        request = urllib.request.Request(base + path, data=json.dumps(body).encode() if body is not None else None, method=method,
                                         headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    first = Process("signal-first", args)
    try:
        assert wait_port(port)
        status, created = call("POST", "/api/meetings", {"id": "durable", "password": "still here", "waitingRoom": True})
        assert status == 201
        assert call("PATCH", "/api/meetings/durable", {"locked": True}, token=created["hostToken"])[0] == 200
        time.sleep(0.3)
    finally:
        first.kill()
        first.stop()
    second = Process("signal-second", args)
    try:
        assert wait_port(port)
        status, public = call("GET", "/api/meetings/durable")
        assert status == 200 and public["hasPassword"] and public["locked"] and public["waitingRoom"], public
        # The host token from before the kill still works (same secret), and the rules still hold.
        assert call("POST", "/api/meetings/durable/tokens", {"name": "Eve", "password": "still here"})[1]["error"] == "locked"
        assert call("PATCH", "/api/meetings/durable", {"locked": False}, token=created["hostToken"])[0] == 200
        assert call("POST", "/api/meetings/durable/tokens", {"name": "Eve", "password": "wrong"})[1]["error"] == "wrong-password"
        status, issued = call("POST", "/api/meetings/durable/tokens", {"name": "Ada", "password": "still here"})
        assert status == 201 and issued["token"]
        assert call("GET", "/api/meetings/nowhere")[0] == 404
    finally:
        second.stop()
        os.unlink(secret.name)


@pytest.mark.timeout(120)
def test_the_cluster_rides_through_a_redis_restart():
    folder = tempfile.mkdtemp(prefix="parley-redis-restart-")
    with open(os.path.join(folder, "token"), "w") as f:
        f.write("cluster-control-token-0123456789")
    redis_port = free_port()
    redis_args = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                  "--appendfsync", "always", "--dir", folder]
    redis = Process("redis-restart", redis_args)
    processes = [redis]
    try:
        assert wait_port(redis_port)
        url = f"redis://127.0.0.1:{redis_port}"
        processes.append(Process("sfu-restart", [PARLEY, "sfu", "--redis", url, "--udp-port", str(free_media_ports(4)),
                                                 "--workers", "1", "--control-token-file", f"{folder}/token"]))
        http_port = free_port()
        processes.append(Process("signal-restart", [PARLEY, "signal", "--redis", url, "--http-port", str(http_port),
                                                    "--control-token-file", f"{folder}/token", "--web-root", os.path.join(ROOT, "Web")]))
        assert wait_port(http_port)
        base = f"http://127.0.0.1:{http_port}"
        assert wait_for_workers(base, 1)

        async def scenario():
            first, _ = await publish(base, "steady")
            await first.close()
            # Redis goes away and comes back (its data kept on disk): heartbeats resume, the meeting
            # keeps its SFU, and new sessions work again without restarting any Parley process.
            redis.kill()
            restarted = Process("redis-restart-2", redis_args)
            processes.append(restarted)
            assert wait_port(redis_port)
            back = time.time()
            published = None
            while time.time() - back < 15 and published is None:
                try:
                    published, _ = await publish(base, "steady")
                except AssertionError:
                    await asyncio.sleep(0.2)
            assert published, "no WHIP session after Redis came back"
            player, _, frames, _ = await play(base, "steady")
            await asyncio.wait_for(frames.get(), 15)
            print(f"measured: Redis restart -> WHIP/WHEP working again {time.time() - back:.2f} s after Redis was back")
            await published.close()
            await player.close()
        asyncio.run(scenario())
    finally:
        for process in reversed(processes):
            process.stop()
