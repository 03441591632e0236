"""The web chat through a real bot service, real engine and real action server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from common.settings import Settings
from storage.db import create_db_engine
from tests.conftest import Stack, free_port, make_settings

REF = re.compile(r"\b(?!SHA-256)[2-9A-Z]{3}-[2-9A-Z]{3}\b")


def app_settings(stack: Stack, **overrides: object) -> Settings:
    s = stack.settings
    values = {
        "database_url": s.database_url, "tracker_store_url": s.tracker_store_url,
        "rasa_port": s.rasa_port, "actions_port": s.actions_port, **overrides,
    }
    return make_settings(Path("/tmp"), **values)


async def hello(client: TestClient, session: str | None = None, locale: str = "en-GB"):
    ws = await client.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello", "session": session, "locale": locale})
    welcome = await ws.receive_json(timeout=10)
    assert welcome["type"] == "welcome" and welcome["sender"].startswith("web:")
    return ws, welcome


async def say(ws, frame: dict, timeout: float = 60, stop_on_error: bool = True) -> list[dict]:
    """Send one frame and collect the bot's messages until the typing indicator goes off (or,
    with ``stop_on_error``, until an error frame)."""
    await ws.send_json(frame)
    received: list[dict] = []
    while True:
        message = await ws.receive_json(timeout=timeout)
        if message["type"] == "typing" and message["on"] is False:
            return received
        if message["type"] in ("message", "error", "forget"):
            received.append(message)
            if stop_on_error and message["type"] == "error":
                return received


@pytest.mark.engine
async def test_a_whole_report_over_the_socket(stack: Stack, aiohttp_client) -> None:
    client = await aiohttp_client(create_app(app_settings(stack)))
    ws, _ = await hello(client, locale="es-ES")
    replies = await say(ws, {"type": "text", "text": "ayer por la noche me robaron la cartera en el metro de Sants"})
    texts = " ".join(r["text"] for r in replies)
    assert "?" in texts  # the form asks for what is missing, in Spanish
    for _ in range(8):
        last = replies[-1]
        if last.get("request") == "location":
            replies = await say(ws, {"type": "location", "latitude": 41.3793, "longitude": 2.1404})
        elif any(b["payload"].startswith('/inform{"photos_done"') for b in last["buttons"]):
            replies = await say(ws, {"type": "button", "payload": '/inform{"photos_done":"yes"}', "title": "Continuar"})
        elif any('"contact_mode"' in b["payload"] for b in last["buttons"]):
            replies = await say(ws, {"type": "button", "payload": '/inform{"contact_mode":"chat"}', "title": "Chat"})
        elif any(b["payload"] == "/affirm" for b in last["buttons"]):
            replies = await say(ws, {"type": "button", "payload": "/affirm", "title": "Enviar"})
            break
        else:
            replies = await say(ws, {"type": "text", "text": "hacia las diez de la noche"})
    saved = " ".join(r["text"] for r in replies)
    assert REF.search(saved), saved
    assert "aviso" in saved.lower()  # Spanish
    await ws.close()


@pytest.mark.engine
async def test_danger_signs_get_the_112_question_before_anything_else(stack: Stack, aiohttp_client) -> None:
    """Danger told as an ordinary account: 112 comes first, whether DIET reads an emergency or
    the engine's safety net asks "is anyone in danger right now?" (in the citizen's language);
    after the question, "No, I want to report it" starts the report from that same message."""
    client = await aiohttp_client(create_app(app_settings(stack)))
    for locale, text, danger_word in (
        ("es-ES", "huele muchísimo a gas en toda la escalera de mi bloque en la calle Verdi desde hace un rato",
         "peligro"),
        ("en-GB", "there is black smoke coming out of the flat next door", "danger"),
        ("ca-ES", "el meu avi ha caigut a terra al carrer de Sants i no es desperta", "perill"),
    ):
        ws, _ = await hello(client, locale=locale)
        replies = await say(ws, {"type": "text", "text": text})
        assert "112" in replies[0]["text"], replies
        payloads = [b["payload"] for b in replies[-1]["buttons"]]
        if payloads == ["/emergency", "/report_incident"]:  # the safety net's question
            assert danger_word in replies[-1]["text"].lower()
            report = await say(ws, {"type": "button", "payload": "/report_incident", "title": "No"})
            said = " ".join(r["text"] for r in report).lower()
            # the form goes on with what is missing: it does not ask again what happened
            assert "?" in said and not any(w in said for w in ("what happened", "qué ha pasado", "què ha passat"))
        else:  # read as an emergency: 112, then the offer to report it
            assert payloads == ["/affirm", "/deny"], payloads
        await ws.close()


@pytest.mark.engine
async def test_bad_frames_get_a_clear_answer_and_the_socket_keeps_serving(stack: Stack, aiohttp_client) -> None:
    client = await aiohttp_client(create_app(app_settings(stack)))
    ws, _ = await hello(client, locale="ca-ES")
    await ws.send_bytes(b"\x00\x01binary")
    assert (await ws.receive_json(timeout=5))["type"] == "error"
    await ws.send_str("{not json")
    assert (await ws.receive_json(timeout=5))["type"] == "error"
    [empty] = await say(ws, {"type": "text", "text": "   "})
    assert empty["type"] == "error"
    [too_long] = await say(ws, {"type": "text", "text": "molt " * 1000})
    assert too_long["type"] == "error" and "4000" in too_long["text"]
    replies = await say(ws, {"type": "text", "text": "bon dia"})
    assert replies and replies[0]["type"] == "message"
    await ws.close()


@pytest.mark.engine
async def test_the_conversation_survives_a_reconnect(stack: Stack, aiohttp_client) -> None:
    client = await aiohttp_client(create_app(app_settings(stack)))
    ws, welcome = await hello(client)
    await say(ws, {"type": "text", "text": "I want to report vandalism"})
    await ws.close()
    ws2, again = await hello(client, session=welcome["session"])
    assert again["sender"] == welcome["sender"]
    replies = await say(ws2, {"type": "text", "text": "cancel"})
    assert "cancelled" in replies[0]["text"]
    await ws2.close()


async def test_cross_origin_socket_is_refused(tmp_path: Path, aiohttp_client) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    response = await client.get("/webchat/ws", headers={
        "Origin": "https://evil.example", "Connection": "Upgrade", "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert response.status == 403


async def test_engine_down_the_citizen_is_told_in_their_language(tmp_path: Path, aiohttp_client) -> None:
    settings = make_settings(tmp_path, rasa_port=free_port(), actions_port=free_port())
    client = await aiohttp_client(create_app(settings))
    ws = await client.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello", "session": None, "locale": "es-ES"})
    await ws.receive_json(timeout=5)
    replies = await say(ws, {"type": "text", "text": "hola, me han robado el móvil"})
    assert replies[0]["text"] == "El servicio no está disponible temporalmente. Vuelve a intentarlo dentro de un minuto."
    health = await client.get("/healthz")
    assert health.status == 503
    assert (await health.json())["engine"] == "down"


async def test_page_has_security_headers_and_is_translated(tmp_path: Path, aiohttp_client) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    response = await client.get("/?lang=ca")
    assert response.status == 200
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    body = await response.text()
    assert '<html lang="ca"' in body and "<script>" not in body


@pytest.mark.engine
async def test_healthz_is_ok_when_everything_answers(stack: Stack, aiohttp_client) -> None:
    client = await aiohttp_client(create_app(app_settings(stack)))
    response = await client.get("/healthz")
    assert response.status == 200, await response.text()
    assert await response.json() == {"status": "ok", "engine": "ok", "actions": "ok", "database": "ok"}



async def report_with_name_and_phone(ws: Any, description: str, name: str = "Montserrat Ferrer",
                                     phone: str = "+34 612 345 678") -> str:
    """File a report through the real engine, giving name and phone; returns its reference.
    (The stack's database is shared: a test that does not erase its citizen gives its own.)"""
    replies = await say(ws, {"type": "text", "text": f"I want to report that {description} on Carrer de Blai"})
    for _ in range(10):
        last = replies[-1]
        payloads = [b["payload"] for b in last.get("buttons", [])]
        if any('"photos_done"' in p for p in payloads):
            replies = await say(ws, {"type": "button", "payload": '/inform{"photos_done":"yes"}', "title": "Continue"})
        elif any('"contact_mode"' in p for p in payloads):
            replies = await say(ws, {"type": "button", "payload": '/inform{"contact_mode":"contact"}', "title": "Name"})
        elif "/affirm" in payloads:
            replies = await say(ws, {"type": "button", "payload": "/affirm", "title": "Send"})
            break
        elif "name" in last["text"].lower() and "phone" not in last["text"].lower():
            replies = await say(ws, {"type": "text", "text": name})
        elif "phone" in last["text"].lower():
            replies = await say(ws, {"type": "text", "text": phone})
        else:
            replies = await say(ws, {"type": "text", "text": "yesterday at 9 pm"})
    found = REF.search(" ".join(r.get("text", "") for r in replies))
    assert found, replies
    return found.group(0)


@pytest.mark.engine
async def test_forget_me_erases_the_conversation_in_the_engine_and_the_case_text(stack: Stack, aiohttp_client) -> None:
    import sqlite3

    settings = app_settings(stack)
    client = await aiohttp_client(create_app(settings))
    ws, welcome = await hello(client, locale="en-GB")
    sender = welcome["sender"]
    secret_words = "my neighbour Jordi Vilanova keeps dealing drugs from flat 3B"
    await report_with_name_and_phone(ws, secret_words)

    def tracker_rows() -> int:
        path = settings.tracker_store_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as connection:
            return connection.execute("SELECT count(*) FROM events WHERE sender_id = ?", (sender,)).fetchone()[0]

    assert tracker_rows() > 0
    await say(ws, {"type": "text", "text": "please delete all my personal data"})
    replies = await say(ws, {"type": "button", "payload": "/affirm", "title": "Yes"})
    assert replies[-1]["type"] == "forget"
    assert tracker_rows() == 0
    path = settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        dump = "\n".join(connection.iterdump())
    for secret in ("Jordi Vilanova", "Montserrat", "612 345 678", "dealing drugs", sender):
        assert secret not in dump
    await ws.close()


async def test_photo_uploads_are_checked_and_refused_clearly(tmp_path: Path, aiohttp_client) -> None:
    settings = make_settings(tmp_path, rasa_port=free_port(), actions_port=free_port(), max_photo_bytes=2048)
    from storage.migrate import upgrade_database

    upgrade_database(settings.database_url)
    client = await aiohttp_client(create_app(settings))
    ws = await client.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello", "session": None, "locale": "es-ES"})
    token = (await ws.receive_json(timeout=5))["session"]
    auth = {"Authorization": f"Bearer {token}"}

    def form(data: bytes, name: str = "photo") -> aiohttp.FormData:
        body = aiohttp.FormData()
        body.add_field(name, data, filename="x.jpg", content_type="image/jpeg")  # the claim is not trusted
        return body

    no_session = await client.post("/webchat/upload", data=form(b"\xff\xd8\xff" + b"0" * 10))
    assert no_session.status == 401
    not_image = await client.post("/webchat/upload", data=form(b"%PDF-1.4 not a photo"), headers=auth)
    assert not_image.status == 415
    assert (await not_image.json())["error"] == "Envía la foto como imagen JPEG, PNG o WebP."
    too_big = await client.post("/webchat/upload", data=form(b"\xff\xd8\xff" + b"0" * 5000), headers=auth)
    assert too_big.status == 413 and "MB" in (await too_big.json())["error"]
    db = create_db_engine(settings.database_url)
    with db.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM attachments").scalar() == 0  # nothing half-stored
    await ws.close()
