"""Faults: the bot service killed mid-report, the engine down while citizens write, the
database unreachable for 10 s. Real processes, real sockets, real PostgreSQL; the outages are
made by a TCP proxy the test controls (it drops every connection and refuses new ones)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.app import create_app
from bot.devserver import engine_command, engine_env, newest_model, stop, write_engine_endpoints
from common.geo import Neighbourhoods
from common.i18n import Catalogs
from common.places import Gazetteer
from common.responses import ADAPTER_MESSAGES, RESPONSES
from common.settings import PROJECT_ROOT, Settings
from dialogues.actions.context import Services
from dialogues.actions.report import ActionSaveCase
from storage import inbox as inbox_store
from storage import users
from storage.cases import list_cases_for_sender
from storage.db import create_db_engine, session_scope
from storage.migrate import upgrade_database
from tests.conftest import TEST_RASA_TOKEN, TEST_SECRET, Stack, free_port, make_settings
from tests.test_webchat import say as webchat_say

REF = re.compile(r"\b(?!SHA-256)[2-9A-Z]{3}-[2-9A-Z]{3}\b")
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"

pytestmark = pytest.mark.engine


# --- a TCP proxy that can be cut ---------------------------------------------------------
class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut()`` drops every connection and closes
    the port (new connections are refused), ``restore()`` listens again on the same port.

    It runs its own event loop in a thread, like a network outside the service under test
    (so a synchronous database call in the app's loop cannot stall the proxy too)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def start(self) -> None:
        self._call(self._listen())

    restore = start

    def cut(self) -> None:
        self._call(self._cut())

    def close(self) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    async def _shutdown(self) -> None:
        await self._cut()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()
        self._server = None

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._transports |= {client_writer.transport, upstream_writer.transport}

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.transport.abort()

        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))
        self._transports -= {client_writer.transport, upstream_writer.transport}


ProxyFactory = Callable[[int], TcpProxy]


@pytest.fixture
def proxies() -> Iterator[ProxyFactory]:
    """Started proxies to a port, closed after the test."""
    made: list[TcpProxy] = []

    def make(target_port: int) -> TcpProxy:
        proxy = TcpProxy(target_port)
        proxy.start()
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


# --- web-chat helpers ----------------------------------------------------------------------
async def hello(http: aiohttp.ClientSession, base: str, session: str | None, locale: str):
    ws = await http.ws_connect(f"{base.replace('http', 'ws', 1)}/webchat/ws")
    await ws.send_json({"type": "hello", "session": session, "locale": locale})
    welcome = await ws.receive_json(timeout=10)
    assert welcome["type"] == "welcome"
    return ws, welcome


async def say(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> list[dict[str, Any]]:
    """Send one frame; the bot's messages until the typing indicator goes off, errors included."""
    return await webchat_say(ws, frame, timeout=90, stop_on_error=False)


def question(message: dict[str, Any]) -> str | None:
    """Which report-form question a bot message asks (None: not a form question)."""
    payloads = " ".join(b["payload"] for b in message.get("buttons") or [])
    text = message.get("text", "")
    if message.get("request") == "location":
        return "place"
    if '"photos_done"' in payloads:
        return "photos"
    if '"contact_mode"' in payloads:
        return "contact_mode"
    if '"incident_time"' in payloads:
        return "time"
    if '"incident_type"' in payloads:
        return "type"
    if "/affirm" in payloads and "/deny" in payloads:
        return "summary"
    if "own words" in text or "propias palabras" in text or "teves paraules" in text:
        return "description"
    return None


def answer(last: dict[str, Any]) -> dict[str, Any]:
    """The frame a citizen sends to answer the question in ``last``."""
    kind = question(last)
    buttons = last.get("buttons") or []
    if kind == "place":
        return {"type": "location", "latitude": 41.4036, "longitude": 2.1579}
    if kind in ("photos", "contact_mode", "type"):
        wanted = {"photos": '"photos_done"', "contact_mode": '"chat"', "type": '"incident_type"'}[kind]
        button = next(b for b in buttons if wanted in b["payload"])
        return {"type": "button", "payload": button["payload"], "title": button["title"]}
    if kind == "summary":
        return {"type": "button", "payload": "/affirm", "title": "Send the report"}
    if kind == "time":
        return {"type": "text", "text": "yesterday at 10 pm"}
    return {"type": "text", "text": "Two people smashed the window of the bakery and ran away."}


async def until_summary(ws: aiohttp.ClientWebSocketResponse, replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for _ in range(10):
        if question(replies[-1]) == "summary":
            return replies
        replies = await say(ws, answer(replies[-1]))
    raise AssertionError(f"the form did not reach its summary: {replies}")


async def tracker_user_texts(engine_url: str, sender_id: str) -> list[str]:
    async with aiohttp.ClientSession() as http, http.get(f"{engine_url}/conversations/{sender_id}/tracker",
                                                                params={"token": TEST_RASA_TOKEN}) as response:
        assert response.status == 200
        tracker = await response.json()
    return [event.get("text") for event in tracker["events"] if event["event"] == "user"]


async def wait_http(
    url: str, timeout: float, processes: Sequence[subprocess.Popen[bytes]] = (), status: int = 200
) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            for process in processes:
                assert process.poll() is None, f"{process.args} exited with {process.returncode}"
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=3)) as response:
                    if response.status == status:
                        return
            await asyncio.sleep(0.3)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s")


def cases_of(database_url: str, sender_id: str) -> int:
    db = create_db_engine(database_url)
    try:
        with session_scope(db) as session:
            return len(list_cases_for_sender(session=session, sender_id=sender_id))
    finally:
        db.dispose()


def pending_of(database_url: str, sender_id: str) -> int:
    db = create_db_engine(database_url)
    try:
        with session_scope(db) as session:
            return len(inbox_store.pending_for(session=session, sender_id=sender_id))
    finally:
        db.dispose()


def model_path() -> Path:
    model = Path(os.environ.get("BARRI_TEST_MODEL") or newest_model())
    return model if model.is_absolute() else PROJECT_ROOT / model


# --- 1. kill -9 in the middle of a report ------------------------------------------------
def start_bot_service(stack: Stack, port: int, log: Path) -> subprocess.Popen[bytes]:
    s = stack.settings
    env = {
        **os.environ, "SECRET_KEY": TEST_SECRET, "RASA_TOKEN": TEST_RASA_TOKEN, "DATABASE_URL": s.database_url,
        "TRACKER_STORE_URL": s.tracker_store_url, "RASA_PORT": str(s.rasa_port),
        "ACTIONS_PORT": str(s.actions_port), "BOT_PORT": str(port), "BOT_HOST": "127.0.0.1",
    }
    env.pop("REDIS_URL", None)
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], env=env, cwd=PROJECT_ROOT,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


async def test_kill_9_mid_report_then_restart_continues_the_conversation(stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "bot.log"
    process = start_bot_service(stack, port, log)
    try:
        await wait_http(f"{base}/healthz", 90, [process])
        async with aiohttp.ClientSession() as http:
            ws, welcome = await hello(http, base, None, "en-GB")
            token, sender_id = welcome["session"], welcome["sender"]
            replies = await say(ws, {"type": "text", "text": "I want to report vandalism on my street"})
            asked = []
            while len(asked) < 2:  # answer two questions of the form, then die
                kind = question(replies[-1])
                assert kind is not None and kind != "summary", replies
                asked.append(kind)
                replies = await say(ws, answer(replies[-1]))
            pending = replies[-1]
            assert question(pending) not in (None, *asked), replies

            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            assert process.returncode == -signal.SIGKILL
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                await ws.receive(timeout=5)  # the socket dies with the process

            process = start_bot_service(stack, port, log)  # the same port, a new process
            await wait_http(f"{base}/healthz", 90, [process])
            ws, welcome = await hello(http, base, token, "en-GB")
            assert welcome["sender"] == sender_id  # the same conversation (its token renewed)

            # the citizen answers the question that was on screen: the form goes on from there
            replies = await say(ws, answer(pending))
            following = question(replies[-1])
            assert following is not None and following not in (*asked, question(pending)), replies
            replies = await until_summary(ws, replies)
            replies = await say(ws, answer(replies[-1]))
            saved = " ".join(r["text"] for r in replies)
            assert REF.search(saved), saved
            await ws.close()
        assert await asyncio.to_thread(cases_of, stack.settings.database_url, sender_id) == 1
    finally:
        stop([process], grace=5)


# --- 2. the engine down while a citizen writes --------------------------------------------
def engine_proxy_settings(stack: Stack, tmp: Path, proxy: TcpProxy, **overrides: object) -> Settings:
    s = stack.settings
    settings = make_settings(tmp, rasa_url=f"http://127.0.0.1:{proxy.port}", actions_port=s.actions_port,
                             tracker_store_url=s.tracker_store_url, engine_timeout_seconds=20, **overrides)
    upgrade_database(settings.database_url)
    return settings


async def test_engine_down_message_is_kept_and_answered_when_it_is_back(
    stack: Stack, tmp_path: Path, aiohttp_client: Any, proxies: ProxyFactory
) -> None:
    proxy = proxies(stack.settings.rasa_port)
    settings = engine_proxy_settings(stack, tmp_path, proxy, replay_probe_seconds=0.5)
    client = await aiohttp_client(create_app(settings))
    catalogs = Catalogs.load(settings.locales_dir, "en")
    queued_es = catalogs.gettext(ADAPTER_MESSAGES["queued"], "es")
    assert queued_es != ADAPTER_MESSAGES["queued"]  # translated

    ws = await client.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello", "session": None, "locale": "es-ES"})
    sender_id = (await ws.receive_json(timeout=10))["sender"]
    first = await say(ws, {"type": "text", "text": "hola"})
    assert first and first[0]["text"] != queued_es

    proxy.cut()
    written = ["quiero denunciar que me han robado la bicicleta", "fue ayer por la noche"]
    for text in written:
        replies = await say(ws, {"type": "text", "text": text})
        assert [r["text"] for r in replies] == [queued_es]  # told at once, in Spanish
    assert await asyncio.to_thread(pending_of, settings.database_url, sender_id) == 2

    proxy.restore()
    # the replayer notices the engine is back and answers without the citizen resending
    answers: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and await asyncio.to_thread(pending_of, settings.database_url, sender_id):
        with contextlib.suppress(TimeoutError):
            frame = await ws.receive_json(timeout=1)
            if frame["type"] == "message":
                answers.append(frame)
    with contextlib.suppress(TimeoutError):
        while True:
            frame = await ws.receive_json(timeout=3)
            if frame["type"] == "message":
                answers.append(frame)
    assert await asyncio.to_thread(pending_of, settings.database_url, sender_id) == 0
    assert answers and all(a["text"] != queued_es for a in answers)
    assert any(question(a) is not None for a in answers), answers  # the report form goes on
    texts = await tracker_user_texts(stack.settings.engine_url, sender_id)
    assert texts == ["hola", *written]  # each once, in order
    await ws.close()


async def test_a_replayed_time_keeps_the_moment_it_was_written(
    stack: Stack, tmp_path: Path, aiohttp_client: Any, proxies: ProxyFactory
) -> None:
    """Written during a two-hour outage and replayed when the engine is back: "hace 10 minutos"
    counts from when the citizen wrote it (the kept message's received_at), not the replay.
    ("ahora mismo" itself, read the same way, in tests/actions/test_place_actions.py: through the
    engine it may be asked about first, as a danger happening now.)"""
    proxy = proxies(stack.settings.rasa_port)
    settings = engine_proxy_settings(stack, tmp_path, proxy, replay_probe_seconds=0.5)
    client = await aiohttp_client(create_app(settings))
    ws = await client.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello", "session": None, "locale": "es-ES"})
    sender_id = (await ws.receive_json(timeout=10))["sender"]
    replies = await say(ws, {"type": "text", "text": "quiero denunciar que me han roto el retrovisor del coche"})
    for _ in range(8):  # up to the time question
        if question(replies[-1]) == "time":
            break
        frame = answer(replies[-1])
        if frame.get("type") == "text":
            frame = {"type": "text", "text": "Me rompieron el retrovisor del coche aparcado en la calle"}
        replies = await say(ws, frame)
    assert question(replies[-1]) == "time", replies

    proxy.cut()
    await say(ws, {"type": "text", "text": "hace 10 minutos"})
    written = datetime.now(UTC) - timedelta(hours=2)

    def two_hours_ago() -> None:  # as if the engine had been down for two hours since
        db = create_db_engine(settings.database_url)
        with session_scope(db) as session:
            (row,) = inbox_store.pending_for(session=session, sender_id=sender_id)
            meta = inbox_store.decode_metadata(row)
            row.meta = json.dumps({**meta, "received_at": written.isoformat()})
            session.add(row)
        db.dispose()

    await asyncio.to_thread(two_hours_ago)
    proxy.restore()
    for _ in range(120):  # the replayer takes it when the engine answers its probe
        if not await asyncio.to_thread(pending_of, settings.database_url, sender_id):
            break
        await asyncio.sleep(0.5)
    assert await asyncio.to_thread(pending_of, settings.database_url, sender_id) == 0
    async with aiohttp.ClientSession() as http, \
            http.get(f"{stack.settings.engine_url}/conversations/{sender_id}/tracker",
                     params={"token": TEST_RASA_TOKEN}) as response:
        tracker = await response.json()
    slots = tracker["slots"]
    assert slots.get("incident_time"), [(e.get("event"), e.get("text") or e.get("name"), (e.get("parse_data") or {})
                                         .get("intent"), e.get("value")) for e in tracker["events"][-12:]]
    occurred = datetime.fromisoformat(slots["incident_time"]["iso"])
    assert abs(occurred - (written - timedelta(minutes=10))) < timedelta(seconds=2), (occurred, written)
    await ws.close()


async def test_a_message_written_after_the_engine_returns_waits_behind_the_kept_ones(
    stack: Stack, tmp_path: Path, aiohttp_client: Any, proxies: ProxyFactory
) -> None:
    proxy = proxies(stack.settings.rasa_port)
    # the background replay is far away: the next message itself must replay the kept ones first
    settings = engine_proxy_settings(stack, tmp_path, proxy, replay_probe_seconds=3600)
    client = await aiohttp_client(create_app(settings))
    catalogs = Catalogs.load(settings.locales_dir, "en")
    queued_ca = catalogs.gettext(ADAPTER_MESSAGES["queued"], "ca")

    ws = await client.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello", "session": None, "locale": "ca-ES"})
    sender_id = (await ws.receive_json(timeout=10))["sender"]
    proxy.cut()
    kept = "vull denunciar un robatori al carrer"
    assert [r["text"] for r in await say(ws, {"type": "text", "text": kept})] == [queued_ca]
    proxy.restore()
    later = "ahir a la nit"
    replies = await say(ws, {"type": "text", "text": later})
    assert replies and all(r["text"] != queued_ca for r in replies)
    assert await tracker_user_texts(stack.settings.engine_url, sender_id) == [kept, later]
    assert await asyncio.to_thread(pending_of, settings.database_url, sender_id) == 0
    await ws.close()


# --- 3. the database unreachable for 10 s --------------------------------------------------
async def test_saving_a_case_without_the_database_tells_the_citizen_and_waits_for_them(
    tmp_path: Path, gazetteer: Gazetteer
) -> None:
    """The action on real rasa-sdk objects, its database at a port nobody answers on."""
    settings = make_settings(tmp_path, database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    services = Services(settings=settings, catalogs=Catalogs.load(settings.locales_dir),
                        db=create_db_engine(settings.database_url),
                        neighbourhoods=Neighbourhoods.from_geojson(settings.neighbourhoods_geojson),
                        gazetteer=gazetteer)
    slots = {"language": "es", "incident_type": "noise", "description": "music until 4am every weekend",
             "place": "Plaça del Sol", "incident_time": {"unknown": True}, "contact_mode": "anonymous",
             "photos": [], "report_confirmed": True}
    tracker = Tracker.from_dict({"sender_id": "web:nodb", "slots": slots, "events": [], "active_loop": {},
                                 "latest_message": {"text": "/affirm", "intent": {"name": "affirm"}},
                                 "latest_action_name": "report_form"})
    dispatcher = CollectingDispatcher()
    events = await ActionSaveCase(services).run(dispatcher, tracker, {})
    expected = services.catalogs.gettext(RESPONSES["utter_case_not_saved"].text, "es")
    assert [m["text"] for m in dispatcher.messages] == [expected]
    # back at the confirmation, and the engine listens (it must not re-read the same "yes")
    assert events == [SlotSet("report_confirmed", None), SlotSet("requested_slot", "report_confirmed"),
                      ActiveLoop("report_form"), FollowupAction("action_listen")]
    services.db.dispose()


def start_engine_and_actions(settings: Settings, env: dict[str, str], tmp: Path) -> list[subprocess.Popen[bytes]]:
    endpoints = write_engine_endpoints(settings, tmp / "endpoints.yml")
    with (tmp / "actions.log").open("wb") as actions_out, (tmp / "engine.log").open("wb") as engine_out:
        return [
            subprocess.Popen([sys.executable, "-m", "dialogues.actions"], env=env, cwd=PROJECT_ROOT,
                             stdout=actions_out, stderr=subprocess.STDOUT, start_new_session=True),
            subprocess.Popen(engine_command(settings, model_path(), endpoints), env=engine_env(env),
                             cwd=PROJECT_ROOT, stdout=engine_out, stderr=subprocess.STDOUT, start_new_session=True),
        ]


@pytest.fixture
async def faults_database() -> AsyncIterator[str]:
    name = f"barri_faults_{uuid.uuid4().hex[:8]}"
    try:
        admin = await psycopg.AsyncConnection.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 does not answer: {error}")
    async with admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_database_unreachable_for_10_s_fails_cleanly_and_recovers(
    faults_database: str, tmp_path: Path, aiohttp_client: Any, proxies: ProxyFactory
) -> None:
    direct_url = f"postgresql://postgres@127.0.0.1:5432/{faults_database}"
    await asyncio.to_thread(upgrade_database, direct_url)

    def add_staff() -> str:
        db = create_db_engine(direct_url)
        try:
            with session_scope(db) as session:
                return users.create_user(session=session, name="ana", role="dispatcher")[1]
        finally:
            db.dispose()

    staff_token = await asyncio.to_thread(add_staff)
    proxy = proxies(5432)
    proxied_url = f"postgresql://postgres@127.0.0.1:{proxy.port}/{faults_database}"
    # an engine and action server of this test's own: the action server saves cases through the proxy
    settings = make_settings(tmp_path, database_url=proxied_url, rasa_port=free_port(), actions_port=free_port())
    env = {**os.environ, "SECRET_KEY": TEST_SECRET, "RASA_TOKEN": TEST_RASA_TOKEN, "DATABASE_URL": proxied_url,
           "TRACKER_STORE_URL": settings.tracker_store_url, "ACTIONS_PORT": str(settings.actions_port),
           "RASA_PORT": str(settings.rasa_port)}
    processes = start_engine_and_actions(settings, env, tmp_path)
    try:
        await wait_http(f"{settings.action_server_url}/health", 120, processes)
        await wait_http(f"{settings.engine_url}/status?token={TEST_RASA_TOKEN}", 300, processes)
        client = await aiohttp_client(create_app(settings))
        staff = {"Authorization": f"Bearer {staff_token}"}
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/api/v1/cases", headers=staff)).status == 200

        ws = await client.ws_connect("/webchat/ws")
        await ws.send_json({"type": "hello", "session": None, "locale": "es-ES"})
        sender_id = (await ws.receive_json(timeout=10))["sender"]
        replies = await say(ws, {"type": "text", "text": "quiero denunciar que han roto el escaparate de la panadería"})
        replies = await until_summary(ws, replies)

        proxy.cut()
        cut_at = time.monotonic()
        health = await client.get("/healthz")
        assert health.status == 503
        assert (await health.json())["database"] == "down"
        for path in ("/api/v1/cases", "/api/v1/stats"):
            response = await client.get(path, headers=staff)
            assert response.status == 503, path
            body = await response.json()
            assert "database" in body["error"] and response.headers["Retry-After"]
        open311 = await client.get("/open311/v2/requests.json")
        assert open311.status == 503
        # the citizen confirms the report: told clearly, in Spanish, that it was not saved
        replies = await say(ws, {"type": "button", "payload": "/affirm", "title": "Enviar"})
        not_saved_es = Catalogs.load(settings.locales_dir, "en").gettext(
            RESPONSES["utter_case_not_saved"].text, "es")
        assert any(r["text"] == not_saved_es for r in replies), replies
        # back at the confirmation, with everything the citizen said still there
        assert [b["payload"] for b in replies[-1]["buttons"]] == ["/affirm"], replies
        # another citizen chats meanwhile: answered, and the service does not fall over
        other = await client.ws_connect("/webchat/ws")
        await other.send_json({"type": "hello", "session": None, "locale": "en-GB"})
        assert (await other.receive_json(timeout=10))["type"] == "welcome"
        assert await say(other, {"type": "text", "text": "what is the emergency number?"})
        await asyncio.sleep(max(0.0, 10 - (time.monotonic() - cut_at)))
        assert (await client.get("/healthz")).status == 503

        proxy.restore()
        await wait_http(f"{client.make_url('/healthz')}", 20)  # recovers by itself
        assert (await client.get("/api/v1/cases", headers=staff)).status == 200
        assert await asyncio.to_thread(cases_of, direct_url, sender_id) == 0  # nothing half-stored
        replies = await say(ws, {"type": "button", "payload": "/affirm", "title": "Enviar"})
        assert REF.search(" ".join(r["text"] for r in replies)), replies
        assert await asyncio.to_thread(cases_of, direct_url, sender_id) == 1
        assert all(p.poll() is None for p in processes)  # nothing crashed
        await ws.close()
        await other.close()
    finally:
        stop(processes, grace=10)
