"""Several signaling nodes behind nginx (deploy/nginx.conf, sticky by meeting id): a meeting stays
on one node; when that node is killed, the web clients reconnect through nginx to the other node
with their tokens — no password, no waiting room — see each other again and chat."""
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest
from selenium.webdriver.common.by import By

from conftest import PARLEY, ROOT, free_media_ports, free_port
from test_browsers_chromium import Browser, receiving_from_everyone, wait_for
from test_cluster_sfus import Process, wait_for_workers, wait_port


def nginx_config(listen, upstreams, folder):
    with open(os.path.join(ROOT, "deploy", "nginx.conf")) as f:
        config = f.read()
    config = config.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{listen};")
    config = config.replace("server 127.0.0.1:8081 ", f"server 127.0.0.1:{upstreams[0]} ")
    config = config.replace("server 127.0.0.1:8082 ", f"server 127.0.0.1:{upstreams[1]} ")
    assert str(upstreams[0]) in config and str(upstreams[1]) in config
    # Run as this user with files in the test's folder.
    config = f"pid {folder}/nginx.pid;\nerror_log {folder}/error.log;\n" + config.replace(
        "http {", f"http {{\n    access_log {folder}/access.log;\n    client_body_temp_path {folder}/body;\n"
                  f"    proxy_temp_path {folder}/proxy;\n", 1)
    path = os.path.join(folder, "nginx.conf")
    with open(path, "w") as f:
        f.write(config)
    return path


def cluster_folder(prefix):
    """A folder with the files every node of a test cluster shares: the control token and the secret."""
    folder = tempfile.mkdtemp(prefix=prefix)
    for name, value in (("control-token", "cluster-control-token-0123456789"), ("secret", "cd" * 32)):
        with open(os.path.join(folder, name), "w") as f:
            f.write(value)
    return folder


def redis_command(port):
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


def health(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.timeout(240)
def decoded_frames(browser):
    """Video frames the browser has decoded from everyone else, all together: it keeps counting on
    one peer connection whatever the participants' ids."""
    return sum(entry.get("framesDecoded", 0) for entry in browser.stats().values())


def test_clients_survive_the_death_of_their_signaling_node():
    folder = cluster_folder("parley-cluster-")
    redis_port = free_port()
    processes = [Process("redis2", redis_command(redis_port))]
    browsers = []
    try:
        assert wait_port(redis_port)
        redis = f"redis://127.0.0.1:{redis_port}"
        processes.append(Process("sfu", [PARLEY, "sfu", "--redis", redis, "--udp-port", str(free_media_ports(4)),
                                          "--workers", "1", "--control-token-file", f"{folder}/control-token"]))
        nodes = [free_port(), free_port()]
        signals = {}
        for port in nodes:
            signals[port] = Process(f"signal-{port}", [PARLEY, "signal", "--redis", redis, "--http-port", str(port),
                                                       "--control-token-file", f"{folder}/control-token", "--secret-file", f"{folder}/secret",
                                                       "--web-root", os.path.join(ROOT, "Web"), "--log-level", "debug"])
            processes.append(signals[port])
        for port in nodes:
            assert wait_port(port)
        listen = free_port()
        nginx = subprocess.Popen(["nginx", "-c", nginx_config(listen, nodes, folder), "-g", "daemon off;"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert wait_port(listen)
            url = f"http://127.0.0.1:{listen}"
            assert wait_for_workers(url, 1), "the signaling nodes never saw the SFU node"
            request = urllib.request.Request(url + "/api/meetings", data=json.dumps({"id": "sticky", "password": "pw for all",
                                                                                   "waitingRoom": True}).encode(),
                                             method="POST", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                created = json.loads(response.read())
            host, guest = Browser("cluster-host"), Browser("cluster-guest")
            browsers += [host, guest]
            host.open(created["hostURL"].replace("#", "?name=Host#"))
            assert wait_for(host.participant_id, 20)
            guest.open(created["inviteURL"] + "&name=Guest")
            assert wait_for(lambda: len(host.js("return window.parley.waiting")) == 1, 20)
            host.driver.find_element(By.ID, "toggle-people").click()
            waiting_id = host.js("return window.parley.waiting[0].id")
            host.driver.find_element(By.CSS_SELECTOR, f'#people button[data-action="admit"][data-participant="{waiting_id}"]').click()
            assert wait_for(lambda: guest.participant_id() == waiting_id, 15)
            assert wait_for(lambda: receiving_from_everyone(host, [waiting_id]) and receiving_from_everyone(guest, [host.participant_id()]), 40)

            # Both are on one node (sticky): kill -9 it.
            owner = next(port for port in nodes if health(port)["participants"] == 2)
            other = next(port for port in nodes if port != owner)
            frames_at_kill = {browser: decoded_frames(browser) for browser in (host, guest)}
            killed_at = time.time()
            signals[owner].kill()
            assert wait_for(lambda: all(b.js("return window.parley.signalingReconnects || 0") >= 1 for b in (host, guest)), 30), \
                "the clients did not reconnect"
            assert wait_for(lambda: health(other)["participants"] == 2, 15)
            rejoined = time.time() - killed_at
            host_id, guest_id = host.participant_id(), guest.participant_id()
            # Frames decoded since the kill, not the count from before it (already above zero then).
            assert wait_for(lambda: receiving_from_everyone(host, [guest_id]) and receiving_from_everyone(guest, [host_id])
                            and all(decoded_frames(b) >= frames_at_kill[b] + 30 for b in (host, guest)), 40), \
                "no new frames decoded after the signaling failover"
            media_back = time.time() - killed_at
            print(f"measured: signaling node kill -9 -> both rejoined in {rejoined:.2f} s, media back in {media_back:.2f} s")
            # No password prompt, no waiting room, still the host; chat sent now arrives.
            for browser in (host, guest):
                assert browser.visible("room") and not browser.visible("lobby") and not browser.visible("waiting")
            assert host.js("return window.parley.role") == "host"
            guest.js("document.getElementById('chat-input').value = 'still here?'; document.getElementById('chat-form').requestSubmit();")
            assert wait_for(lambda: "still here?" in host.js("return document.getElementById('chat-log').textContent"), 10)
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
    finally:
        for browser in browsers:
            browser.save_console()
            browser.quit()
        for process in reversed(processes):
            process.stop()
