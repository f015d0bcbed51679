"""Active speaker through headless Chromium (issue 6): the SFU reads the audio-level header
extension of every microphone; the one speaking (Chromium's fake microphone beeps) becomes the
active speaker for everyone, its tile is outlined, and — with three others on the stage (a silent
aiortc WHIP publisher is the fourth participant) — enlarged; the enlargement follows when the
speaker changes."""
import asyncio
import threading

import pytest
from selenium.webdriver.common.by import By

from test_browsers_chromium import Browser, receiving_from_everyone, wait_for
from test_whip_whep_aiortc import publish


def tile_width(browser, participant_id):
    return browser.js(f"return document.querySelector('.tile[data-tile=\"{participant_id}\"]')?.getBoundingClientRect().width ?? 0")


@pytest.mark.timeout(180)
def test_the_one_speaking_becomes_the_active_speaker_for_everyone(parley):
    ada, bob, eve = Browser("speaker-ada"), Browser("speaker-bob"), Browser("speaker-eve")
    browsers = (ada, bob, eve)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    whip = None
    try:
        whip, _ = asyncio.run_coroutine_threadsafe(publish(parley.url, "speakers"), loop).result(20)
        for browser, name in zip(browsers, ("Ada", "Bob", "Eve")):
            browser.open(f"{parley.url}/m/speakers?name={name}")
            assert wait_for(browser.participant_id, 20)
        ids = {browser: browser.participant_id() for browser in browsers}
        for browser in browsers:
            assert wait_for(lambda: receiving_from_everyone(browser, [ids[o] for o in browsers if o is not browser]), 40)
        # Bob and Eve mute: Ada's beeps make her the speaker, for everyone, Ada included.
        for browser in (bob, eve):
            browser.driver.find_element(By.ID, "toggle-mic").click()
        assert wait_for(lambda: all(b.js("return window.parley.activeSpeaker") == ids[ada] for b in browsers), 15), \
            [b.js("return window.parley.activeSpeaker") for b in browsers]
        assert wait_for(lambda: bob.js(f"return document.querySelector('.tile[data-tile=\"{ids[ada]}\"]')?.classList.contains('speaking')"), 5)
        # Three others on Bob's stage: Ada's tile grows once she has spoken for a while.
        assert wait_for(lambda: bob.js("return window.parley.featured") == ids[ada], 10)
        assert tile_width(bob, ids[ada]) > 1.5 * tile_width(bob, ids[eve]), (tile_width(bob, ids[ada]), tile_width(bob, ids[eve]))
        # Ada mutes, Bob speaks: the floor moves to Bob.
        ada.driver.find_element(By.ID, "toggle-mic").click()
        bob.driver.find_element(By.ID, "toggle-mic").click()
        assert wait_for(lambda: all(b.js("return window.parley.activeSpeaker") == ids[bob] for b in browsers), 15), \
            [b.js("return window.parley.activeSpeaker") for b in browsers]
        assert wait_for(lambda: eve.js(f"return document.querySelector('.tile[data-tile=\"{ids[bob]}\"]')?.classList.contains('speaking')"), 5)
        assert wait_for(lambda: eve.js("return window.parley.featured") == ids[bob], 10)
        assert tile_width(eve, ids[bob]) > 1.5 * tile_width(eve, ids[ada])
    finally:
        if whip:
            asyncio.run_coroutine_threadsafe(whip.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        for browser in browsers:
            browser.save_console()
            browser.quit()
