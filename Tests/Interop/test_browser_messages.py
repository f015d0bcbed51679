"""What a participant is told when the camera is refused, the meeting ends or the server is gone."""
import pytest
from selenium.webdriver.common.by import By

from test_browsers_chromium import Browser, receiving_from_everyone, wait_for


@pytest.mark.timeout(180)
def test_participants_without_a_camera_join_and_a_server_shutdown_ends_the_meeting_clearly(parley):
    ada = Browser("ada-host")
    eve = Browser("eve-refuses", camera="denied")
    zoe = Browser("zoe-no-devices", camera="none", autoplay=False)
    late = Browser("late-lobby")
    browsers = (ada, eve, zoe, late)
    try:
        ada.open(f"{parley.url}/m/notices?name=Ada")
        ada_id = wait_for(ada.participant_id, 20)
        assert ada_id

        # Eve refuses the camera: she is told so, and still joins the meeting.
        eve.open(f"{parley.url}/m/notices?name=Eve")
        eve_id = wait_for(eve.participant_id, 20)
        assert eve_id, "a participant who refused the camera could not join"
        banner = eve.text("banner")
        assert "Camera and microphone unavailable (permission was refused)" in banner
        assert wait_for(lambda: any(p["id"] == eve_id and p["tracks"] == [] for p in ada.js("return window.parley.participants")), 10)

        # Zoe has no devices at all: told so, and she sees and hears Ada without sending anything.
        # (Chromium gathers no candidates without a media permission in a loopback-only namespace,
        # so receiving is checked with Zoe, whose prompts are accepted.)
        zoe.open(f"{parley.url}/m/notices?name=Zoe")
        zoe_id = wait_for(zoe.participant_id, 20)
        assert zoe_id
        assert wait_for(lambda: any("no camera or microphone was found" in n for n in zoe.notices()), 5)
        assert wait_for(lambda: receiving_from_everyone(zoe, [ada_id]), 30), "a participant without devices does not receive"
        # Zoe captures nothing and came by link without touching the page, so the browser refuses to
        # play sound: the page plays muted and asks for a click, which turns the sound on.
        assert wait_for(lambda: "turn on the sound" in zoe.text("banner"), 10), "no prompt to turn the sound on"
        assert zoe.js("return [...document.querySelectorAll('.tile:not(.local) video')].every(v => v.muted && !v.paused)")
        zoe.driver.find_element(By.ID, "stage").click()  # a real click: a user gesture
        assert wait_for(lambda: zoe.js("return [...document.querySelectorAll('.tile:not(.local) video')].every(v => !v.muted && !v.paused)"), 5)
        assert "turn on the sound" not in zoe.text("banner")
        assert zoe_id in wait_for(lambda: zoe_id in ada.tiles() and ada.tiles(), 10)

        # A page opened before the server goes away: joining then says the server cannot be reached.
        late.open(f"{parley.url}/m/notices")
        parley.stop()
        for browser in (ada, eve, zoe):
            assert wait_for(lambda: browser.visible("goodbye"), 15), f"{browser.name} was not told the meeting ended"
            assert browser.text("goodbye-title") == "The meeting has ended"
            assert "shutting down" in browser.text("goodbye-text")
        late.js("document.getElementById('name').value = 'Late'; document.getElementById('join-form').requestSubmit();")
        assert wait_for(lambda: "cannot reach the Parley server" in late.text("banner"), 15)
        assert late.visible("lobby")
    finally:
        for browser in browsers:
            browser.quit()
