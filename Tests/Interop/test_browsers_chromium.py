"""Three headless Chromium instances meet through the web client and Parley's SFU."""
import json
import os
import shutil
import tempfile
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from conftest import ARTIFACTS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


class Browser:
    def __init__(self, name, camera="fake", autoplay=True, extra_flags=(), remote=None):
        """`extra_flags`: more Chromium switches; `remote`: the URL of a chromedriver already
        running (in another network namespace)."""
        self.name = name
        self.profile = tempfile.mkdtemp(prefix=f"parley-{name}-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        flags = ["--headless=new", "--no-sandbox", "--allow-loopback-in-peer-connection", "--disable-dev-shm-usage",
                 f"--user-data-dir={self.profile}", "--window-size=1280,800"]
        # Without the flag Chromium keeps its real policy: no sound before the user touched the page.
        if autoplay:
            flags.append("--autoplay-policy=no-user-gesture-required")
        # camera: "fake" (fake camera, microphone and screen, every prompt accepted), "denied" (every
        # prompt refused), "none" (prompts accepted, no device at all).
        if camera == "fake":
            flags += ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                      "--auto-select-desktop-capture-source=Entire screen"]
        elif camera == "denied":
            flags += ["--use-fake-device-for-media-stream", "--deny-permission-prompts"]
        else:
            flags += ["--use-fake-ui-for-media-stream"]
        for flag in [*flags, *extra_flags]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        if remote:
            self.driver = webdriver.Remote(command_executor=remote, options=options)
        else:
            self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_script_timeout(20)

    def open(self, url):
        self.driver.get(url)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def stats(self):
        return self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "window.parley ? window.parley.stats().then(done, () => done({})) : done({});")

    def participant_id(self):
        return self.js("return window.parley && window.parley.participantId")

    def notices(self):
        return self.js("return window.parleyNotices || []")

    def text(self, element_id):
        return self.js(f"return document.getElementById('{element_id}').textContent") or ""

    def visible(self, element_id):
        return self.js(f"return !document.getElementById('{element_id}').hidden")

    def tiles(self):
        return self.js("return window.parley ? window.parley.tiles() : []")

    def save_console(self):
        try:
            lines = [f"{entry['level']} {entry['message']}" for entry in self.driver.get_log("browser")]
        except Exception:
            lines = []
        with open(os.path.join(ARTIFACTS, f"console-{self.name}.log"), "w") as f:
            f.write("\n".join(lines))

    def quit(self):
        self.save_console()
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)


def wait_for(condition, timeout, interval=0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    return last


def receiving_from_everyone(browser, others):
    stats = browser.stats()
    ok = all(stats.get(o, {}).get("framesDecoded", 0) > 0 and stats.get(o, {}).get("audioPacketsReceived", 0) > 0 for o in others)
    return stats if ok else None


def meet(browsers, url, timeout=40):
    """Opens the meeting at `url` in every browser (named after it), waits until each has joined and
    decodes everyone else's video and hears their audio; returns their participant ids."""
    for browser in browsers:
        browser.open(f"{url}?name={browser.name}")
    ids = [wait_for(b.participant_id, 20) for b in browsers]
    assert all(ids), "not everyone joined"
    assert wait_for(lambda: all(receiving_from_everyone(b, [i for i in ids if i != ids[n]]) for n, b in enumerate(browsers)), timeout), \
        "not everyone receives everyone"
    return ids


def selected_local_candidate(browser, field):
    """A field of the local candidate of the browser's selected candidate pair: `address`, `port`,
    `protocol` ("udp", "tcp"), `candidateType` ("host", "relay"), `relayProtocol`."""
    return browser.driver.execute_async_script("""
        const [field, done] = arguments;
        window.parley.debug().then((d) => {
          const pair = d.inbound.find((s) => s.type === 'transport')?.selectedCandidatePairId;
          const local = d.inbound.find((s) => s.type === 'candidate-pair' && s.id === pair)?.localCandidateId;
          done(d.inbound.find((s) => s.type === 'local-candidate' && s.id === local)?.[field] ?? null);
        }, () => done(null));""", field)


@pytest.mark.timeout(240)
def test_three_browsers_see_and_hear_each_other_and_a_leaver_disappears(parley):
    browsers = []
    measurements = {}
    try:
        for name in ("ada", "grace"):
            browser = Browser(name)
            browser.open(f"{parley.url}/m/browsers?name={name}")
            browsers.append(browser)
        ids = [wait_for(b.participant_id, 20) for b in browsers]
        assert all(ids), "the first two browsers did not join"
        assert wait_for(lambda: receiving_from_everyone(browsers[0], [ids[1]]) and receiving_from_everyone(browsers[1], [ids[0]]), 30), \
            "the first two browsers do not receive each other"

        # A late joiner: time from opening the page to decoded video from both others.
        late = Browser("linus")
        browsers.append(late)
        opened = time.monotonic()
        late.open(f"{parley.url}/m/browsers?name=linus")
        ids.append(wait_for(late.participant_id, 20))
        assert ids[2], "the late joiner did not join"
        assert wait_for(lambda: receiving_from_everyone(late, ids[:2]), 30, interval=0.05), "late joiner sees no video"
        measurements["late_joiner_first_frames_after_page_open_s"] = round(time.monotonic() - opened, 2)
        measurements["late_joiner_first_frames_after_join_message_s"] = round(
            late.js("return (performance.now() - window.parley.joinedAt) / 1000"), 2)

        for index, browser in enumerate(browsers):
            others = [i for i in ids if i != ids[index]]
            assert wait_for(lambda: receiving_from_everyone(browser, others), 30), f"{browser.name} does not receive everyone"

        # framesDecoded keeps rising for both others' video, and audio packets arrive, in every page.
        cpu_before, wall_before = parley.cpu_seconds(), time.monotonic()
        before = [b.stats() for b in browsers]
        time.sleep(5)
        after = [b.stats() for b in browsers]
        measurements["server_cpu_percent_of_one_core_during_3_browser_call"] = round(
            100 * (parley.cpu_seconds() - cpu_before) / (time.monotonic() - wall_before), 1)
        for index, browser in enumerate(browsers):
            for other in (i for i in ids if i != ids[index]):
                assert after[index][other]["framesDecoded"] > before[index][other]["framesDecoded"] + 20, \
                    f"{browser.name}: video from {other} is not flowing"
                assert after[index][other]["audioPacketsReceived"] > before[index][other]["audioPacketsReceived"] + 50, \
                    f"{browser.name}: audio from {other} is not flowing"
                assert after[index][other]["frameWidth"] >= 320

        # Ada shares her screen: the others get a second tile for it, with decoded frames; it goes when she stops.
        browsers[0].js("document.getElementById('toggle-screen').click()")
        for browser in browsers[1:]:
            assert wait_for(lambda: browser.stats().get(ids[0], {}).get("screenFramesDecoded", 0) > 10, 20), \
                f"{browser.name} does not receive Ada's screen"
            assert f"{ids[0]}:screen" in browser.tiles()
        browsers[0].js("document.getElementById('toggle-screen').click()")
        for browser in browsers[1:]:
            assert wait_for(lambda: f"{ids[0]}:screen" not in browser.tiles(), 10), f"{browser.name} still shows Ada's screen"

        # Ada turns her microphone and camera off: the others see it on her tile; then back on.
        browsers[0].js("document.getElementById('toggle-mic').click(); document.getElementById('toggle-camera').click()")
        tile_class = f"return document.querySelector('[data-tile=\"{ids[0]}\"]').className"
        for browser in browsers[1:]:
            assert wait_for(lambda: {"muted", "video-off"} <= set(browser.js(tile_class).split()), 10), f"{browser.name} does not show Ada muted"
        assert browsers[0].js("return document.getElementById('toggle-camera').textContent") == "Start video"
        browsers[0].js("document.getElementById('toggle-mic').click(); document.getElementById('toggle-camera').click()")
        for browser in browsers[1:]:
            assert wait_for(lambda: not ({"muted", "video-off"} & set(browser.js(tile_class).split())), 10)

        # Chat reaches everyone.
        browsers[0].js("document.getElementById('chat-input').value = 'hello from ada';"
                       "document.getElementById('chat-form').requestSubmit();")
        for browser in browsers[1:]:
            assert wait_for(lambda: "hello from ada" in browser.js("return document.getElementById('chat-log').textContent"), 10)

        # Linus leaves: the others drop his tile.
        late.js("document.getElementById('leave').click()")
        for browser in browsers[:2]:
            assert wait_for(lambda: ids[2] not in browser.tiles(), 10), f"{browser.name} still shows the leaver's tile"
            assert ids[2] not in [p["id"] for p in browser.js("return window.parley.participants")]
        # The two who stay keep receiving each other.
        before = [b.stats() for b in browsers[:2]]
        time.sleep(2)
        after = [b.stats() for b in browsers[:2]]
        assert after[0][ids[1]]["framesDecoded"] > before[0][ids[1]]["framesDecoded"]
        assert after[1][ids[0]]["framesDecoded"] > before[1][ids[0]]["framesDecoded"]
    finally:
        for browser in browsers:
            browser.quit()
        if measurements:
            with open(os.path.join(ARTIFACTS, "browser-measurements.json"), "w") as f:
                json.dump(measurements, f, indent=2)
            print("\nmeasured:", json.dumps(measurements))
