"""The degradation ladder with headless Chromium (issue 6): one publisher, two viewers with large
windows; what the SFU sends to one viewer is capped on the loopback interface (HTB class with a
u32 filter on that viewer's UDP port, TESTING.md). At 300 kb/s that viewer drops to a lower layer;
at 200 kb/s to a lower frame rate (temporal layers left out); at 60 kb/s its video pauses while
audio goes on; the cap lifted, it climbs back to the full layer.
The other viewer keeps the full layer all along."""
import subprocess
import time

import pytest

from test_browsers_chromium import Browser, receiving_from_everyone, selected_local_candidate, wait_for


def tc(*args):
    subprocess.run(["tc", *args], check=True, capture_output=True)


def cap(port, rate):
    """Shapes what is sent to `port` on lo to `rate` (e.g. "300kbit"); None lifts the cap."""
    subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True)
    if rate is None:
        return
    tc("qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10")
    tc("class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit")
    tc("class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", rate, "ceil", rate)
    # A short queue, as on a real access link: loss and delay, not seconds of buffering.
    tc("qdisc", "add", "dev", "lo", "parent", "1:20", "handle", "20:", "pfifo", "limit", "30")
    tc("filter", "add", "dev", "lo", "protocol", "ip", "parent", "1:", "prio", "1", "u32", "match", "ip", "dport", str(port), "0xffff",
       "flowid", "1:20")


def width(viewer, publisher_id):
    return viewer.stats().get(publisher_id, {}).get("frameWidth", 0)


@pytest.mark.timeout(240)
def test_a_capped_viewer_steps_down_then_pauses_video_keeps_audio_and_climbs_back(parley):
    # Viewers without camera or microphone: the publisher's tile is the only large one on their pages.
    publisher, capped, free = Browser("bw-publisher"), Browser("bw-capped", camera="none"), Browser("bw-free", camera="none")
    port = None
    try:
        publisher.open(f"{parley.url}/m/ladder?name=Publisher")
        assert wait_for(publisher.participant_id, 20)
        for viewer, name in ((capped, "Capped"), (free, "Free")):
            viewer.driver.set_window_size(1920, 1200)
            viewer.open(f"{parley.url}/m/ladder?name={name}")
            assert wait_for(viewer.participant_id, 20)
        publisher_id = publisher.participant_id()
        # Each viewer's page has three tiles (the publisher, the other viewer, itself): the
        # publisher's tile needs the 640-pixel layer.
        for viewer in (capped, free):
            assert wait_for(lambda: receiving_from_everyone(viewer, [publisher_id]), 40)
            assert wait_for(lambda: width(viewer, publisher_id) >= 640, 30), f"no large layer at first: {width(viewer, publisher_id)}"
        # The publisher beeps: it becomes the active speaker and its tile grows; wait until the
        # layer the viewers get has settled (the same for three seconds).
        seen = []
        assert wait_for(lambda: seen.append(width(capped, publisher_id)) or (len(seen) >= 3 and len(set(seen[-3:])) == 1 and seen[-1] >= 640),
                        30, interval=1)
        full = seen[-1]
        port = selected_local_candidate(capped, "port")  # where the capped viewer receives media
        assert port, "could not find the capped viewer's port"
        free_widths = []

        # 300 kb/s: a lower layer for the capped viewer only.
        cap(port, "300kbit")
        started = time.time()
        assert wait_for(lambda: free_widths.append(width(free, publisher_id)) or 0 < width(capped, publisher_id) < full, 30), \
            f"the capped viewer kept {width(capped, publisher_id)}"
        stepped_down = time.time() - started
        lowered = width(capped, publisher_id)
        before = capped.stats()[publisher_id]["framesDecoded"]
        assert wait_for(lambda: capped.stats()[publisher_id]["framesDecoded"] > before + 20, 15), "no video decoded under the 300 kb/s cap"

        # 200 kb/s: even the lowest layer at full frame rate is too much; fewer temporal layers
        # (a lower frame rate) while the picture goes on.
        cap(port, "200kbit")
        full_rate = max(free.stats()[publisher_id]["framesPerSecond"], 1)
        rates = []

        def lower_frame_rate():
            stats = capped.stats()[publisher_id]
            rates.append(stats["framesPerSecond"])
            return 0 < stats["framesPerSecond"] <= 0.7 * full_rate and publisher_id not in capped.js("return window.parley.pausedVideos")
        assert wait_for(lower_frame_rate, 30, interval=0.5), f"the frame rate stayed at {rates[-8:]} (full: {full_rate})"
        lowered_rate = rates[-1]
        before = capped.stats()[publisher_id]["framesDecoded"]
        assert wait_for(lambda: capped.stats()[publisher_id]["framesDecoded"] > before + 5, 10), "no video decoded under the 200 kb/s cap"

        # 60 kb/s: video paused (the tile says so), audio goes on.
        cap(port, "60kbit")
        assert wait_for(lambda: free_widths.append(width(free, publisher_id)) or publisher_id in capped.js("return window.parley.pausedVideos"), 40), \
            "video not paused at 60 kb/s"
        audio = capped.stats()[publisher_id]["audioPacketsReceived"]
        assert wait_for(lambda: capped.stats()[publisher_id]["audioPacketsReceived"] > audio + 50, 10), "audio stopped with the video"

        # Lifted: back to the full layer.
        cap(port, None)
        lifted = time.time()
        assert wait_for(lambda: free_widths.append(width(free, publisher_id)) or width(capped, publisher_id) >= full, 60), \
            f"did not climb back: {width(capped, publisher_id)}"
        climbed = time.time() - lifted
        assert publisher_id not in capped.js("return window.parley.pausedVideos")
        assert all(w >= full for w in free_widths if w), f"the other viewer lost its layer: {sorted(set(free_widths))}"
        print(f"measured: capped viewer {full} -> {lowered} px {stepped_down:.1f} s after a 300 kb/s cap; {lowered_rate} of {full_rate} "
              f"frames per second at 200 kb/s; paused at 60 kb/s with audio "
              f"going on; back to {full} px {climbed:.1f} s after the cap was lifted; the other viewer held {min(w for w in free_widths if w)} px "
              f"or more throughout")
    finally:
        if port:
            cap(port, None)
        for browser in (publisher, capped, free):
            browser.save_console()
            browser.quit()
