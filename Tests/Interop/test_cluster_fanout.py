"""One meeting spread over two signaling nodes (issue 5): a real redis-server, two `parley sfu` and
two `parley signal` processes. Participants connected to different nodes see each other's joins,
media, mutes, chat and host actions (the Redis channel meeting:{id}); concurrent first joins
through both nodes land on one SFU; the cross-node message latency is measured; and without sticky
routing (nginx round robin), kill -9 of a signaling node: its clients take their participant back
through the other node — same id, media never stopped, nobody sees them leave, even in a locked
meeting."""
import asyncio
import json
import os
import socket
import subprocess
import time
import urllib.request

import aiohttp
import pytest
from selenium.webdriver.common.by import By

from conftest import PARLEY, ROOT, free_media_ports, free_port
from test_browsers_chromium import Browser, receiving_from_everyone, wait_for
from test_cluster_sfus import Process, answer_port, health, redis_get, wait_for_workers, wait_port
from test_cluster_signaling import cluster_folder, nginx_config, redis_command
from test_whip_whep_aiortc import http, play, publish


@pytest.fixture
def two_of_each():
    folder = cluster_folder("parley-fanout-")
    redis_port = free_port()
    redis_args = redis_command(redis_port)
    processes = [Process("fanout-redis", redis_args)]
    try:
        assert wait_port(redis_port)
        redis = f"redis://127.0.0.1:{redis_port}"
        sfus = {}
        for name in ("sfu-a", "sfu-b"):
            sfus[name] = free_media_ports(4)
            processes.append(Process(f"fanout-{name}", [PARLEY, "sfu", "--redis", redis, "--node-id", name, "--udp-port", str(sfus[name]),
                                                        "--announce-ip", "127.0.0.1", "--workers", "1",
                                                        "--control-token-file", f"{folder}/control-token"]))
        nodes = {}
        for name in ("signal-1", "signal-2"):
            port = free_port()
            nodes[name] = {"port": port, "url": f"http://127.0.0.1:{port}", "process": Process(f"fanout-{name}", [
                PARLEY, "signal", "--redis", redis, "--node-id", name, "--http-port", str(port), "--control-token-file", f"{folder}/control-token",
                "--secret-file", f"{folder}/secret", "--web-root", os.path.join(ROOT, "Web"), "--log-level", "debug"])}
            processes.append(nodes[name]["process"])
        for node in nodes.values():
            assert wait_port(node["port"])
            assert wait_for_workers(node["url"], 2), "a signaling node never saw both SFU nodes"
        yield {"folder": folder, "redis": redis_port, "redis_args": redis_args, "sfus": sfus, "nodes": nodes, "processes": processes}
    finally:
        for process in reversed(processes):
            process.stop()


def api(url, method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + path, data=json.dumps(body).encode() if body is not None else None, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def click(browser, selector):
    """Clicks in the page (the People panel re-renders on every update, so no stale element)."""
    assert wait_for(lambda: browser.js(f"const b = document.querySelector({json.dumps(selector)}); if (b) b.click(); return !!b;"), 10), selector


def chat(browser, text):
    browser.js(f"document.getElementById('chat-input').value = {json.dumps(text)}; document.getElementById('chat-form').requestSubmit();")


def chat_log(browser):
    return browser.js("return document.getElementById('chat-log').textContent")


def participant(browser, participant_id):
    return browser.js(f"return window.parley.participants.find((p) => p.id === {json.dumps(participant_id)}) || null")


@pytest.mark.timeout(240)
def test_browsers_on_two_signaling_nodes_share_one_meeting(two_of_each):
    one, two = two_of_each["nodes"]["signal-1"]["url"], two_of_each["nodes"]["signal-2"]["url"]
    created = api(one, "POST", "/api/meetings", {"id": "spread", "password": "pw for all", "waitingRoom": True})
    host, guest = Browser("fanout-host"), Browser("fanout-guest")
    try:
        # The host through node 1, the guest through node 2 (its invite link, pointed at node 2).
        host.open(created["hostURL"].replace("#", "?name=Host#"))
        assert wait_for(host.participant_id, 20)
        guest.open(created["inviteURL"].replace(one, two) + "&name=Guest")
        assert wait_for(lambda: len(host.js("return window.parley.waiting")) == 1, 20), "the host on node 1 never saw the guest waiting on node 2"
        host.driver.find_element(By.ID, "toggle-people").click()
        waiting_id = host.js("return window.parley.waiting[0].id")
        click(host, f'#people button[data-action="admit"][data-participant="{waiting_id}"]')
        assert wait_for(lambda: guest.participant_id() == waiting_id, 15), "the host's admit on node 1 did not let the guest in on node 2"
        host_id = host.participant_id()
        assert health(one)["connections"] == 1 and health(two)["connections"] == 1
        assert wait_for(lambda: receiving_from_everyone(host, [waiting_id]) and receiving_from_everyone(guest, [host_id]), 40), \
            "no media between participants of different signaling nodes"

        # Chat both ways.
        chat(guest, "hello from node 2")
        assert wait_for(lambda: "hello from node 2" in chat_log(host), 10)
        chat(host, "hello from node 1")
        assert wait_for(lambda: "hello from node 1" in chat_log(guest), 10)
        # The guest's own mute reaches the host; the host's mute reaches the guest's client.
        guest.driver.find_element(By.ID, "toggle-camera").click()
        assert wait_for(lambda: (participant(host, waiting_id) or {}).get("videoMuted") is True, 10)
        click(host, f'#people button[data-action="mute-audio"][data-participant="{waiting_id}"]')
        assert wait_for(lambda: "muted you" in guest.text("banner"), 10), "the host's mute did not reach the guest on the other node"
        assert wait_for(lambda: (participant(host, waiting_id) or {}).get("audioMuted") is True, 10)
        # A host action on node 1 that removes the guest on node 2.
        click(host, f'#people button[data-action="remove"][data-participant="{waiting_id}"]')
        assert wait_for(lambda: guest.visible("goodbye") and "removed" in guest.text("goodbye").lower(), 15)
        assert wait_for(lambda: waiting_id in host.js("return window.parley.departures"), 10)
        assert wait_for(lambda: health(two)["connections"] == 0, 10)
    finally:
        for browser in (host, guest):
            browser.save_console()
            browser.quit()


@pytest.mark.timeout(180)
def test_whip_and_whep_through_either_node_and_concurrent_first_joins_agree(two_of_each):
    one, two = two_of_each["nodes"]["signal-1"]["url"], two_of_each["nodes"]["signal-2"]["url"]

    async def scenario():
        # Published through node 2, played through node 1.
        publisher, location = await publish(two, "cross")
        player, _, frames, _ = await play(one, "cross")
        width, _, _ = await asyncio.wait_for(frames.get(), 15)
        assert width == 320
        # The publisher is a participant node 1 knows about too, and node 1 can end its session.
        async with aiohttp.ClientSession() as session:
            socket_one = await session.ws_connect(f"ws://127.0.0.1:{two_of_each['nodes']['signal-1']['port']}/ws?meeting=cross")
            await socket_one.send_json({"type": "join", "meeting": "cross", "name": "Watcher"})
            joined = await next_of_type(socket_one, "joined")
            assert [p["client"] for p in joined["participants"]] == ["whip"]
            status, _, _ = await asyncio.to_thread(http, "DELETE", one + location)
            assert status == 200, "a WHIP session made through node 2 could not be ended through node 1"
            left = await next_of_type(socket_one, "participant-left")
            assert left["participantId"] == joined["participants"][0]["id"]
            status, _, _ = await asyncio.to_thread(http, "DELETE", two + location)
            assert status == 404
            await socket_one.close()
        await publisher.close()
        await player.close()

        # First joins of new meetings through both nodes at once: one SFU each time.
        for index in range(8):
            first, second = await asyncio.gather(publish(one, f"race-{index}"), publish(two, f"race-{index}"))
            ports = {answer_port(pc.remoteDescription.sdp) for pc, _ in (first, second)}
            assert len(ports) == 1, f"race-{index} went to two SFUs: {ports}"
            for pc, _ in (first, second):
                await pc.close()
    asyncio.run(scenario())


async def next_of_type(ws, kind, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        message = await asyncio.wait_for(ws.receive_json(), max(0.1, deadline - time.monotonic()))
        if message.get("type") == kind:
            return message
        assert message.get("type") != "error", f"waiting for {kind}, the server said {message}"


@pytest.mark.timeout(120)
def test_cross_node_message_latency(two_of_each):
    ports = {name: node["port"] for name, node in two_of_each["nodes"].items()}
    count = 400

    async def scenario():
        async with aiohttp.ClientSession() as session:
            async def member(port, name):
                ws = await session.ws_connect(f"ws://127.0.0.1:{port}/ws?meeting=latency")
                await ws.send_json({"type": "join", "meeting": "latency", "name": name})
                await next_of_type(ws, "joined")
                return ws
            sender = await member(ports["signal-1"], "Sender")
            same_node = await member(ports["signal-1"], "Near")
            other_node = await member(ports["signal-2"], "Far")

            async def collect(ws):
                latencies = {}
                while len(latencies) < count:
                    message = await asyncio.wait_for(ws.receive_json(), 20)
                    if message.get("type") == "chat" and message["text"].startswith("probe "):
                        _, index, sent = message["text"].split()
                        latencies[int(index)] = time.perf_counter() - float(sent)
                return latencies
            collectors = [asyncio.create_task(collect(ws)) for ws in (same_node, other_node)]
            for index in range(count):
                await sender.send_json({"type": "chat", "text": f"probe {index} {time.perf_counter():.6f}"})
                await asyncio.sleep(0.005)
            near, far = await asyncio.gather(*collectors)
            for ws in (sender, same_node, other_node):
                await ws.close()
            return near, far

    near, far = asyncio.run(scenario())
    assert sorted(far) == list(range(count)), "messages lost between signaling nodes"

    def percentile(values, share):
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000
    print(f"measured: chat latency, {count} messages — same node p50 {percentile(near.values(), 0.5):.2f} ms "
          f"p99 {percentile(near.values(), 0.99):.2f} ms; across nodes (Redis meeting:{{id}}) p50 {percentile(far.values(), 0.5):.2f} ms "
          f"p99 {percentile(far.values(), 0.99):.2f} ms")


@pytest.mark.timeout(240)
def test_clients_resume_through_another_node_without_sticky_routing(two_of_each):
    nodes = two_of_each["nodes"]
    folder = two_of_each["folder"]
    upstreams = [nodes["signal-1"]["port"], nodes["signal-2"]["port"]]
    config_path = nginx_config(free_port(), upstreams, folder)
    with open(config_path) as f:
        config = f.read()
    # Round robin: no meeting affinity, so a meeting's participants land on either node.
    config = config.replace("hash $parley_meeting consistent;", "")
    listen = int(config.split("listen 127.0.0.1:")[1].split(";")[0])
    with open(config_path, "w") as f:
        f.write(config)
    nginx = subprocess.Popen(["nginx", "-c", config_path, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    browsers = []
    try:
        assert wait_port(listen)
        url = f"http://127.0.0.1:{listen}"
        created = api(url, "POST", "/api/meetings", {"id": "roaming"})
        host, guest = Browser("roam-host"), Browser("roam-guest")
        browsers += [host, guest]
        host.open(created["hostURL"].replace("#", "?name=Host#"))
        assert wait_for(host.participant_id, 20)
        guest.open(f"{url}/m/roaming?name=Guest")
        assert wait_for(guest.participant_id, 20)
        ids = {"host": host.participant_id(), "guest": guest.participant_id()}
        assert wait_for(lambda: receiving_from_everyone(host, [ids["guest"]]) and receiving_from_everyone(guest, [ids["host"]]), 40)
        # Locked: nobody new gets in, but those inside keep their place through a failover.
        api(url, "PATCH", "/api/meetings/roaming", {"locked": True}, token=created["hostToken"])
        assert wait_for(lambda: host.js("return window.parley.meetingState.locked") is True, 10)

        counts = {name: health(node["url"])["connections"] for name, node in nodes.items()}
        victim = max(counts, key=counts.get)
        survivor = next(name for name in nodes if name != victim)
        print(f"connections before the kill: {counts}; killing {victim}")
        frames_before = {name: browser.stats() for name, browser in (("host", host), ("guest", guest))}
        killed_at = time.time()
        nodes[victim]["process"].kill()
        assert wait_for(lambda: health(nodes[survivor]["url"])["connections"] == 2, 20), "the clients did not come back through the other node"
        resumed_after = time.time() - killed_at
        for browser in (host, guest):
            assert browser.js("return window.parley.signalingReconnects || 0") == browser.js("return window.parley.signalingResumes || 0"), \
                "a reconnect made a new participant instead of resuming"
            assert browser.visible("room") and not browser.visible("lobby") and not browser.visible("goodbye")
        assert {"host": host.participant_id(), "guest": guest.participant_id()} == ids, "participant ids changed"
        assert host.js("return window.parley.departures") == [] and guest.js("return window.parley.departures") == [], \
            "someone saw a participant leave during the failover"
        assert host.js("return window.parley.role") == "host"
        assert guest.js("return window.parley.mediaRebuilds || 0") == 0, "the media connection was rebuilt"

        # Media never stopped: frames kept being decoded on both sides across the failover.
        def advanced():
            for name, browser, other in (("host", host, ids["guest"]), ("guest", guest, ids["host"])):
                now = browser.stats().get(other, {}).get("framesDecoded", 0)
                if now <= frames_before[name].get(other, {}).get("framesDecoded", 0) + 30:
                    return False
            return True
        assert wait_for(advanced, 20), "media stopped across the signaling failover"
        print(f"measured: signaling node kill -9 (no sticky routing) -> every client resumed its participant through the other node "
              f"in {resumed_after:.2f} s, media uninterrupted")
        chat(guest, "after the failover")
        assert wait_for(lambda: "after the failover" in chat_log(host), 10)
        # Still locked for newcomers.
        with pytest.raises(urllib.error.HTTPError) as refused:
            api(url, "POST", "/api/meetings/roaming/tokens", {"name": "Latecomer"})
        assert refused.value.code == 403
    finally:
        for browser in browsers:
            browser.save_console()
            browser.quit()
        nginx.terminate()
        nginx.wait(timeout=10)


@pytest.mark.timeout(120)
def test_a_redis_that_lost_its_data_is_refilled_by_the_nodes(two_of_each):
    """Redis restarted empty (no persistence): the signaling nodes write back who is connected
    through them, the SFU nodes claim back their meetings; the meeting goes on."""
    nodes = two_of_each["nodes"]
    ports = {name: node["port"] for name, node in nodes.items()}

    async def scenario():
        publisher, _ = await publish(nodes["signal-1"]["url"], "amnesia")
        sfu_port = answer_port(publisher.remoteDescription.sdp)
        async with aiohttp.ClientSession() as session:
            async def member(port, name):
                ws = await session.ws_connect(f"ws://127.0.0.1:{port}/ws?meeting=amnesia")
                await ws.send_json({"type": "join", "meeting": "amnesia", "name": name})
                return ws, (await next_of_type(ws, "joined"))["participantId"]
            (near, near_id), (far, far_id) = await member(ports["signal-1"], "Near"), await member(ports["signal-2"], "Far")

            two_of_each["processes"][0].kill()
            restarted = Process("fanout-redis-2", two_of_each["redis_args"])
            two_of_each["processes"].append(restarted)
            assert wait_port(two_of_each["redis"])
            back = time.time()
            # Chat still crosses nodes, between the participants who were in before.
            delivered = None
            while time.time() - back < 15 and delivered is None:
                await near.send_json({"type": "chat", "text": "anyone still there?"})
                try:
                    delivered = await next_of_type(far, "chat", timeout=0.5)
                except asyncio.TimeoutError:
                    pass
            assert delivered and delivered["from"] == near_id, "chat stopped crossing nodes after Redis lost its data"
            refilled = time.time() - back
            # A newcomer through node 2 sees everyone who was in, and the meeting kept its SFU.
            newcomer, _ = await member(ports["signal-2"], "Newcomer")
            await newcomer.close()
            counter = await session.ws_connect(f"ws://127.0.0.1:{ports['signal-2']}/ws?meeting=amnesia")
            await counter.send_json({"type": "join", "meeting": "amnesia", "name": "Counter"})
            joined = await next_of_type(counter, "joined")
            ids = {p["id"] for p in joined["participants"]}
            assert {near_id, far_id} <= ids and any(p["client"] == "whip" for p in joined["participants"]), joined["participants"]
            # The SFU claims its meeting back with its first heartbeat to the new Redis (signaling's
            # state may come back first: chat above needs only that).
            owner = wait_for(lambda: redis_get(two_of_each["redis"], "meeting:amnesia:sfu"), 10)
            assert owner, "the SFU did not claim its meeting back"
            second, _ = await publish(nodes["signal-2"]["url"], "amnesia")
            assert answer_port(second.remoteDescription.sdp) == sfu_port, "the meeting moved to another SFU after Redis lost its data"
            print(f"measured: Redis restarted empty -> state written back, chat crossing nodes again {refilled:.2f} s after Redis was back")
            for ws in (near, far, counter):
                await ws.close()
            await second.close()
        await publisher.close()
    asyncio.run(scenario())
