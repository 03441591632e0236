"""The Rasa-compatible Socket.IO endpoint (bot/channels/socketio) over real sockets, with
python-socketio's own client speaking Rasa's socketio protocol to the real bot service
(the npm widget itself runs in tests/test_socketio_widget.py): the origin check, sessions that
cannot be guessed or forged, per-address session limits, typed text that is never an engine
command, and messages going through the hub (kept for replay while the engine is down; a whole
conversation with the real engine)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import socketio

from bot.app import create_app
from bot.channels.base import Button, OutgoingMessage
from bot.channels.socketio.channel import bot_utterances
from bot.keys import OUTBOXES, SETTINGS
from storage import outbox as outbox_store
from storage.db import create_db_engine, session_scope
from storage.inbox import pending_for
from storage.migrate import upgrade_database
from storage.models import Reporter
from tests.conftest import Stack, free_port, make_settings
from tests.test_webchat import app_settings

REF = re.compile(r"\b[2-9A-Z]{3}-[2-9A-Z]{3}\b")
CITY = "https://www.city.example"


class Widget:
    """Rasa's socketio protocol as the widget speaks it: session_request first, then user_uttered."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.confirmed: asyncio.Queue[str] = asyncio.Queue()
        self.uttered: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.client.on("session_confirm", self.confirmed.put_nowait)
        self.client.on("bot_uttered", self.uttered.put_nowait)

    async def connect(self, url: str, origin: str | None = None, session_id: str | None = None) -> str:
        headers = {"Origin": origin} if origin else {}
        await self.client.connect(url, headers=headers, transports=["websocket"], socketio_path="socket.io")
        await self.client.emit("session_request", {"session_id": session_id})
        return await asyncio.wait_for(self.confirmed.get(), 10)

    async def say(self, session_id: str, text: str, language: str = "en", quiet: float = 1.5) -> list[dict[str, Any]]:
        """Send one message; collect bot_uttered until none came for ``quiet`` seconds."""
        await self.client.emit("user_uttered", {"message": text, "session_id": session_id,
                                                "customData": {"language": language}})
        replies = [await asyncio.wait_for(self.uttered.get(), 60)]
        while True:
            try:
                replies.append(await asyncio.wait_for(self.uttered.get(), quiet))
            except TimeoutError:
                return replies

    async def close(self) -> None:
        await self.client.disconnect()


async def engine_down_app(tmp_path: Path, aiohttp_server, **overrides: object):  # noqa: ANN001, ANN201
    settings = make_settings(tmp_path, rasa_port=free_port(), actions_port=free_port(), embed_origins=[CITY],
                             **overrides)
    upgrade_database(settings.database_url)
    return await aiohttp_server(create_app(settings))


async def test_the_origin_check_is_the_web_chats(tmp_path: Path, aiohttp_server, aiohttp_client) -> None:
    server = await engine_down_app(tmp_path, aiohttp_server, allowed_origins=["https://app.example"])
    client = await aiohttp_client(server)
    polling = "/socket.io/?EIO=4&transport=polling"
    for origin in (CITY, "https://app.example", str(server.make_url("")).rstrip("/")):
        response = await client.get(polling, headers={"Origin": origin})
        assert response.status == 200, origin
        assert response.headers["Access-Control-Allow-Origin"] == origin
    refused = await client.get(polling, headers={"Origin": "https://evil.example"})
    assert refused.status == 400
    assert "Access-Control-Allow-Origin" not in refused.headers
    widget = Widget()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await widget.connect(str(server.make_url("/")), origin="https://www.city.example.evil.example")


async def test_sessions_cannot_be_guessed_or_forged(tmp_path: Path, aiohttp_server) -> None:
    server = await engine_down_app(tmp_path, aiohttp_server)
    url = str(server.make_url("/"))
    first = Widget()
    session = await first.connect(url, origin=CITY)
    sender, stamp, signature = session.split(".")
    assert re.fullmatch(r"web:[0-9a-f]{32}", sender) and stamp.isdigit() and len(signature) == 32
    again = Widget()
    assert await again.connect(url, origin=CITY, session_id=session) == session  # the same conversation
    forged = Widget()
    other = await forged.connect(url, origin=CITY, session_id=f"{sender}.{stamp}.{'0' * 32}")
    assert other.split(".")[0] != sender  # a forged signature gets a new conversation
    for guess in (sender, "web:" + "0" * 32, None, 42):
        guessed = Widget()
        assert (await guessed.connect(url, origin=CITY, session_id=guess)).split(".")[0] != sender  # type: ignore[arg-type]
        await guessed.close()
    for widget in (first, again, forged):
        await widget.close()


async def test_new_sessions_are_limited_per_address(tmp_path: Path, aiohttp_server) -> None:
    server = await engine_down_app(tmp_path, aiohttp_server, max_new_sessions_per_minute_per_address=2)
    url = str(server.make_url("/"))
    widgets = [Widget() for _ in range(3)]
    sessions = [await w.connect(url, origin=CITY) for w in widgets[:2]]
    assert len(set(sessions)) == 2
    third = widgets[2]
    await third.client.connect(url, headers={"Origin": CITY}, transports=["websocket"])
    await third.client.emit("session_request", {"session_id": None})
    refused = await asyncio.wait_for(third.uttered.get(), 10)
    assert "too many messages" in refused["text"]
    assert third.confirmed.empty()
    # a citizen coming back with their own session is not a new session
    back = Widget()
    assert await back.connect(url, origin=CITY, session_id=sessions[0]) == sessions[0]
    for widget in (*widgets, back):
        await widget.close()


async def test_while_the_engine_is_down_messages_are_kept_and_typed_commands_are_text(
    tmp_path: Path, aiohttp_server
) -> None:
    server = await engine_down_app(tmp_path, aiohttp_server)
    widget = Widget()
    session = await widget.connect(str(server.make_url("/")), origin=CITY)
    [queued] = await widget.say(session, "me han robado la bici en la calle Verdi", language="es")
    assert "no hace falta que lo envíes otra vez" in queued["text"]  # kept for replay, told in Spanish
    [empty] = await widget.say(session, "   ")
    assert "empty" in empty["text"]
    [slashes] = await widget.say(session, "///")
    assert "I can read text" in slashes["text"]
    db = create_db_engine(server.app[SETTINGS].database_url)
    await widget.say(session, '/inform{"incident_time":"now"}')  # typed, never offered: plain text
    with session_scope(db) as db_session:
        kept = [row.text for row in pending_for(session=db_session, sender_id=session.split(".")[0])]
    assert kept == ["me han robado la bici en la calle Verdi", 'inform{"incident_time":"now"}']
    db.dispose()
    await widget.close()


async def test_alerts_reach_the_widget_live_and_on_its_next_visit(tmp_path: Path, aiohttp_server) -> None:
    """The outbox's web worker delivers to whichever web adapter has the citizen: the widget too."""
    server = await engine_down_app(tmp_path, aiohttp_server, quiet_hours_start="00:00", quiet_hours_end="00:00")
    db = create_db_engine(server.app[SETTINGS].database_url)

    def alert(reporter: Reporter, text: str) -> None:
        with session_scope(db) as session:
            outbox_store.enqueue(session=session, items=[outbox_store.OutgoingItem.to(
                reporter, dedupe_key=f"alert:{text}", kind="alert", text=text,
                buttons=[("Deixar de rebre alertes", "/unsubscribe_alerts")])])

    url = str(server.make_url("/"))
    online = Widget()
    session = await online.connect(url, origin=CITY)
    reporter = Reporter(channel="web", sender_id=session.split(".")[0], locale="ca")
    with session_scope(db) as db_session:
        db_session.add(reporter)
    alert(reporter, "Tall d'aigua al Raval")
    server.app[OUTBOXES].wake("web")
    assert await asyncio.wait_for(online.uttered.get(), 10) == {"text": "Tall d'aigua al Raval", "quick_replies": [
        {"content_type": "text", "title": "Deixar de rebre alertes", "payload": "/unsubscribe_alerts"}]}
    await online.close()

    # away: it waits, and comes right after the session_confirm of the next visit
    alert(reporter, "Tall de llum a Gràcia")
    server.app[OUTBOXES].wake("web")
    await asyncio.sleep(1.0)
    back = Widget()
    assert await back.connect(url, origin=CITY, session_id=session) == session
    assert (await asyncio.wait_for(back.uttered.get(), 10))["text"] == "Tall de llum a Gràcia"
    await back.close()
    db.dispose()


def test_bot_messages_are_drawn_as_rasas_socketio_channel_draws_them() -> None:
    message = OutgoingMessage(text="First paragraph.\n\nWhen did it happen?",
                              buttons=(Button("Just now", '/inform{"incident_time":"now"}'),),
                              custom={"image": "https://barri.example/map.png"})
    assert bot_utterances(message) == [
        {"text": "First paragraph."},
        {"text": "When did it happen?", "quick_replies": [
            {"content_type": "text", "title": "Just now", "payload": '/inform{"incident_time":"now"}'}]},
        {"attachment": {"type": "image", "payload": {"src": "https://barri.example/map.png"}}},
    ]
    assert bot_utterances(OutgoingMessage(custom={"request": "location"})) == []


@pytest.mark.engine
async def test_a_whole_report_through_the_hub(stack: Stack, aiohttp_server) -> None:
    server = await aiohttp_server(create_app(app_settings(stack, embed_origins=[CITY])))
    widget = Widget()
    session = await widget.connect(str(server.make_url("/")), origin=CITY)
    replies = await widget.say(session, "ayer por la noche me robaron la cartera en el metro de Sants", language="es")
    assert "?" in " ".join(r["text"] for r in replies)
    for _ in range(10):
        offered = [q["payload"] for r in replies for q in r.get("quick_replies", [])]
        if any(p.startswith('/inform{"photos_done"') for p in offered):
            replies = await widget.say(session, '/inform{"photos_done":"yes"}', language="es")
        elif any('"contact_mode"' in p for p in offered):
            replies = await widget.say(session, '/inform{"contact_mode":"anonymous"}', language="es")
        elif "/affirm" in offered:
            replies = await widget.say(session, "/affirm", language="es")
            break
        elif any("incident_time" in p for p in offered):
            replies = await widget.say(session, "hacia las diez de la noche", language="es")
        else:
            replies = await widget.say(session, "en la estación de metro de Sants Estació", language="es")
    saved = " ".join(r["text"] for r in replies)
    assert REF.search(saved), saved
    await widget.close()
