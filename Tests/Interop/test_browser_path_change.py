"""A participant's path to the SFU breaks mid-call (issue 6), and the web client's two recoveries
each bring the media back in a test of their own. The participant's Chromium runs in a network
namespace of its own, joined to the test's namespace by veth pairs — network "a" (10.77.1.0/24)
and network "b" (10.77.2.0/24), like Wi-Fi and cellular, plus "ctl" (10.77.9.0/24) that only
WebDriver uses. Parley listens on 10.77.0.1 (on the test namespace's lo), reached through the
client's default route; UDP on the WebDriver network is dropped, so media takes network a or b.

- A fresh peer connection: network b comes up, then a goes down, so the client's address changes.
  The web client sees the flow from the SFU stop, finds its signaling socket dead too (a ping),
  replaces it (the participant resumed) and starts a fresh peer connection over network b
  (Chromium would hold on to the dead pair of an ICE restart for seconds).
- An ICE restart: the client stays on network a, but the flows it had stop getting through to
  the SFU (a firewall or NAT on the way forgot them: everything from the client's sockets of then
  is dropped; new flows pass). The flow from the SFU goes on, so no stall is seen; Chromium's own
  checks go unanswered and it calls the connection `disconnected`. The web client restarts ICE on
  the same peer connection: new credentials, new local sockets, a new pair; the signaling socket
  (its own TCP connection) is fine throughout.

Either way media flows again both ways, counted as frames decoded after the fault; the media gap
each way is measured and printed; the participant never left."""
import contextlib
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

    def sockets(self):
        """The client's UDP sockets on its networks and its TCP connections to the SFU: (protocol,
        local address, local port, remote port)."""
        found = []
        for protocol, flag in (("udp", "-u"), ("tcp", "-t")):
            out = subprocess.run(["nsenter", "-t", self.pid, "-n", "ss", "-Hn", flag, "-a"], check=True, capture_output=True, text=True).stdout
            for line in out.splitlines():
                fields = line.split()
                local, remote = fields[3], fields[4]
                address, _, port = local.rpartition(":")
                if not address.startswith("10.77."):
                    continue
                if protocol == "tcp" and not remote.startswith(SERVER_ADDRESS + ":"):
                    continue
                found.append((protocol, address, int(port), int(remote.rpartition(":")[2]) if remote[-1] != "*" else None))
        return found

    def close(self):
        # Its namespace goes with the driver, but not at once: the veth pairs go now, so that the
        # next test can make them again.
        for name in ("ctl", "a", "b"):
            subprocess.run(["ip", "link", "del", f"pv{name}0"], capture_output=True)
        stop_process(self.driver)
        subprocess.run(["ip", "addr", "del", f"{SERVER_ADDRESS}/32", "dev", "lo"], capture_output=True)


class Firewall:
    """Rules in the test's namespace (where the SFU is) that drop what the client's sockets of now
    send: a middlebox that forgot those flows. Sockets the client opens later get through."""

    def __init__(self):
        self.rules = []

    def drop_flows_from(self, sockets):
        for protocol, address, port, _ in sockets:
            rule = ["INPUT", "-s", address, "-p", protocol, "--sport", str(port), "-j", "DROP"]
            run("iptables", "-A", *rule)
            self.rules.append(rule)

    def close(self):
        for rule in self.rules:
            subprocess.run(["iptables", "-D", *rule], capture_output=True)


def longest_gap(samples, since):
    """Longest time (s) between two increases of a frame counter, among the gaps ending after `since`;
    a gap still open at the last sample counts up to it."""
    increases = [t for (t, _, frames, _), (_, _, previous, _) in zip(samples[1:], samples) if frames > previous]
    ends = increases + [samples[-1][0]] if increases and increases[-1] < samples[-1][0] else increases
    gaps = [b - a for a, b in zip(ends, ends[1:]) if b > since]
    return max(gaps) if gaps else None


def media_since(samples, since):
    """(frames, audio packets) decoded on the peer connection in use now since `since`: the rises
    between its samples from then on (a counter starts afresh with a new peer connection, and
    drops when a track moves to another transceiver)."""
    current = [s for s in samples if s[0] >= since and s[1] == samples[-1][1]]
    pairs = list(zip(current, current[1:]))
    return sum(max(0, b[2] - a[2]) for a, b in pairs), sum(max(0, b[3] - a[3]) for a, b in pairs)


def media_sample(browser, other):
    """(peer connection number, frames decoded, audio packets received) from `other`, on the peer
    connection in use. The number is the page's own: the same RTCPeerConnection object keeps it."""
    return browser.driver.execute_async_script("""
        const [other, done] = arguments;
        const pc = window.parley.peerConnection;
        if (pc && pc.numberInTest === undefined) pc.numberInTest = window.peerConnectionsSeen = (window.peerConnectionsSeen ?? 0) + 1;
        const number = pc?.numberInTest ?? 0;
        window.parley.stats().then((s) => done([number, s[other]?.framesDecoded ?? 0, s[other]?.audioPacketsReceived ?? 0]), () => done([number, 0, 0]));""", other)


def recovery_counters(browser):
    return browser.js("const p = window.parley; return {iceRestarts: p.iceRestarts ?? 0, mediaRebuilds: p.mediaRebuilds ?? 0, "
                      "signalingReconnects: p.signalingReconnects ?? 0, pathStalls: p.pathStalls ?? 0}")


def ice_credentials(browser, description):
    """The ICE ufrag and password of the peer connection's local or remote description."""
    return browser.js(f"const sdp = window.parley.peerConnection?.{description}?.sdp ?? '';"
                      "return [sdp.match(/a=ice-ufrag:(\\S+)/)?.[1] ?? null, sdp.match(/a=ice-pwd:(\\S+)/)?.[1] ?? null]")


class Call:
    """Staying (in the test's namespace) and Moving (in the client's) in one meeting, receiving each
    other; `sample()` records, each way, the frames and audio packets decoded over time."""

    def __init__(self, network, server):
        self.network, self.server = network, server
        self.browsers = []

    def meet(self, meeting):
        origin = f"http://{SERVER_ADDRESS}:{self.server.http_port}"
        url = f"{origin}/m/{meeting}"
        # Not localhost: the camera needs the origin treated as secure, as HTTPS would be.
        secure = f"--unsafely-treat-insecure-origin-as-secure={origin}"
        self.staying = Browser(f"{meeting}-staying", extra_flags=[secure])
        self.browsers.append(self.staying)
        self.moving = Browser(f"{meeting}-moving", remote=self.network.url, extra_flags=[secure])
        self.browsers.append(self.moving)
        self.staying.open(f"{url}?name=Staying")
        self.moving.open(f"{url}?name=Moving")
        ids = [wait_for(b.participant_id, 20) for b in self.browsers]
        assert all(ids), "not both joined"
        self.staying_id, self.moving_id = ids
        assert wait_for(lambda: receiving_from_everyone(self.staying, [self.moving_id]) and receiving_from_everyone(self.moving, [self.staying_id]), 40), \
            "they do not receive each other"
        self.samples = {"to the moving client": [], "from the moving client": []}

    def sample(self):
        now = time.monotonic()
        self.samples["to the moving client"].append((now, *media_sample(self.moving, self.staying_id)))
        self.samples["from the moving client"].append((now, *media_sample(self.staying, self.moving_id)))

    def peer_connection_number(self, direction):
        return self.samples[direction][-1][1]

    def media_back_since(self, since, frames=20):
        """Whether, each way, `frames` video frames and some audio were decoded since `since`."""
        for s in self.samples.values():
            video, audio = media_since(s, since)
            if video < frames or audio < 1:
                return False
        return True

    def watch_recovery(self, since, turned, back=lambda: True, seconds=25):
        """Samples until `turned()` first holds (the recovery began: its sample's time is returned)
        and media came back after that sample with `back()` holding too, or `seconds` passed; then a
        second more of samples, so the gaps are measured past the recovery."""
        turned_at = None
        while time.monotonic() < since + seconds:
            self.sample()
            if turned_at is None and turned():
                turned_at = self.samples["to the moving client"][-1][0]
            if turned_at is not None and self.media_back_since(turned_at) and back():
                break
            time.sleep(0.1)
        for _ in range(10):
            self.sample()
            time.sleep(0.1)
        return turned_at

    def gaps(self, since):
        return {direction: longest_gap(s, since) for direction, s in self.samples.items()}

    def assert_still_the_same_participant(self):
        assert self.moving.participant_id() == self.moving_id, "the moving client became someone else"
        assert self.moving_id not in self.staying.js("return window.parley.departures"), "the moving client was seen leaving"

    def report(self, what, since, since_wall, extra=""):
        gaps = self.gaps(since)
        counters = recovery_counters(self.moving)
        print(f"\nmeasured: media gap after {what}: "
              + ", ".join(f"{direction} {gap:.2f} s" if gap is not None else f"{direction} none" for direction, gap in gaps.items())
              + f"; ICE restarts {counters['iceRestarts']}, new peer connections {counters['mediaRebuilds']}, "
              f"signaling reconnects {counters['signalingReconnects']}; the client's steps: "
              + ", ".join(f"{e['event']} +{e['at'] / 1000 - since_wall:.2f} s" for e in self.moving.js("return window.parley.mediaEvents")
                          if e["at"] / 1000 >= since_wall - 1) + extra)

    def quit(self):
        for browser in self.browsers:
            browser.quit()


@contextlib.contextmanager
def moving_call(meeting):
    network = ClientNetwork()
    try:
        # Bound to that one address, so its answers come from the address the browsers talk to.
        server = Server(f"path-change-{meeting}", announce_ip=SERVER_ADDRESS, http_host="0.0.0.0", extra_args=("--udp-host", SERVER_ADDRESS))
        call = Call(network, server)
        try:
            call.meet(meeting)
            yield call
        finally:
            call.quit()
            server.stop()
    finally:
        network.close()


@pytest.mark.timeout(240)
def test_after_the_clients_address_changes_a_fresh_peer_connection_brings_the_media_back():
    with moving_call("moving") as call:
        moving = call.moving
        assert selected_local_candidate(moving, "address") == "10.77.1.2"
        before = recovery_counters(moving)
        for _ in range(10):
            call.sample()
            time.sleep(0.1)
        pc_before = call.peer_connection_number("to the moving client")
        staying_pc = call.peer_connection_number("from the moving client")
        call.network.bring_up_b()
        time.sleep(1)
        call.network.take_down_a()
        moved_at, moved_wall = time.monotonic(), time.time()
        # From the new peer connection's first sample on, what it decodes came after the move.
        rebuilt_at = call.watch_recovery(moved_at, turned=lambda: call.peer_connection_number("to the moving client") != pc_before,
                                         back=lambda: selected_local_candidate(moving, "address") == "10.77.2.2")

        gaps = call.gaps(moved_at)
        after = recovery_counters(moving)
        assert call.peer_connection_number("to the moving client") != pc_before, f"the moving client kept its peer connection (gaps {gaps})"
        assert after["mediaRebuilds"] > before["mediaRebuilds"], "no fresh peer connection was counted"
        assert call.peer_connection_number("from the moving client") == staying_pc, "the staying client's peer connection changed too"
        assert selected_local_candidate(moving, "address") == "10.77.2.2", f"media did not move to network b (gaps {gaps})"
        # Frames and audio decoded since the new peer connection was first seen (on it, for the
        # moving client; on the staying client's same one, for the other way).
        for direction, s in call.samples.items():
            video, audio = media_since(s, rebuilt_at)
            assert video >= 20 and audio >= 1, f"media {direction} did not come back after the move: {video} frames, {audio} audio packets"
        call.assert_still_the_same_participant()
        call.report("the client's address changed", moved_at, moved_wall)


@pytest.mark.timeout(240)
def test_when_the_clients_flows_stop_getting_through_an_ice_restart_brings_the_media_back():
    with moving_call("restarting") as call:
        moving = call.moving
        firewall = Firewall()
        try:
            old_port = selected_local_candidate(moving, "port")
            assert selected_local_candidate(moving, "address") == "10.77.1.2"
            before = recovery_counters(moving)
            local_before, remote_before = ice_credentials(moving, "localDescription"), ice_credentials(moving, "remoteDescription")
            assert all(local_before) and all(remote_before)
            for _ in range(10):
                call.sample()
                time.sleep(0.1)
            pc_before = call.peer_connection_number("to the moving client")
            staying_pc = call.peer_connection_number("from the moving client")
            # Everything from the client's media sockets of now is dropped on its way to the SFU (UDP,
            # and ICE-TCP, which Chromium would fall back to); the signaling connection is left alone.
            sockets = [s for s in call.network.sockets() if s[3] != call.server.http_port]
            assert any(s[0] == "udp" and s[2] == old_port for s in sockets), f"the selected pair's socket is not among {sockets}"
            firewall.drop_flows_from(sockets)
            cut_at, cut_wall = time.monotonic(), time.time()
            # Seconds after the cut: what is decoded from the restart on came another way than the cut flows.
            restarted_at = call.watch_recovery(cut_at, turned=lambda: recovery_counters(moving)["iceRestarts"] > before["iceRestarts"])

            gaps = call.gaps(cut_at)
            after = recovery_counters(moving)
            assert after["iceRestarts"] > before["iceRestarts"], f"no ICE restart (gaps {gaps}, counters {after})"
            assert after["mediaRebuilds"] == before["mediaRebuilds"], f"a fresh peer connection instead of (or after) the ICE restart: {after}"
            assert call.peer_connection_number("to the moving client") == pc_before, "the moving client's peer connection is another object"
            assert call.peer_connection_number("from the moving client") == staying_pc, "the staying client's peer connection changed"
            local_after, remote_after = ice_credentials(moving, "localDescription"), ice_credentials(moving, "remoteDescription")
            assert local_after[0] != local_before[0] and local_after[1] != local_before[1], f"the client's ICE credentials stayed {local_before}"
            assert remote_after[0] != remote_before[0] and remote_after[1] != remote_before[1], f"the SFU's ICE credentials stayed {remote_before}"
            assert selected_local_candidate(moving, "address") == "10.77.1.2", "the client left network a"
            assert selected_local_candidate(moving, "port") != old_port, "media still goes from the cut socket"
            # The cut really stopped the client's video for the others…
            assert gaps["from the moving client"] is not None and gaps["from the moving client"] > 1, f"the cut did not stop the video (gaps {gaps})"
            # …and it came back: frames decoded after the restart, on the same peer connection.
            for direction, s in call.samples.items():
                video, audio = media_since(s, restarted_at)
                assert video >= 20 and audio >= 1, f"media {direction} did not come back after the ICE restart: {video} frames, {audio} audio packets"
            call.assert_still_the_same_participant()
            cut = {protocol: sum(s[0] == protocol for s in sockets) for protocol in ("udp", "tcp")}
            call.report("the client's flows were cut", cut_at, cut_wall,
                        f"; cut the flows of {cut['udp']} UDP sockets and {cut['tcp']} TCP connections; "
                        f"media now from local port {selected_local_candidate(moving, 'port')} (was {old_port})")
        finally:
            firewall.close()
