"""Random and malformed WebSocket frames against the real web-chat socket (real engine): each
gets a clear error frame, or the socket closes cleanly; the server logs no error, and another
citizen's conversation keeps working."""

from __future__ import annotations

import json
import logging
import random

import aiohttp
import pytest
from aiohttp import WSMsgType

from bot.app import create_app
from tests.conftest import Stack
from tests.test_webchat import app_settings, hello, say

CLEAN_CLOSES = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011}


def random_value(rng: random.Random, depth: int = 0) -> object:
    kinds = ["str", "int", "float", "bool", "none", "unicode"] + (["list", "dict"] if depth < 2 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return "".join(rng.choice("abc/{}\"\\:<>") for _ in range(rng.randint(0, 20)))
    if kind == "unicode":
        return "".join(chr(rng.choice([rng.randint(0, 0x2FF), rng.randint(0x300, 0xFFFF), rng.randint(0x1F300, 0x1FAFF)]))
                       for _ in range(rng.randint(0, 30)))
    if kind == "int":
        return rng.choice([0, -1, 2**63, -(2**70), rng.randint(-1000, 1000)])
    if kind == "float":
        return rng.choice([0.5, -91.0, 1e308, 41.38])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["type", "text", "payload", "latitude", "x"]): random_value(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


def malformed_frames(seed: int, count: int) -> list[tuple[str, object]]:
    """Frames that must never reach the engine: ("text", str) or ("binary", bytes)."""
    rng = random.Random(seed)
    fixed: list[tuple[str, object]] = [
        ("binary", b"\x00\x01\x02"), ("binary", bytes(range(256))), ("binary", b'{"type":"text","text":"hi"}'),
        ("text", ""), ("text", "{"), ("text", "null"), ("text", "[]"), ("text", "42"), ("text", '"text"'),
        ("text", "NaN"), ("text", '{"type": "text"}'), ("text", '{"type": "text", "text": null}'),
        ("text", '{"type": "text", "text": ["a"]}'), ("text", '{"type": "text", "text": {"$gt": ""}}'),
        ("text", '{"type": "text", "text": "   \\n\\t  "}'), ("text", '{"type": "button"}'),
        ("text", '{"type": "button", "payload": "no slash"}'), ("text", '{"type": "button", "payload": 5}'),
        ("text", json.dumps({"type": "button", "payload": "/" + "x" * 600})),
        ("text", '{"type": "location"}'), ("text", '{"type": "location", "latitude": "north", "longitude": 2}'),
        ("text", '{"type": "location", "latitude": 91, "longitude": 2}'),
        ("text", '{"type": "location", "latitude": NaN, "longitude": Infinity}'),
        ("text", '{"type": "location", "latitude": 1e999, "longitude": -1e999}'),
        ("text", '{"type": "location", "latitude": [41], "longitude": {"x": 2}}'),
        ("text", '{"type": "hello", "session": null}'), ("text", '{"type": "welcome"}'),
        ("text", '{"type": "typing", "on": true}'), ("text", '{"type": "forget"}'), ("text", '{"type": null}'),
        ("text", '{"type": ["text"]}'), ("text", '{"type": {"x": 1}}'), ("text", '{"Type": "text", "text": "hi"}'),
        ("text", json.dumps({"type": "text", "text": "x" * 4001})), ("text", "{" * 5000 + "}" * 5000),
        ("text", '{"type": "text", "text": "hi", "type": 7}'), ("text", "\ufeff{}"),
        ("text", '{"type": "text", "text": "\\ud800 a lone surrogate"}'),  # found by this test: it crashed
        ("text", '{"type": "hello", "locale": "\\udfff"}'), ("text", "[" * 30000 + "]" * 30000),
    ]
    generated: list[tuple[str, object]] = []
    while len(generated) < count:
        choice = rng.random()
        if choice < 0.2:
            generated.append(("binary", rng.randbytes(rng.randint(0, 300))))
        elif choice < 0.4:
            generated.append(("text", "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(rng.randint(1, 80)))))
        else:
            frame = random_value(rng)
            if isinstance(frame, dict) and frame.get("type") in ("text", "button", "location"):
                continue  # might be a valid message for the engine
            generated.append(("text", json.dumps(frame)))
    return fixed + generated


async def expect_error(ws: aiohttp.ClientWebSocketResponse) -> dict:
    while True:
        message = await ws.receive(timeout=10)
        assert message.type == WSMsgType.TEXT, message
        frame = json.loads(message.data)
        if frame["type"] == "typing":
            continue
        assert frame["type"] == "error" and frame["text"].strip(), frame
        return frame


@pytest.mark.engine
async def test_random_and_malformed_frames_never_break_the_service(
    stack: Stack, aiohttp_client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    client = await aiohttp_client(create_app(app_settings(stack)))
    bystander, _ = await hello(client, locale="ca-ES")

    # before hello: anything but a hello is refused, the socket stays open
    early = await client.ws_connect("/webchat/ws")
    await early.send_json({"type": "text", "text": "hola"})
    await expect_error(early)
    await early.send_json({"type": "hello", "session": {"forged": True}, "locale": {"x": 1}})
    assert (await early.receive_json(timeout=5))["type"] == "welcome"
    await early.close()

    ws, _ = await hello(client, session="web:0000.forged-signature", locale="es-ES")
    for kind, data in malformed_frames(seed=20261129, count=120):
        if kind == "binary":
            await ws.send_bytes(data)  # type: ignore[arg-type]
        else:
            await ws.send_str(data)  # type: ignore[arg-type]
        frame = await expect_error(ws)
        if kind == "text" and str(data).startswith('{"type": "text", "text": "xxx'):
            assert "4000" in frame["text"]  # too long, said so

    # control frames: ping is answered, an unsolicited pong is ignored
    await ws.ping(b"are you there")
    await ws.pong(b"unsolicited")
    await ws.send_str("{oops")
    await expect_error(ws)

    # valid frames with random unicode reach the engine and get an answer
    rng = random.Random(7)
    texts = ["\u202eevil\u202c", "\x00\x01\x02", "😀" * 100, "a" * 4000,
             "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(50)), "<script>alert(1)</script>",
             "/restart", "/inform{\"latitude\": 1}"]
    for text in texts:
        replies = await say(ws, {"type": "text", "text": text})
        assert replies and all(r["type"] in ("message", "error") and r.get("text") for r in replies), (text, replies)
    for payload in ['/inform{"photos_done": {"$ne": 1}}', "/inform{not json", "/nonexistent_intent", "/" + "é" * 400,
                    '/inform{"attachment_id": "../../etc/passwd"}', '/inform{"latitude": 1e999}']:
        replies = await say(ws, {"type": "button", "payload": payload, "title": "<b>x</b>"})
        assert replies and all(r.get("text") for r in replies), (payload, replies)
    await ws.close()

    # frames that end a socket end it cleanly: invalid UTF-8, oversized, odd close codes
    for ending in ("utf8", "huge", "close"):
        doomed, _ = await hello(client)
        if ending == "utf8":
            await doomed.send_frame(b"\xff\xfe\xfd", WSMsgType.TEXT)
        elif ending == "huge":
            await doomed.send_str("x" * (1024 * 1024))
        else:
            await doomed.close(code=4321, message=b"bye")
        if ending != "close":
            message = await doomed.receive(timeout=10)
            assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), message
        assert doomed.close_code in CLEAN_CLOSES | {4321}, doomed.close_code
        await doomed.close()

    # the other citizen's conversation keeps working, and the service is healthy
    replies = await say(bystander, {"type": "text", "text": "vull denunciar un robatori"})
    assert replies and replies[0]["type"] == "message" and replies[0]["text"]
    await bystander.close()
    health = await client.get("/healthz")
    assert health.status == 200
    server_errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith(("aiohttp", "bot"))]
    assert not server_errors, [r.getMessage() for r in server_errors]
