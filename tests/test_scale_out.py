"""Scale-out: two engines and two bot services take turns on the same conversations.

The production topology without Docker, on the PostgreSQL and Redis answering on 127.0.0.1:
one action server, two engine instances sharing the model, a SQL tracker store on PostgreSQL
and a Redis lock store, and two bot services (real `barri serve` processes), each talking to
its own engine. Citizens' turns alternate between the two bot services; two messages of one
citizen sent at the same moment through both are taken one after the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from bench.citizen import SCRIPTS, Frame, Outcome, file_report, hello, say
from bot.devserver import engine_command, engine_env, lock_store_config, newest_model, stop, write_engine_endpoints
from common.settings import PROJECT_ROOT, Settings
from storage.migrate import upgrade_database
from tests.conftest import ENGINE_PYTHON, TEST_RASA_TOKEN, TEST_SECRET, free_port, make_settings, wait_until_up

POSTGRES = os.environ.get("BARRI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BARRI_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")
STORE = "nlu.lock_store.AtomicRedisLockStore"


# endpoints (no servers needed) ---------------------------------------------------------------
def test_redis_url_becomes_the_engines_lock_store(tmp_path: Path) -> None:
    assert lock_store_config("redis://127.0.0.1:6379/3") == {"type": STORE, "url": "127.0.0.1", "port": 6379, "db": 3}
    assert lock_store_config("rediss://barri:s%40cret@cache.internal") == {
        "type": STORE, "url": "cache.internal", "port": 6379, "db": 1,
        "username": "barri", "password": "s@cret", "use_ssl": True,
    }
    settings = make_settings(tmp_path, redis_url="redis://10.0.0.7:6380/2",
                             tracker_store_url="postgresql://rasa:pw@db.internal:5433/tracker")
    endpoints = yaml.safe_load(write_engine_endpoints(settings, tmp_path / "endpoints.yml").read_text())
    assert endpoints["lock_store"] == {"type": STORE, "url": "10.0.0.7", "port": 6380, "db": 2}
    assert endpoints["tracker_store"] == {"type": "SQL", "dialect": "postgresql", "url": "db.internal", "port": 5433,
                                          "db": "tracker", "username": "rasa", "password": "pw"}
    assert (tmp_path / "endpoints.yml").stat().st_mode & 0o077 == 0  # it holds passwords
    # without REDIS_URL a single engine locks in memory, as before
    alone = yaml.safe_load(write_engine_endpoints(make_settings(tmp_path), tmp_path / "alone.yml").read_text())
    assert "lock_store" not in alone
    with pytest.raises(ValueError, match="REDIS_URL"):
        make_settings(tmp_path, redis_url="http://127.0.0.1:6379")


LOCK_WORKER = """
import asyncio, json, os, sys, time
from urllib.parse import urlsplit
import redis
from rasa.core.lock_store import LockError
from rasa.utils.endpoints import EndpointConfig
from nlu.lock_store import AtomicRedisLockStore

url, conversation, start_at, turns = urlsplit(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
db = int(url.path.strip("/") or 1)
store = AtomicRedisLockStore(EndpointConfig(url=url.hostname, port=url.port or 6379, db=db))
red = redis.StrictRedis(host=url.hostname, port=url.port or 6379, db=db)
result = {"served": 0, "overlaps": 0, "errors": 0}

async def main():
    while time.time() < start_at:
        await asyncio.sleep(0.001)
    for _ in range(turns):
        try:
            async with store.lock(conversation, wait_time_in_seconds=0.01):
                if not red.set("holder:" + conversation, os.getpid(), nx=True):
                    result["overlaps"] += 1  # someone else is inside the lock
                await asyncio.sleep(0.002)
                red.delete("holder:" + conversation)
                result["served"] += 1
        except LockError:
            result["errors"] += 1

asyncio.run(main())
print(json.dumps(result))
"""


def test_the_engines_lock_store_lets_one_process_at_a_time_into_a_conversation() -> None:
    """Three engine-side processes hammer one conversation's lock: never two inside at once,
    no ticket lost (Rasa's stock RedisLockStore hangs all three within seconds here)."""
    import time

    python = ENGINE_PYTHON
    if not python.exists():
        pytest.skip("no engine environment (.venv-engine)")
    if not _redis_answers():
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    conversation = f"barri-lock-test-{uuid.uuid4().hex[:8]}"
    start_at = str(time.time() + 20)  # all three start together once Rasa is imported
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    workers = [subprocess.Popen([str(python), "-c", LOCK_WORKER, REDIS_URL, conversation, start_at, "100"],
                                env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
               for _ in range(3)]
    results = []
    for worker in workers:
        out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    assert results == [{"served": 100, "overlaps": 0, "errors": 0}] * 3
    assert _redis_command("EXISTS", f"lock:{conversation}") == b"+OK\r\n:0\r\n"  # nothing left behind


def _redis_command(*words: str) -> bytes:
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(REDIS_URL)
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379), timeout=3) as sock:
        db = url.path.strip("/") or "1"
        request = b"".join(f"*{len(w)}\r\n".encode() + b"".join(f"${len(x.encode())}\r\n{x}\r\n".encode() for x in w)
                           for w in (("SELECT", db), words))
        sock.sendall(request)
        reply = b""
        while reply.count(b"\r\n") < 2:
            reply += sock.recv(64)
        return reply


# the stack -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScaleStack:
    bots: tuple[str, str]
    engines: tuple[str, str]
    app_db: Engine
    tracker_db: Engine


def _redis_answers() -> bool:
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379), timeout=3) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def scale_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleStack]:
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        pytest.skip(f"PostgreSQL not reachable: {error}")
    if not _redis_answers():
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    model_env = os.environ.get("BARRI_TEST_MODEL")
    model = Path(model_env) if model_env else newest_model()
    model = model if model.is_absolute() else PROJECT_ROOT / model
    suffix = uuid.uuid4().hex[:8]
    names = {"app": f"barri_scale_app_{suffix}", "tracker": f"barri_scale_tracker_{suffix}"}
    with admin.connect() as connection:
        for name in names.values():
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    urls = {key: admin.url.set(database=name).render_as_string(hide_password=False) for key, name in names.items()}
    tmp = tmp_path_factory.mktemp("scale")
    base = make_settings(tmp, database_url=urls["app"], tracker_store_url=urls["tracker"].replace("+psycopg", ""),
                         redis_url=REDIS_URL, actions_port=free_port())
    engine_ports, bot_ports = (free_port(), free_port()), (free_port(), free_port())
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    app_db = create_engine(urls["app"])
    tracker_db = create_engine(urls["tracker"])

    def start(name: str, command: list[str], env: dict[str, str]) -> None:
        log = tmp / f"{name}.log"
        with log.open("wb") as out:
            processes.append(subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=out,
                                              stderr=subprocess.STDOUT, start_new_session=True))
        logs.append(log)

    try:
        upgrade_database(base.database_url)
        endpoints = write_engine_endpoints(base, tmp / "endpoints.yml")
        env = {**os.environ, "SECRET_KEY": TEST_SECRET, "RASA_TOKEN": TEST_RASA_TOKEN, "DATABASE_URL": base.database_url,
               "TRACKER_STORE_URL": base.tracker_store_url, "REDIS_URL": REDIS_URL,
               "ACTIONS_PORT": str(base.actions_port)}
        start("actions", [sys.executable, "-m", "dialogues.actions"], env)
        engine_settings = [Settings(**{**base.model_dump(), "rasa_port": port}) for port in engine_ports]
        for i, settings in enumerate(engine_settings):
            start(f"engine{i}", engine_command(settings, model, endpoints), engine_env(env))
            if i == 0:  # let the first engine create the tracker tables, so the two do not race to
                _wait_for_table(tracker_db, "events", processes, logs)
        for i, (bot_port, engine_port) in enumerate(zip(bot_ports, engine_ports, strict=True)):
            start(f"bot{i}", [sys.executable, "-m", "bot.cli", "serve"],
                  {**env, "BOT_PORT": str(bot_port), "RASA_PORT": str(engine_port)})
        engines = tuple(f"http://127.0.0.1:{port}" for port in engine_ports)
        bots = tuple(f"http://127.0.0.1:{port}" for port in bot_ports)
        wait_until_up(f"{base.action_server_url}/health", 120, processes, logs)
        for url in (*engines, *bots):
            wait_until_up(f"{url}/status?token={TEST_RASA_TOKEN}" if url in engines else f"{url}/healthz", 300, processes, logs)
        yield ScaleStack(bots=bots, engines=engines, app_db=app_db, tracker_db=tracker_db)  # type: ignore[arg-type]
    finally:
        stop(processes, grace=10)
        app_db.dispose()
        tracker_db.dispose()
        with admin.connect() as connection:
            for name in names.values():
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _wait_for_table(db: Engine, table: str, processes: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    import time

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for process, log in zip(processes, logs, strict=True):
            if process.poll() is not None:
                raise RuntimeError(f"{process.args[0]} exited:\n{log.read_text()[-4000:]}")
        with db.connect() as connection:
            if connection.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar():
                return
        time.sleep(0.5)
    raise RuntimeError(f"the engine did not create the {table} table")


@asynccontextmanager
async def citizen_on_both(http: aiohttp.ClientSession, stack: ScaleStack, locale: str) -> AsyncIterator[
        tuple[str, tuple[aiohttp.ClientWebSocketResponse, aiohttp.ClientWebSocketResponse]]]:
    """One citizen with a socket on each bot service: the same signed session token on both."""
    first = await http.ws_connect(stack.bots[0].replace("http", "ws", 1) + "/webchat/ws")
    second = await http.ws_connect(stack.bots[1].replace("http", "ws", 1) + "/webchat/ws")
    try:
        welcome = await hello(first, None, locale)
        again = await hello(second, welcome["session"], locale)
        assert again["sender"] == welcome["sender"]  # the other instance accepts the token
        yield welcome["sender"], (first, second)
    finally:
        await first.close()
        await second.close()


def _events(stack: ScaleStack, sender: str) -> list[tuple[str, str | None, str]]:
    with stack.tracker_db.connect() as connection:
        rows = connection.execute(
            text("SELECT type_name, action_name, data FROM events WHERE sender_id = :s ORDER BY id"), {"s": sender}
        ).all()
    return [(row[0], row[1], row[2]) for row in rows]


def _turns_are_whole(events: list[tuple[str, str | None, str]]) -> None:
    """Every user message is followed by the engine's answer and action_listen before the next one."""
    listening = True
    for type_name, action_name, _ in events:
        if type_name == "user":
            assert listening, "a message was taken while another turn of the same conversation was running"
            listening = False
        elif type_name == "action" and action_name == "action_listen":
            listening = True
    assert len({data for _, _, data in events}) == len(events), "an event was stored twice"


# tests ---------------------------------------------------------------------------------------
@pytest.mark.engine
@pytest.mark.postgres
async def test_reports_alternate_between_two_bot_services_and_two_engines(scale_stack: ScaleStack) -> None:
    async with aiohttp.ClientSession() as http:

        async def citizen(script_index: int) -> tuple[str, Outcome]:
            script = SCRIPTS[script_index]
            async with citizen_on_both(http, scale_stack, script.locale) as (sender, sockets):

                async def send(turn: int, frame: Frame) -> list[Frame]:
                    return await say(sockets[turn % 2], frame)  # every turn on the other instance

                outcome = await file_report(script, send)
            return sender, outcome

        results = await asyncio.gather(*(citizen(i) for i in range(len(SCRIPTS))))

    with scale_stack.app_db.connect() as connection:
        for (sender, outcome), script in zip(results, SCRIPTS, strict=True):
            assert outcome.ref, sender
            cases = connection.execute(text(
                "SELECT c.ref, c.category, c.channel, c.locale, c.contact_mode, c.neighbourhood_name,"
                " c.description, c.occurred_at FROM cases c JOIN reporters r ON r.id = c.reporter_id"
                " WHERE r.sender_id = :s"), {"s": sender}).all()
            assert len(cases) == 1, f"{sender} has {len(cases)} cases"
            case = cases[0]
            assert case.ref == outcome.ref
            assert (case.category, case.channel, case.locale[:2], case.contact_mode) == (
                script.category, "web", script.locale[:2], "chat")
            assert case.neighbourhood_name == script.neighbourhood
            assert script.description in case.description or script.opening in case.description
            assert case.occurred_at is not None
            # the engines stored one consistent conversation, whichever of them took each turn
            events = _events(scale_stack, sender)
            assert sum(1 for e in events if e[0] == "user") == outcome.turns
            _turns_are_whole(events)
        assert connection.execute(text("SELECT count(*) FROM cases")).scalar() == len(SCRIPTS)
    # both engines read the same conversation from the shared tracker store
    async with aiohttp.ClientSession() as http:
        sender = results[0][0]
        seen = []
        for engine in scale_stack.engines:
            async with http.get(f"{engine}/conversations/{sender}/tracker",
                                params={"token": TEST_RASA_TOKEN}) as response:
                assert response.status == 200
                tracker = await response.json()
                seen.append((len(tracker["events"]), tracker["latest_message"]["text"]))
        assert seen[0] == seen[1]


async def _monitor_redis(found: list[str], stop_event: asyncio.Event) -> None:
    """Record every command the Redis server runs (to see the engines take their locks)."""
    from urllib.parse import urlsplit

    url = urlsplit(REDIS_URL)
    reader, writer = await asyncio.open_connection(url.hostname or "127.0.0.1", url.port or 6379)
    writer.write(b"MONITOR\r\n")
    await writer.drain()
    try:
        while not stop_event.is_set():
            try:
                line = await asyncio.wait_for(reader.readline(), timeout=0.2)
            except TimeoutError:
                continue
            found.append(line.decode(errors="replace"))
    finally:
        writer.close()


@pytest.mark.engine
@pytest.mark.postgres
async def test_two_messages_at_once_through_both_instances_are_taken_in_turn(scale_stack: ScaleStack) -> None:
    redis_log: list[str] = []
    stop_monitor = asyncio.Event()
    monitor = asyncio.create_task(_monitor_redis(redis_log, stop_monitor))
    await asyncio.sleep(0.3)
    pairs = [
        ("en-GB", "I want to report vandalism", "is my report anonymous?"),
        ("es-ES", "quiero denunciar un robo", "¿qué número llamo en una emergencia?"),
        ("ca-ES", "hola", "vull denunciar soroll"),
    ]
    try:
        async with aiohttp.ClientSession() as http:

            async def both_at_once(locale: str, one: str, other: str) -> tuple[str, list[Frame], list[Frame]]:
                async with citizen_on_both(http, scale_stack, locale) as (sender, (first, second)):
                    answers = await asyncio.gather(say(first, {"type": "text", "text": one}),
                                                   say(second, {"type": "text", "text": other}))
                    # the conversation goes on normally afterwards, on either instance
                    after = await say(first, {"type": "text", "text": "cancel"})
                    assert after and after[0]["type"] == "message"
                return sender, *answers

            results = await asyncio.gather(*(both_at_once(*pair) for pair in pairs))
    finally:
        stop_monitor.set()
        await monitor

    for (sender, first_answer, second_answer), (_, one, other) in zip(results, pairs, strict=True):
        for answer in (first_answer, second_answer):
            assert answer and all(frame["type"] == "message" for frame in answer), answer
        events = _events(scale_stack, sender)
        user_texts = [json.loads(data)["text"] for type_name, _, data in events if type_name == "user"]
        assert sorted(user_texts[:2]) == sorted([one, other])  # both kept, once each
        assert user_texts[2:] == ["cancel"]
        _turns_are_whole(events)
        # the turns were serialised through the shared Redis lock store
        assert any(f"lock:{sender}" in line for line in redis_log), f"no Redis lock taken for {sender}"
