"""When the network blocks UDP (issue 6): the namespace's firewall drops every UDP packet to the
SFU's ports, and two Chromium instances still meet — over ICE-TCP (RFC 6544: the SFU's passive
TCP candidate on the same port, packets framed per RFC 4571), and through a real coturn over TCP
with the short-lived credentials signaling hands out (TURN REST API scheme) when ICE-TCP is off."""
import os
import socket
import subprocess
import time

import pytest

from conftest import ARTIFACTS, Server, free_port, stop_process
from test_browsers_chromium import Browser, meet, selected_local_candidate, wait_for


def block_udp(ports, add=True):
    subprocess.run(["iptables", "-A" if add else "-D", "INPUT", "-p", "udp", "--dport", f"{ports[0]}:{ports[1]}", "-j", "DROP"], check=True)


def video_keeps_flowing(browsers, ids, seconds=3):
    """Frames each browser decoded from the other over `seconds`."""
    before = [b.stats()[ids[1 - n]]["framesDecoded"] for n, b in enumerate(browsers)]
    wait_for(lambda: False, seconds, interval=1)
    after = [b.stats()[ids[1 - n]]["framesDecoded"] for n, b in enumerate(browsers)]
    return [a - b for a, b in zip(after, before)]


@pytest.mark.timeout(180)
def test_with_udp_blocked_the_call_connects_over_ice_tcp(parley):
    ports = (parley.udp_port, parley.udp_port + 1)
    block_udp(ports)
    browsers = []
    try:
        browsers = [Browser("tcp-a"), Browser("tcp-b")]
        ids = meet(browsers, f"{parley.url}/m/tcp-only")
        assert [selected_local_candidate(b, "protocol") for b in browsers] == ["tcp", "tcp"]
        frames = video_keeps_flowing(browsers, ids)
        assert all(f > 20 for f in frames), f"video stalled over TCP: {frames} frames in 3 s"
        print(f"\nmeasured: over ICE-TCP with UDP blocked, frames decoded in 3 s: {frames}")
    finally:
        block_udp(ports, add=False)
        for browser in browsers:
            browser.quit()


class Coturn:
    """A real coturn on 127.0.0.1 with the TURN REST API secret; relays from a known port range."""

    def __init__(self, secret):
        self.port = free_port()
        self.relay_ports = (49400, 49500)
        self.log_path = os.path.join(ARTIFACTS, "coturn.log")
        self.process = subprocess.Popen(
            ["turnserver", "-n", "--listening-ip=127.0.0.1", f"--listening-port={self.port}", "--relay-ip=127.0.0.1",
             f"--min-port={self.relay_ports[0]}", f"--max-port={self.relay_ports[1]}", "--use-auth-secret",
             f"--static-auth-secret={secret}", "--realm=parley.test", "--fingerprint", "--no-tls", "--no-dtls", "--no-cli",
             "--allow-loopback-peers", "--no-multicast-peers", f"--log-file={self.log_path}", "--simple-log", "--no-stdout-log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"coturn did not start; see {self.log_path}")

    def stop(self):
        stop_process(self.process)


@pytest.mark.timeout(180)
def test_with_udp_blocked_and_no_ice_tcp_the_call_relays_through_coturn(tmp_path):
    secret = "turn-shared-secret-" + os.urandom(8).hex()
    (tmp_path / "turn-secret").write_text(secret)
    turn = Coturn(secret)
    server = None
    browsers = []
    rules = []
    try:
        # Only TURN over TCP reaches out: UDP to coturn's port and to the SFU is dropped, except
        # what coturn relays from its relay ports.
        server = Server("turn-relay", extra_args=("--no-ice-tcp", "--turn-url", f"turn:127.0.0.1:{turn.port}?transport=tcp",
                                                  "--turn-secret-file", str(tmp_path / "turn-secret")))
        sfu_ports = f"{server.udp_port}:{server.udp_port + 1}"
        rules = [["INPUT", "-p", "udp", "--dport", str(turn.port), "-j", "DROP"],
                 ["INPUT", "-p", "udp", "--dport", sfu_ports, "!", "--sport", f"{turn.relay_ports[0]}:{turn.relay_ports[1]}", "-j", "DROP"]]
        for rule in rules:
            subprocess.run(["iptables", "-A", *rule], check=True)
        browsers = [Browser("turn-a"), Browser("turn-b")]
        ids = meet(browsers, f"{server.url}/m/relayed", timeout=60)
        assert [selected_local_candidate(b, "candidateType") for b in browsers] == ["relay", "relay"]
        assert [selected_local_candidate(b, "relayProtocol") for b in browsers] == ["tcp", "tcp"]
        frames = video_keeps_flowing(browsers, ids)
        assert all(f > 20 for f in frames), f"video stalled through TURN: {frames} frames in 3 s"
        print(f"\nmeasured: relayed through coturn (TURN over TCP, UDP blocked, no ICE-TCP), frames decoded in 3 s: {frames}")
    finally:
        for rule in rules:
            subprocess.run(["iptables", "-D", *rule], capture_output=True)
        for browser in browsers:
            browser.quit()
        if server:
            server.stop()
        turn.stop()


def closed_by_server(connection, within=2.0):
    """True if the server closes `connection` within `within` seconds (recv returns nothing)."""
    connection.settimeout(within)
    try:
        return connection.recv(1) == b""
    except (socket.timeout, TimeoutError):
        return False
    except OSError:
        return True


def test_the_ice_tcp_port_refuses_floods_and_garbage(parley):
    # Not STUN first: the connection is closed (RFC 6544 media starts with connectivity checks).
    garbage = socket.create_connection(("127.0.0.1", parley.udp_port), timeout=5)
    garbage.sendall(bytes([0, 4, 0x80, 0x60, 0, 1]))
    assert closed_by_server(garbage), "a connection that began with RTP stayed open"
    garbage.close()
    # One address holds at most 32 connections per worker; more are closed at once.
    held = [socket.create_connection(("127.0.0.1", parley.udp_port), timeout=5) for _ in range(32)]
    extra = [socket.create_connection(("127.0.0.1", parley.udp_port), timeout=5) for _ in range(4)]
    try:
        assert all(closed_by_server(c) for c in extra), "connections past the per-address limit stayed open"
        assert not any(closed_by_server(c, within=0.2) for c in held[:4]), "connections within the limit were closed"
        # A framed packet that claims more than it sends waits for the rest, harming nothing.
        held[0].sendall(bytes([0xFF, 0xFF, 0x00]))
        assert parley.health()["status"] == "ok"
    finally:
        for connection in held + extra:
            connection.close()
