"""Web-chat sessions: connections and new conversations are limited per network address (each
`hello` costs a database query), and a session left idle expires (setting)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType

from bot.app import create_app
from storage.migrate import upgrade_database
from tests.conftest import free_port, make_settings

NOTICE_EN = ("You are sending too many messages at once, so I did not read the last ones. "
             "Please wait a minute, then send them again.")


async def chat_app(tmp_path: Path, aiohttp_client: Any, **overrides: object) -> Any:
    settings = make_settings(tmp_path, rasa_port=free_port(), actions_port=free_port(), trusted_proxies=1,
                             **overrides)
    upgrade_database(settings.database_url)
    return await aiohttp_client(create_app(settings))


async def hello(client: Any, address: str, session: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Open a socket from ``address`` and say hello; the socket and the server's first frame."""
    ws = await client.ws_connect("/webchat/ws", headers={"X-Forwarded-For": address})
    await ws.send_json({"type": "hello", "session": session, "locale": "en-GB"})
    return ws, await ws.receive_json(timeout=5)


async def refused(ws: Any, frame: dict[str, Any]) -> bool:
    """The server said why and closed the socket (try again later)."""
    if frame.get("type") != "error" or frame.get("text") != NOTICE_EN:
        return False
    closing = await ws.receive(timeout=5)
    return closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED) and ws.close_code == 1013


async def test_connections_per_address_are_limited(tmp_path: Path, aiohttp_client) -> None:
    client = await chat_app(tmp_path, aiohttp_client, max_hellos_per_minute_per_address=4)
    ws, welcome = await hello(client, "203.0.113.9")
    token = welcome["session"]
    await ws.close()
    for _ in range(3):  # reconnecting with the same session: allowed up to the limit
        ws, frame = await hello(client, "203.0.113.9", token)
        assert frame["type"] == "welcome" and frame["sender"] == welcome["sender"]
        await ws.close()
    ws, frame = await hello(client, "203.0.113.9", token)
    assert await refused(ws, frame)
    # another address is not affected
    ws, frame = await hello(client, "198.51.100.4", token)
    assert frame["type"] == "welcome"
    await ws.close()


async def test_new_conversations_per_address_are_limited(tmp_path: Path, aiohttp_client) -> None:
    client = await chat_app(tmp_path, aiohttp_client, max_new_sessions_per_minute_per_address=3)
    tokens = []
    for _ in range(3):
        ws, frame = await hello(client, "203.0.113.10")
        assert frame["type"] == "welcome"
        tokens.append(frame["session"])
        await ws.close()
    ws, frame = await hello(client, "203.0.113.10")
    assert await refused(ws, frame)
    # a citizen coming back to their conversation from that address still gets in
    ws, frame = await hello(client, "203.0.113.10", tokens[0])
    assert frame["type"] == "welcome"
    await ws.close()
    # and the upload route does not mint sessions either: it needs a valid one
    upload = await client.post("/webchat/upload", data={"photo": b"x"},
                               headers={"Authorization": "Bearer web:forged.0.0", "X-Forwarded-For": "203.0.113.10"})
    assert upload.status == 401


async def test_an_idle_session_expires_and_an_active_one_is_renewed(tmp_path: Path, aiohttp_client) -> None:
    client = await chat_app(tmp_path, aiohttp_client, webchat_session_idle_days=1)
    app = client.server.app
    from bot.keys import CHANNELS

    tokens = app[CHANNELS]["web"].tokens
    clock = [1_000_000.0]
    tokens.clock = lambda: clock[0]
    ws, welcome = await hello(client, "192.0.2.1")
    await ws.close()
    clock[0] += 20 * 3600  # back the same day: the same conversation, with a renewed token
    ws, again = await hello(client, "192.0.2.1", welcome["session"])
    assert again["sender"] == welcome["sender"] and again["session"] != welcome["session"]
    await ws.close()
    clock[0] += 20 * 3600  # 40 hours after the first token, 20 after the renewed one
    ws, still = await hello(client, "192.0.2.1", again["session"])
    assert still["sender"] == welcome["sender"]
    await ws.close()
    assert tokens.verify(welcome["session"]) is None  # the first token has expired meanwhile
    clock[0] += 25 * 3600  # idle for more than a day: a new conversation
    ws, expired = await hello(client, "192.0.2.1", still["session"])
    assert expired["type"] == "welcome" and expired["sender"] != welcome["sender"]
    await ws.close()
    upload = await client.post("/webchat/upload", data={"photo": b"x"},
                               headers={"Authorization": f"Bearer {still['session']}"})
    assert upload.status == 401


@pytest.mark.parametrize("forged", ["web:abc.1.0", "web:abc", "", "web:abc.99999999999999999999.x"])
async def test_malformed_tokens_start_a_new_conversation(tmp_path: Path, aiohttp_client, forged: str) -> None:
    client = await chat_app(tmp_path, aiohttp_client)
    ws, frame = await hello(client, "192.0.2.2", forged)
    assert frame["type"] == "welcome" and frame["sender"] != "web:abc"
    await ws.close()
