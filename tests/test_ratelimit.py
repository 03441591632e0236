"""Per-citizen rate limit: the limiter alone (memory and real Redis), the hub, and a flood
through real web-chat sockets while another citizen files a whole report on the real engine."""

from __future__ import annotations

import asyncio
import io
import math
import sqlite3
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
from redis import asyncio as aioredis

from bot.app import create_app
from bot.channels.base import IncomingMessage
from bot.engine import Conversations, EngineClient
from bot.ratelimit import MemoryRateLimiter, RedisRateLimiter, Verdict, create_rate_limiter
from common.i18n import Catalogs
from common.settings import PROJECT_ROOT
from tests.conftest import Stack, free_port, make_settings
from tests.test_webchat import REF, app_settings, hello, say

REDIS_URL = "redis://127.0.0.1:6379/15"
NOTICE_ES = "Estás enviando demasiados mensajes seguidos, así que no he leído los últimos. Espera un minuto y vuelve a enviarlos."
NOTICE_EN = ("You are sending too many messages at once, so I did not read the last ones. "
             "Please wait a minute, then send them again.")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_limiter_sliding_window_and_one_notice_per_flood() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(limit=3, window=60, clock=clock)
    verdicts = [await limiter.check("web:a") for _ in range(6)]
    assert verdicts == [Verdict.ALLOW] * 3 + [Verdict.NOTIFY, Verdict.DROP, Verdict.DROP]
    assert await limiter.check("telegram:b") is Verdict.ALLOW  # others are unaffected
    clock.now += 30
    assert await limiter.check("web:a") is Verdict.DROP  # refused messages did not count, still full
    clock.now += 30.5  # the first three left the window
    assert [await limiter.check("web:a") for _ in range(4)] == [Verdict.ALLOW] * 3 + [Verdict.NOTIFY]


async def test_memory_limiter_forgets_idle_senders() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(limit=2, window=10, clock=clock)
    for n in range(1000):
        await limiter.check(f"web:{n}")
    clock.now += 11
    await limiter.check("web:new")
    assert set(limiter._seen) == {"web:new"}


def test_no_limiter_when_the_limit_is_zero() -> None:
    assert create_rate_limiter("", 0, 60) is None
    assert isinstance(create_rate_limiter("", 20, 60), MemoryRateLimiter)


@pytest.fixture
async def redis_prefix():
    prefix = f"barri-test:{uuid.uuid4().hex}:"
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_redis_limiter_is_shared_by_instances_and_the_window_moves_on(redis_prefix: str) -> None:
    one = RedisRateLimiter(aioredis.Redis.from_url(REDIS_URL), limit=4, window=1.5, prefix=redis_prefix)
    two = RedisRateLimiter(aioredis.Redis.from_url(REDIS_URL), limit=4, window=1.5, prefix=redis_prefix)
    try:
        verdicts = [await (one if n % 2 else two).check("web:flood") for n in range(7)]
        assert verdicts == [Verdict.ALLOW] * 4 + [Verdict.NOTIFY, Verdict.DROP, Verdict.DROP]
        assert await two.check("web:calm") is Verdict.ALLOW
        await asyncio.sleep(1.6)
        verdicts = [await two.check("web:flood") for _ in range(5)]
        assert verdicts == [Verdict.ALLOW] * 4 + [Verdict.NOTIFY]  # told again for a new flood
        # concurrent checks from both instances never let more than the limit through
        await asyncio.sleep(1.6)
        burst = await asyncio.gather(*[(one if n % 2 else two).check("web:race") for n in range(40)])
        assert burst.count(Verdict.ALLOW) == 4 and burst.count(Verdict.NOTIFY) == 1
        client = aioredis.Redis.from_url(REDIS_URL)
        ttl = await client.pttl(redis_prefix + "web:race")
        await client.aclose()
        assert 0 < ttl <= 1500  # nothing stays in Redis after the window
    finally:
        await one.close()
        await two.close()


async def test_redis_down_falls_back_to_this_process() -> None:
    limiter = RedisRateLimiter.from_url(f"redis://127.0.0.1:{free_port()}/0", limit=2, window=60)
    try:
        assert [await limiter.check("web:x") for _ in range(4)] == [
            Verdict.ALLOW, Verdict.ALLOW, Verdict.NOTIFY, Verdict.DROP]
    finally:
        await limiter.close()


async def test_the_hub_refuses_the_flood_for_every_channel_with_one_notice(tmp_path: Path) -> None:
    # the engine is down: let-through messages get "unavailable", refused ones the limit notice
    catalogs = Catalogs.load(PROJECT_ROOT / "locales", "en")

    async def erase(sender_id: str) -> None:
        return None

    async with aiohttp.ClientSession() as http:
        engine = EngineClient(http, f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")
        hub = Conversations(engine, catalogs, erase, rate_limiter=MemoryRateLimiter(limit=2, window=60))
        flood = IncomingMessage(sender_id="telegram:42", text="me han robado la cartera en el metro", locale_hint="es")
        answers = [await hub.handle(flood) for _ in range(5)]
        unavailable = catalogs.gettext("The service is temporarily unavailable, please try again in a minute.", "es")
        assert [[m.text for m in a] for a in answers] == [[unavailable], [unavailable], [NOTICE_ES], [], []]
        other = await hub.handle(IncomingMessage(sender_id="telegram:43", text="someone stole my bike", locale_hint="en"))
        assert [m.text for m in other] == ["The service is temporarily unavailable, please try again in a minute."]


async def test_instances_sharing_redis_share_the_limit(tmp_path: Path, aiohttp_client) -> None:
    """Two bot-service instances (engine down) with one REDIS_URL: a citizen switching between
    them still gets only the limit."""
    settings = make_settings(tmp_path, rasa_port=free_port(), actions_port=free_port(), redis_url=REDIS_URL,
                             max_messages_per_minute=3)
    one = await aiohttp_client(create_app(settings))
    two = await aiohttp_client(create_app(settings))
    ws1, welcome = await hello(one, locale="en-GB")
    ws2, _ = await hello(two, session=welcome["session"], locale="en-GB")
    try:
        texts = []
        for n in range(5):
            texts.append([r["text"] for r in await say(ws1 if n % 2 else ws2, {"type": "text", "text": "hello there"})])
        assert texts[3] == [NOTICE_EN] and texts[4] == []
        assert all(t and t != [NOTICE_EN] for t in texts[:3])
    finally:
        await ws1.close()
        await ws2.close()
        client = aioredis.Redis.from_url(REDIS_URL)
        await client.delete(f"barri:ratelimit:{welcome['sender']}", f"barri:ratelimit:{welcome['sender']}:told")
        await client.aclose()


async def _report(client, locale: str = "en-GB") -> tuple[str, list[float]]:
    """A whole report over the socket; the reference and each turn's duration."""
    ws, _ = await hello(client, locale=locale)
    turns: list[float] = []

    async def turn(frame: dict) -> list[dict]:
        started = time.monotonic()
        replies = await say(ws, frame)
        turns.append(time.monotonic() - started)
        return replies

    replies = await turn({"type": "text", "text": "someone smashed the window of my car last night on Carrer de Verdi"})
    for _ in range(10):
        last = replies[-1]
        payloads = [b["payload"] for b in last.get("buttons", [])]
        if last.get("request") == "location":
            replies = await turn({"type": "location", "latitude": 41.4036, "longitude": 2.1744})
        elif any('"photos_done"' in p for p in payloads):
            replies = await turn({"type": "button", "payload": '/inform{"photos_done":"yes"}', "title": "Continue"})
        elif any('"contact_mode"' in p for p in payloads):
            replies = await turn({"type": "button", "payload": '/inform{"contact_mode":"anonymous"}', "title": "Anon"})
        elif "/affirm" in payloads:
            replies = await turn({"type": "button", "payload": "/affirm", "title": "Send"})
            break
        else:
            replies = await turn({"type": "text", "text": "yesterday at 11 pm"})
    await ws.close()
    found = REF.search(" ".join(r["text"] for r in replies))
    assert found, replies
    return found.group(0), turns


@pytest.mark.engine
async def test_a_flooder_is_limited_while_another_citizen_files_a_report(stack: Stack, aiohttp_client) -> None:
    settings = app_settings(stack)
    assert settings.max_messages_per_minute == 20 and settings.rate_limit_window_seconds == 60  # the defaults
    client = await aiohttp_client(create_app(settings))
    _, alone = await _report(client)  # the normal time, without a flood

    # three tabs of one flooder, 60 messages at once
    first, welcome = await hello(client, locale="es-ES")
    tabs = [first] + [(await hello(client, session=welcome["session"], locale="es-ES"))[0] for _ in range(2)]
    flooder = welcome["sender"]
    per_tab = 20

    async def flood(ws) -> list[dict]:
        for n in range(per_tab):
            await ws.send_json({"type": "text", "text": f"hola hola spam número {n}"})
        received, done = [], 0
        while done < per_tab * len(tabs):  # every tab sees every delivery's typing off
            frame = await ws.receive_json(timeout=120)
            if frame["type"] == "typing" and frame["on"] is False:
                done += 1
            elif frame["type"] in ("message", "error"):
                received.append(frame)
        return received

    started = time.monotonic()
    flood_task = asyncio.gather(*[flood(ws) for ws in tabs])
    await asyncio.sleep(0.5)  # the flood is under way
    reference, during = await _report(client)
    flooded = await flood_task
    elapsed = time.monotonic() - started
    for ws in tabs:
        await ws.close()

    # the other citizen: a whole report, each turn in normal time
    assert reference
    assert max(during) < max(3 * max(alone), 10), (alone, during)
    assert sum(during) < max(3 * sum(alone), sum(alone) + 30), (alone, during)
    # the flooder: told once (on every open tab), in Spanish; the engine saw at most the limit
    for received in flooded:
        assert [f["text"] for f in received].count(NOTICE_ES) == 1
    path = settings.tracker_store_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        turns = connection.execute(
            "SELECT count(*) FROM events WHERE sender_id = ? AND type_name = 'user'", (flooder,)).fetchone()[0]
    assert 0 < turns <= 20 * math.ceil(elapsed / 60)
    if elapsed < 60:
        assert turns == 20


async def _fresh_session(client, forwarded_for: str) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    """A new web-chat session as seen from ``forwarded_for``; the socket and its session token."""
    ws = await client.ws_connect("/webchat/ws", headers={"X-Forwarded-For": forwarded_for})
    await ws.send_json({"type": "hello", "session": None, "locale": "en-GB"})
    welcome = await ws.receive_json(timeout=10)
    assert welcome["type"] == "welcome"
    return ws, welcome["session"]


async def test_new_sessions_from_one_address_share_its_limit(tmp_path: Path, aiohttp_client) -> None:
    """A flooder opening a new web-chat session per message still meets a limit: the address's.
    Behind one trusted proxy, the address is the last X-Forwarded-For entry (the ones before it
    are whatever the client wrote)."""
    settings = make_settings(tmp_path, rasa_port=free_port(), actions_port=free_port(), trusted_proxies=1,
                             max_messages_per_minute=20, max_messages_per_minute_per_address=3)
    client = await aiohttp_client(create_app(settings))
    texts = []
    for n in range(5):  # a new session each time, a forged first entry each time
        ws, token = await _fresh_session(client, f"10.0.0.{n}, 203.0.113.5")
        try:
            if n < 4:
                texts.append([r["text"] for r in await say(ws, {"type": "text", "text": "hello there"})])
            else:  # told once: the rest is dropped without a word
                await ws.send_json({"type": "text", "text": "hello there"})
                with pytest.raises(asyncio.TimeoutError):
                    await ws.receive_json(timeout=1)
        finally:
            await ws.close()
    assert texts[3] == [NOTICE_EN]
    assert all(t and t != [NOTICE_EN] for t in texts[:3])

    # a photo upload from the limited address is refused the same way, in the citizen's language
    upload = await client.post("/webchat/upload", data={"photo": io.BytesIO(b"x")}, headers={
        "X-Forwarded-For": "203.0.113.5", "Authorization": f"Bearer {token}", "Accept-Language": "en-GB"})
    assert upload.status == 429 and (await upload.json())["error"] == NOTICE_EN

    ws, _ = await _fresh_session(client, "203.0.113.5, 203.0.113.9")  # another citizen's address
    try:
        assert [r["text"] for r in await say(ws, {"type": "text", "text": "hello there"})] != [NOTICE_EN]
    finally:
        await ws.close()


async def test_forwarded_for_is_ignored_without_a_trusted_proxy(tmp_path: Path, aiohttp_client) -> None:
    settings = make_settings(tmp_path, rasa_port=free_port(), actions_port=free_port(),
                             max_messages_per_minute_per_address=2)
    client = await aiohttp_client(create_app(settings))
    texts = []
    for n in range(3):  # every session claims another address: they all come from this one
        ws, _ = await _fresh_session(client, f"198.51.100.{n}")
        try:
            texts.append([r["text"] for r in await say(ws, {"type": "text", "text": "hello there"})])
        finally:
            await ws.close()
    assert texts[2] == [NOTICE_EN] and texts[0] != [NOTICE_EN]


def test_client_address_reads_only_the_trusted_entry() -> None:
    from aiohttp.test_utils import make_mocked_request

    from bot.channels.webchat.channel import client_address

    request = make_mocked_request("GET", "/", headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.4, 10.1.2.3"})
    assert client_address(request, 1) == "10.1.2.3"
    assert client_address(request, 2) == "198.51.100.4"
    assert client_address(request, 4) == client_address(request, 0)  # fewer entries than proxies: the peer
