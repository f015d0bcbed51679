"""A participant's network changes mid-call (issue 6): its Chromium runs in a network namespace of
its own, joined to the test's namespace by veth pairs — network "a" (10.77.1.0/24) and network
"b" (10.77.2.0/24), like Wi-Fi and cellular, plus "ctl" (10.77.9.0/24) that only WebDriver uses.
Parley listens on 10.77.0.1 (on the test namespace's lo), reached through the client's default
route; UDP on the WebDriver network is dropped, so media takes network a or b.

The client starts on network a. Network b comes up, then a goes down: the client's address
changes. The web client sees the flow from the SFU stop, finds its signaling socket dead too (a
ping), replaces it (the participant resumed) and starts a fresh peer connection over network b
(Chromium would hold on to the dead pair of an ICE restart for seconds); media flows again both
ways. The media gap each way is measured and printed; the participant never left."""
import subprocess
import time

import pytest

from conftest import Server, stop_process
from test_browsers_chromium import Browser, receiving_from_everyone, selected_local_candidate, wait_for

SERVER_ADDRESS = "10.77.0.1"


def run(*args):
    subprocess.run(args, check=True, capture_output=True)


class ClientNetwork:
    """chromedriver (and the Chromium it starts) in a new network namespace with networks a, b, ctl."""

    def __init__(self, driver_port=9515):
        self.driver = subprocess.Popen(["unshare", "-n", "chromedriver", f"--port={driver_port}", "--allowed-ips=10.77.9.1", "--allowed-origins=*"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = str(self.driver.pid)
        self.url = f"http://10.77.9.2:{driver_port}"
        time.sleep(0.3)
        run("ip", "addr", "add", f"{SERVER_ADDRESS}/32", "dev", "lo")
        self.inside("ip", "link", "set", "lo", "up")
        for name, subnet in (("ctl", 9), ("a", 1), ("b", 2)):
            run("ip", "link", "add", f"pv{name}0", "type", "veth", "peer", "name", f"pv{name}1", "netns", self.pid)
            run("ip", "addr", "add", f"10.77.{subnet}.1/24", "dev", f"pv{name}0")
            run("ip", "link", "set", f"pv{name}0", "up")
            self.inside("ip", "addr", "add", f"10.77.{subnet}.2/24", "dev", f"pv{name}1")
        for name in ("ctl", "a"):
            self.inside("ip", "link", "set", f"pv{name}1", "up")
        self.inside("ip", "route", "add", "default", "via", "10.77.1.1", "dev", "pva1")
        # The WebDriver network carries no media: Chromium gathers a candidate there too.
        for chain, direction in (("OUTPUT", "-o"), ("INPUT", "-i")):
            self.inside("iptables", "-A", chain, direction, "pvctl1", "-p", "udp", "-j", "DROP")

    def inside(self, *args):
        run("nsenter", "-t", self.pid, "-n", *args)

    def bring_up_b(self):
        self.inside("ip", "link", "set", "pvb1", "up")
        self.inside("ip", "route", "add", "default", "via", "10.77.2.1", "dev", "pvb1", "metric", "100")

    def take_down_a(self):
        """Network a is gone, as when Wi-Fi drops: its link goes down and its address with it."""
        self.inside("ip", "link", "set", "pva1", "down")
        self.inside("ip", "addr", "flush", "dev", "pva1")

    def close(self):
        stop_process(self.driver)  # its namespace goes, and the veth pairs with it
        subprocess.run(["ip", "addr", "del", f"{SERVER_ADDRESS}/32", "dev", "lo"], capture_output=True)


def longest_gap(samples, since):
    """Longest time (s) between two increases of a frame counter, among the gaps ending after `since`."""
    increases = [t for (t, frames), (_, previous) in zip(samples[1:], samples) if frames > previous]
    gaps = [b - a for a, b in zip(increases, increases[1:]) if b > since]
    return max(gaps) if gaps else None


@pytest.mark.timeout(240)
def test_the_call_survives_the_clients_address_changing_through_an_ice_restart():
    network = ClientNetwork()
    # Bound to that one address, so its answers come from the address the browsers talk to.
    server = Server("path-change", announce_ip=SERVER_ADDRESS, http_host="0.0.0.0", extra_args=("--udp-host", SERVER_ADDRESS))
    browsers = []
    try:
        origin = f"http://{SERVER_ADDRESS}:{server.http_port}"
        url = f"{origin}/m/moving"
        # Not localhost: the camera needs the origin treated as secure, as HTTPS would be.
        secure = f"--unsafely-treat-insecure-origin-as-secure={origin}"
        staying = Browser("path-staying", extra_flags=[secure])
        browsers.append(staying)
        moving = Browser("path-moving", remote=network.url,
                         extra_flags=[secure])
        browsers.append(moving)
        staying.open(f"{url}?name=Staying")
        moving.open(f"{url}?name=Moving")
        ids = [wait_for(b.participant_id, 20) for b in browsers]
        assert all(ids)
        staying_id, moving_id = ids
        assert wait_for(lambda: receiving_from_everyone(staying, [moving_id]) and receiving_from_everyone(moving, [staying_id]), 40)
        assert selected_local_candidate(moving, "address") == "10.77.1.2"

        samples = {"to the moving client": [], "from the moving client": []}

        def sample():
            now = time.monotonic()
            samples["to the moving client"].append((now, moving.stats().get(staying_id, {}).get("framesDecoded", 0)))
            samples["from the moving client"].append((now, staying.stats().get(moving_id, {}).get("framesDecoded", 0)))

        for _ in range(10):
            sample()
            time.sleep(0.1)
        network.bring_up_b()
        time.sleep(1)
        network.take_down_a()
        moved_at = time.monotonic()
        moved_wall = time.time()
        while time.monotonic() < moved_at + 20:
            sample()
            recovered = all(longest_gap(s, moved_at) is not None and s[-1][1] > s[-30][1] for s in samples.values() if len(s) > 30)
            if recovered and time.monotonic() > moved_at + 3 and selected_local_candidate(moving, "address") == "10.77.2.2":
                break
            time.sleep(0.1)
        for _ in range(20):
            sample()
            time.sleep(0.1)

        gaps = {direction: longest_gap(s, moved_at) for direction, s in samples.items()}
        assert selected_local_candidate(moving, "address") == "10.77.2.2", f"media did not move to network b (gaps {gaps})"
        for direction, s in samples.items():
            assert s[-1][1] > s[-20][1], f"no video {direction} after the move"
        assert moving.participant_id() == moving_id, "the moving client became someone else"
        assert moving_id not in staying.js("return window.parley.departures"), "the moving client was seen leaving"
        recoveries = moving.js("return (window.parley.iceRestarts ?? 0) + (window.parley.mediaRebuilds ?? 0)")
        assert recoveries >= 1
        print(f"\nmeasured: media gap after the client's address changed: "
              + ", ".join(f"{direction} {gap:.2f} s" for direction, gap in gaps.items())
              + f"; ICE restarts {moving.js('return window.parley.iceRestarts ?? 0')}, "
              f"new peer connections {moving.js('return window.parley.mediaRebuilds ?? 0')}, "
              f"signaling reconnects {moving.js('return window.parley.signalingReconnects ?? 0')}; the client's steps: "
              + ", ".join(f"{e['event']} +{e['at'] / 1000 - moved_wall:.2f} s" for e in moving.js("return window.parley.mediaEvents")
                          if e["at"] / 1000 >= moved_wall - 1))
    finally:
        for browser in browsers:
            browser.quit()
        network.close()
        server.stop()
