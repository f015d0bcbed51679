"""Two Chromium instances keep a clean picture while 5 % of the media packets are lost each way.

The loss is made with iptables inside the test's own network namespace (netem is missing from this
kernel): packets to and from the SFU's UDP ports are dropped at random on arrival (INPUT, so the
sender's sendto does not fail and tell it), and publishers must repair what the SFU asks for
(NACK → RTX) while the SFU repairs what subscribers ask for.
"""
import subprocess

import pytest

from test_browsers_chromium import Browser, receiving_from_everyone, wait_for


def drop_udp(ports, probability, add=True):
    for direction in ("--dport", "--sport"):
        subprocess.run(["iptables", "-A" if add else "-D", "INPUT", "-p", "udp", direction, f"{ports[0]}:{ports[1]}",
                        "-m", "statistic", "--mode", "random", "--probability", str(probability), "-j", "DROP"], check=True)


@pytest.mark.timeout(180)
def test_video_survives_five_percent_loss_through_nack_and_rtx(parley):
    ports = (parley.udp_port, parley.udp_port + 1)
    browsers = [Browser("lossy-a"), Browser("lossy-b")]
    try:
        for browser in browsers:
            browser.open(f"{parley.url}/m/lossy?name={browser.name}")
        ids = [wait_for(b.participant_id, 20) for b in browsers]
        assert all(ids)
        assert wait_for(lambda: all(receiving_from_everyone(b, [i for i in ids if i != ids[n]]) for n, b in enumerate(browsers)), 30)
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
