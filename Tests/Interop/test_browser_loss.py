"""Two Chromium instances keep a clean picture while 5 % of the media packets are lost each way.

The loss is made with iptables inside the test's own network namespace (netem is missing from this
kernel): packets to and from the SFU's UDP ports are dropped at random on arrival (INPUT, so the
sender's sendto does not fail and tell it), and publishers must repair what the SFU asks for
(NACK → RTX) while the SFU repairs what subscribers ask for. With a 100 ms round trip on top, a
user-space relay stands in for netem's delay.
"""
import heapq
import random
import select
import socket
import subprocess
import threading
import time

import pytest

from conftest import Server
from test_browsers_chromium import Browser, meet, wait_for


def drop_udp(ports, probability, add=True):
    for direction in ("--dport", "--sport"):
        subprocess.run(["iptables", "-A" if add else "-D", "INPUT", "-p", "udp", direction, f"{ports[0]}:{ports[1]}",
                        "-m", "statistic", "--mode", "random", "--probability", str(probability), "-j", "DROP"], check=True)


@pytest.mark.timeout(180)
def test_video_survives_five_percent_loss_through_nack_and_rtx(parley):
    ports = (parley.udp_port, parley.udp_port + 1)
    browsers = [Browser("lossy-a"), Browser("lossy-b")]
    try:
        ids = meet(browsers, f"{parley.url}/m/lossy")
        drop_udp(ports, 0.05)
        try:
            before = [b.stats() for b in browsers]
            counters_before = parley.health()["sfu"]["counters"]
            wait_for(lambda: False, 12, interval=1)
            after = [b.stats() for b in browsers]
            counters = parley.health()["sfu"]["counters"]
        finally:
            drop_udp(ports, 0.05, add=False)
        for n, browser in enumerate(browsers):
            other = ids[1 - n]
            decoded = after[n][other]["framesDecoded"] - before[n][other]["framesDecoded"]
            assert decoded > 12 * 10, f"{browser.name} decoded only {decoded} frames in 12 s under loss"
            # The browser noticed losses and asked for them; the SFU answered from its buffer.
            assert after[n][other]["nackCount"] > before[n][other]["nackCount"]
        assert counters["retransmitted"] > counters_before["retransmitted"], "the SFU answered no subscriber NACK"
        assert counters["nacksSent"] > counters_before["nacksSent"], "the SFU asked publishers for nothing"
        assert counters["repairsReceived"] > counters_before["repairsReceived"], "no publisher repair arrived"
        print("\nunder 5% loss each way:", {k: counters[k] - counters_before[k] for k in ("nacksSent", "repairsReceived", "retransmitted")},
              {b.name: after[n][ids[1 - n]]["framesDecoded"] - before[n][ids[1 - n]]["framesDecoded"] for n, b in enumerate(browsers)})
    finally:
        for browser in browsers:
            browser.quit()


class ImpairedPath:
    """The kernel here has no netem, so delay is made in user space: a UDP relay on 127.0.0.3 at
    the SFU's port, which Parley announces as its address. Each packet, each way, is dropped with
    probability `loss` or else delivered `delay` seconds later. One upstream socket per client
    address keeps the replies apart."""

    def __init__(self, sfu_port, delay, loss):
        self.delay, self.loss = delay, loss
        self.sfu = ("127.0.0.1", sfu_port)
        self.listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.listen.bind(("127.0.0.3", sfu_port))
        self.upstream = {}   # client address → socket towards the SFU
        self.client_of = {}  # upstream socket → client address
        self.queue = []      # (due, sequence, socket, bytes, address)
        self.sequence = 0
        self.relayed = self.dropped = 0
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def schedule(self, sock, data, address):
        if random.random() < self.loss:
            self.dropped += 1
            return
        self.sequence += 1
        heapq.heappush(self.queue, (time.monotonic() + self.delay, self.sequence, sock, data, address))

    def run(self):
        while self.running:
            timeout = max(0, self.queue[0][0] - time.monotonic()) if self.queue else 0.05
            readable, _, _ = select.select([self.listen, *self.client_of], [], [], min(timeout, 0.05))
            for sock in readable:
                data, address = sock.recvfrom(65536)
                if sock is self.listen:
                    up = self.upstream.get(address)
                    if up is None:
                        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        up.bind(("127.0.0.3", 0))
                        self.upstream[address], self.client_of[up] = up, address
                    self.schedule(up, data, self.sfu)
                else:
                    self.schedule(self.listen, data, self.client_of[sock])
            now = time.monotonic()
            while self.queue and self.queue[0][0] <= now:
                _, _, sock, data, address = heapq.heappop(self.queue)
                sock.sendto(data, address)
                self.relayed += 1

    def close(self):
        self.running = False
        self.thread.join(timeout=2)
        for sock in [self.listen, *self.client_of]:
            sock.close()


@pytest.mark.timeout(180)
def test_five_percent_loss_and_100_ms_round_trip_keep_video_decoding_and_audio_mostly_whole():
    # Parley on 127.0.0.1, announcing the relay's address; every media packet crosses the relay.
    server = Server("impaired-path", workers=1, announce_ip="127.0.0.3", extra_args=("--udp-host", "127.0.0.1"))
    path = ImpairedPath(server.udp_port, delay=0.05, loss=0.05)
    browsers = []
    try:
        browsers = [Browser("rtt-a"), Browser("rtt-b")]
        ids = meet(browsers, f"{server.url}/m/far-away")
        before = [b.stats()[ids[1 - n]] for n, b in enumerate(browsers)]
        counters_before = server.health()["sfu"]["counters"]
        wait_for(lambda: False, 12, interval=1)
        after = [b.stats()[ids[1 - n]] for n, b in enumerate(browsers)]
        counters = server.health()["sfu"]["counters"]
        report = {}
        for n, browser in enumerate(browsers):
            delta = {key: after[n][key] - before[n][key] for key in ("framesDecoded", "freezeCount", "totalFreezesDuration",
                                                                       "concealedSamples", "totalSamplesReceived", "nackCount")}
            report[browser.name] = delta
            assert delta["framesDecoded"] > 12 * 10, f"{browser.name} decoded only {delta['framesDecoded']} frames in 12 s"
            concealed = delta["concealedSamples"] / max(1, delta["totalSamplesReceived"])
            assert concealed < 0.1, f"{browser.name}: {concealed:.1%} of the audio was concealed"
            assert delta["nackCount"] > 0
        assert counters["retransmitted"] > counters_before["retransmitted"] and counters["nacksSent"] > counters_before["nacksSent"]
        print(f"\nmeasured: 5 % loss each way and 100 ms round trip (relay: {path.relayed} relayed, {path.dropped} dropped): "
              + "; ".join(f"{name}: {d['framesDecoded']} frames in 12 s, {d['freezeCount']} freezes ({d['totalFreezesDuration']:.2f} s), "
                          f"audio concealed {d['concealedSamples'] / max(1, d['totalSamplesReceived']):.1%}" for name, d in report.items())
              + f"; SFU nacks sent {counters['nacksSent'] - counters_before['nacksSent']}, "
                f"retransmitted {counters['retransmitted'] - counters_before['retransmitted']}")
    finally:
        for browser in browsers:
            browser.quit()
        path.close()
        server.stop()
