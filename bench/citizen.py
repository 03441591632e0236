"""Scripted citizens filing whole reports, over the web-chat WebSocket or the engine's REST
channel. Shared by the load benchmark (bench/load.py) and the scale-out test.

A citizen reads the bot's last message like a person would: the buttons and the input it
asks for (location, photo) decide the next step, in any of the three languages; a question
without buttons is answered with the script's description or time.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.channels.media import location_payload
from bot.engine import to_outgoing

REF = re.compile(r"\b(?!SHA-256)[2-9A-Z]{3}-[2-9A-Z]{3}\b")
MAX_TURNS = 14
TURN_TIMEOUT = 120.0  # seconds; generous, the benchmark runs the engine at full load

Frame = dict[str, Any]


@dataclass(frozen=True)
class Script:
    """What one citizen reports, and what the stored case must say."""

    locale: str  # the browser's language
    opening: str
    description: str
    when: str
    category: str
    latitude: float
    longitude: float
    neighbourhood: str


SCRIPTS: tuple[Script, ...] = (
    Script("es-ES", "ayer por la noche me robaron la cartera en el metro de Sants",
           "Me robaron la cartera del bolsillo al salir del vagón, eran dos chicos jóvenes.",
           "ayer a las diez de la noche", "theft", 41.3793, 2.1404, "Sants"),
    Script("en-GB", "I want to report vandalism",
           "Someone smashed the glass of the bus stop and sprayed graffiti all over it.",
           "this morning at 8", "vandalism", 41.4036, 2.1565, "la Vila de Gràcia"),
    Script("ca-ES", "vull denunciar soroll",
           "Cada nit hi ha música molt alta al bar de sota de casa fins a les quatre.",
           "ahir a les dues de la matinada", "noise", 41.3800, 2.1680, "el Raval"),
    Script("es-ES", "quiero denunciar una pintada",
           "Han pintado grafitis en toda la fachada de la escuela del barrio.",
           "esta mañana", "vandalism", 41.4005, 2.2010, "el Poblenou"),
)


class Stuck(Exception):
    """The citizen did not know what to answer (the dialogue went somewhere unexpected)."""


@dataclass
class Outcome:
    ref: str
    turns: int
    latencies: list[float] = field(default_factory=list)  # seconds, one per turn
    transcript: list[tuple[Frame, list[Frame]]] = field(default_factory=list)


def _payloads(message: Frame) -> list[str]:
    return [str(b.get("payload", "")) for b in message.get("buttons") or []]


def next_frame(script: Script, replies: list[Frame], answered: set[str]) -> Frame | None:
    """The citizen's next web-chat frame after the bot's ``replies``; None once the report is saved."""
    texts = " ".join(str(r.get("text") or "") for r in replies)
    if REF.search(texts):
        return None
    messages = [r for r in replies if r.get("type") == "message"]
    if not messages:
        raise Stuck(f"no answer to act on: {replies!r}")
    last = messages[-1]
    payloads = _payloads(last)
    for payload in payloads:
        if f'"incident_type":"{script.category}"' in payload:
            return {"type": "button", "payload": payload, "title": script.category}
    if last.get("request") == "location":
        return {"type": "location", "latitude": script.latitude, "longitude": script.longitude}
    if any('"photos_done"' in p for p in payloads):
        return {"type": "button", "payload": '/inform{"photos_done":"yes"}', "title": "Continue"}
    if any('"contact_mode"' in p for p in payloads):
        return {"type": "button", "payload": '/inform{"contact_mode":"chat"}', "title": "Chat"}
    if "/affirm" in payloads and "summary" in answered:
        raise Stuck("asked to confirm twice")
    if "/affirm" in payloads:
        answered.add("summary")
        return {"type": "button", "payload": "/affirm", "title": "Send"}
    if any('"incident_time"' in p for p in payloads) and "when" not in answered:
        answered.add("when")
        return {"type": "text", "text": script.when}
    if "description" not in answered:
        answered.add("description")
        return {"type": "text", "text": script.description}
    raise Stuck(f"nothing to answer to {last!r}")


Send = Callable[[int, Frame], Awaitable[list[Frame]]]


async def file_report(script: Script, send: Send) -> Outcome:
    """Go through a whole report; ``send(turn, frame)`` delivers one frame and returns the replies."""
    frame: Frame | None = {"type": "text", "text": script.opening}
    answered: set[str] = set()
    outcome = Outcome(ref="", turns=0)
    while frame is not None:
        if outcome.turns >= MAX_TURNS:
            raise Stuck(f"no reference after {MAX_TURNS} turns: {outcome.transcript!r}")
        started = time.perf_counter()
        replies = await send(outcome.turns, frame)
        outcome.latencies.append(time.perf_counter() - started)
        outcome.transcript.append((frame, replies))
        outcome.turns += 1
        try:
            frame = next_frame(script, replies, answered)
        except Stuck as stuck:
            raise Stuck(f"{stuck}; transcript: {outcome.transcript!r}") from None
    found = REF.search(" ".join(str(r.get("text") or "") for r in outcome.transcript[-1][1]))
    outcome.ref = found.group(0) if found else ""
    return outcome


# transports -------------------------------------------------------------------------------
async def hello(ws: aiohttp.ClientWebSocketResponse, session: str | None, locale: str) -> Frame:
    await ws.send_json({"type": "hello", "session": session, "locale": locale})
    welcome: Frame = await ws.receive_json(timeout=30)
    if welcome.get("type") != "welcome":
        raise Stuck(f"expected welcome, got {welcome!r}")
    return welcome


async def say(ws: aiohttp.ClientWebSocketResponse, frame: Frame) -> list[Frame]:
    """Send one frame and collect the bot's frames until the typing indicator goes off."""
    await ws.send_json(frame)
    received: list[Frame] = []
    while True:
        message: Frame = await ws.receive_json(timeout=TURN_TIMEOUT)
        if message["type"] == "typing" and message["on"] is False:
            return received
        if message["type"] in ("message", "error", "forget"):
            received.append(message)
            if message["type"] == "error":
                return received


def rest_text(frame: Frame) -> str:
    """What the web-chat adapter hands the engine for ``frame``."""
    if frame["type"] == "location":
        return location_payload(frame["latitude"], frame["longitude"]) or ""
    if frame["type"] == "button":
        return str(frame["payload"])
    return str(frame["text"]).strip().lstrip("/").strip()


async def rest_say(http: aiohttp.ClientSession, engine_url: str, sender: str, locale: str, frame: Frame) -> list[Frame]:
    """The same turn straight to the engine's REST channel, read as web-chat frames."""
    body = {"sender": sender, "message": rest_text(frame), "metadata": {"locale": locale}}
    # the engine's REST channel answers only the holder of the shared secret
    headers = {"Authorization": f"Bearer {os.environ.get('RASA_TOKEN', '')}"}
    async with http.post(f"{engine_url}/webhooks/rest/webhook", json=body, headers=headers) as response:
        response.raise_for_status()
        answer = await response.json()
    messages, _ = to_outgoing(answer if isinstance(answer, list) else [])
    return [
        {"type": "message", "text": m.text, "request": m.request,
         "buttons": [{"title": b.title, "payload": b.payload} for b in m.buttons]}
        for m in messages
    ]
