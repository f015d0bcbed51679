"""Meeting security through the web client, in real Chromium: a password typed in the lobby, the
waiting room with a host admitting by clicking, an invite link, and a removal that sticks."""
import json
import urllib.request

import pytest
from selenium.webdriver.common.by import By

from test_browsers_chromium import Browser, receiving_from_everyone, wait_for


def create_meeting(url, **settings):
    request = urllib.request.Request(url + "/api/meetings", data=json.dumps(settings).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def click(browser, selector):
    browser.driver.find_element(By.CSS_SELECTOR, selector).click()


def submit_lobby(browser, password):
    field = browser.driver.find_element(By.ID, "password")
    field.clear()
    field.send_keys(password)
    click(browser, "#join-form button[type=submit]")


@pytest.mark.timeout(240)
def test_password_waiting_room_invite_and_removal_in_the_browser(parley):
    created = create_meeting(parley.url, title="Security review", password="open sesame", waitingRoom=True)
    meeting = created["id"]
    host, guest, invited = Browser("sec-host"), Browser("sec-guest"), Browser("sec-invited")
    try:
        host.open(created["hostURL"].replace("#", "?name=Host#"))
        assert wait_for(host.participant_id, 20), "the host could not join with the host link"
        assert host.js("return window.parley.role") == "host"

        # The guest has no password: the lobby asks for one, refuses a wrong one, then the guest waits.
        guest.open(f"{parley.url}/m/{meeting}?name=Guest")
        assert wait_for(lambda: guest.visible("lobby") and guest.visible("password-field"), 15)
        assert "needs a password" in guest.text("lobby-error")
        submit_lobby(guest, "abracadabra")
        assert wait_for(lambda: guest.text("lobby-error") == "wrong password", 15)
        submit_lobby(guest, "open sesame")
        assert wait_for(lambda: guest.visible("waiting"), 15), "the guest was not put in the waiting room"
        assert not guest.participant_id() or not guest.visible("room")

        # The host sees the guest waiting and lets them in with a click.
        assert wait_for(lambda: [w["name"] for w in host.js("return window.parley.waiting")] == ["Guest"], 15)
        click(host, "#toggle-people")
        waiting_id = host.js("return window.parley.waiting[0].id")
        click(host, f'#people button[data-action="admit"][data-participant="{waiting_id}"]')
        assert wait_for(lambda: guest.visible("room") and guest.participant_id() == waiting_id, 15)
        host_id = host.participant_id()
        assert wait_for(lambda: receiving_from_everyone(host, [waiting_id]) and receiving_from_everyone(guest, [host_id]), 40), \
            "admitted guest and host do not see each other"

        # The invite link carries the password: no prompt, straight to the waiting room.
        invited.open(created["inviteURL"] + "&name=Invited")
        assert wait_for(lambda: invited.visible("waiting"), 15)
        assert not invited.visible("password-field")
        wait_for(lambda: len(host.js("return window.parley.waiting")) == 1, 10)
        invited_id = host.js("return window.parley.waiting[0].id")
        click(host, f'#people button[data-action="deny"][data-participant="{invited_id}"]')
        assert wait_for(lambda: invited.visible("goodbye") and invited.text("goodbye-title") == "You were not let in", 15)

        # Removal: the guest is told, their tile goes, and rejoining with the same credential fails.
        click(host, f'#people button[data-action="remove"][data-participant="{waiting_id}"]')
        assert wait_for(lambda: guest.visible("goodbye") and guest.text("goodbye-title") == "You were removed", 15)
        assert wait_for(lambda: waiting_id not in host.tiles(), 15)
        click(guest, "#rejoin")
        assert wait_for(lambda: guest.visible("goodbye") and "removed you" in guest.text("goodbye-text"), 15)
        assert guest.text("goodbye-title") == "You were removed"
        assert all(p["id"] != waiting_id for p in host.js("return window.parley.participants"))
    finally:
        for browser in (host, guest, invited):
            browser.save_console()
            browser.quit()


@pytest.mark.timeout(240)
def test_sign_in_with_openid_connect_in_the_browser_and_the_domain_rule():
    from conftest import Server
    from oidc_issuer import Issuer

    issuer = Issuer()
    server = Server("browser-oidc", extra_args=["--oidc-issuer", f"name=Test IdP,issuer={issuer.url},client-id={Issuer.CLIENT_ID}"])
    host, ada, eve = Browser("oidc-host"), Browser("oidc-ada"), Browser("oidc-eve")
    try:
        created = create_meeting(server.url, requireSignIn=True, allowedDomains=["example.org"], waitingRoom=True)
        meeting = created["id"]
        host.open(created["hostURL"].replace("#", "?name=Host#"))
        assert wait_for(host.participant_id, 20)

        # Ada is asked to sign in, goes to the issuer and back, and waits with her verified email.
        ada.open(f"{server.url}/m/{meeting}?name=Ada")
        assert wait_for(lambda: ada.visible("sign-in") and "signed-in" in ada.text("lobby-error"), 15)
        click(ada, "#sign-in-buttons button")
        assert wait_for(lambda: ada.visible("waiting"), 20), "no join after signing in"
        assert wait_for(lambda: host.js("return window.parley.waiting").__len__() == 1, 15)
        waiting = host.js("return window.parley.waiting")[0]
        assert waiting["email"] == "ada@example.org"
        click(host, "#toggle-people")
        click(host, f'#people button[data-action="admit"][data-participant="{waiting["id"]}"]')
        assert wait_for(lambda: ada.participant_id() == waiting["id"], 15)

        # Eve signs in too, but her verified email is in another domain.
        issuer.next_user = {"sub": "eve", "email": "eve@evil.example", "email_verified": True, "name": "Eve"}
        eve.open(f"{server.url}/m/{meeting}?name=Eve")
        assert wait_for(lambda: eve.visible("sign-in") and "signed-in" in eve.text("lobby-error"), 15)
        click(eve, "#sign-in-buttons button")
        assert wait_for(lambda: eve.visible("lobby") and "allowed email domains" in eve.text("lobby-error"), 20)
        assert host.js("return window.parley.waiting") == []
    finally:
        for browser in (host, ada, eve):
            browser.save_console()
            browser.quit()
        server.stop()
        issuer.stop()
