"""The signaling WebSocket and HTTP endpoints, as a client of any kind sees them."""
import asyncio
import json
import urllib.request

import aiohttp
import pytest


def test_healthz_reports_status_and_the_sfu_ports(parley):
    health = parley.health()
    assert health["status"] == "ok"
    assert health["sfu"]["workers"] == 2
    assert len(health["sfu"]["ports"]) == 2 and health["sfu"]["ports"][1] == health["sfu"]["ports"][0] + 1


def test_the_meeting_page_and_its_modules_are_served(parley):
    with urllib.request.urlopen(parley.url + "/m/demo") as response:
        page = response.read().decode()
    assert 'src="/static/app.js"' in page
    for module in ("app.js", "peer.js", "signaling.js", "ui.js", "style.css"):
        with urllib.request.urlopen(parley.url + "/static/" + module) as response:
            assert response.status == 200 and len(response.read()) > 100
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(parley.url + "/m/not%20valid")
    assert error.value.code == 400


@pytest.mark.timeout(30)
def test_bad_signaling_messages_get_an_error_and_the_connection_survives(parley):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(parley.url.replace("http", "ws") + "/ws") as ws:
                async def exchange(payload):
                    await ws.send_str(payload)
                    return json.loads((await ws.receive(timeout=5)).data)

                assert (await exchange("{not json"))["code"] == "bad-message"
                assert (await exchange('{"type":"teleport"}'))["code"] == "bad-message"
                # A ping is answered before joining, with its id; a huge id is refused.
                assert await exchange('{"type":"ping","id":"p1"}') == {"type": "pong", "id": "p1"}
                assert (await exchange(json.dumps({"type": "ping", "id": "x" * 65})))["code"] == "bad-message"
                assert (await exchange('{"type":"offer","sdp":"v=0"}'))["code"] == "not-joined"
                assert (await exchange('{"type":"join","meeting":"../x","name":"Eve"}'))["code"] == "bad-request"
                assert (await exchange('{"type":"join","meeting":"sig","name":"   "}'))["code"] == "bad-message"
                await ws.send_bytes(b"\x00\x01")
                assert json.loads((await ws.receive(timeout=5)).data)["code"] == "bad-message"
                joined = await exchange('{"type":"join","meeting":"sig","name":"Ada"}')
                assert joined["type"] == "joined" and joined["version"] == 1 and joined["participants"] == []
                assert (await exchange('{"type":"join","meeting":"sig","name":"Ada"}'))["code"] == "already-joined"
                failed = await exchange(json.dumps({"type": "offer", "sdp": "v=0\r\nm=audio\r\n"}))
                assert failed["code"] == "negotiation-failed" and "SDP" in failed["message"]
                chat = await exchange('{"type":"chat","text":"  hello  "}')
                assert chat["type"] == "chat" and chat["text"] == "hello" and chat["name"] == "Ada"

                # A second client sees Ada and gets her chat; Ada sees it join and leave.
                async with session.ws_connect(parley.url.replace("http", "ws") + "/ws") as other:
                    await other.send_str('{"type":"join","meeting":"sig","name":"Grace"}')
                    grace = json.loads((await other.receive(timeout=5)).data)
                    assert [p["name"] for p in grace["participants"]] == ["Ada"]
                    assert json.loads((await ws.receive(timeout=5)).data)["type"] == "participant-joined"
                left = json.loads((await ws.receive(timeout=5)).data)
                assert left == {"type": "participant-left", "participantId": grace["participantId"]}
        assert parley.health()["participants"] == 0
    asyncio.run(scenario())
