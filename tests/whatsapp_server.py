"""A local stand-in for the WhatsApp Cloud API (Meta's Graph API), for testing the WhatsApp
channel for real: a real aiohttp HTTP server on loopback, and the citizen's phone.

Barri's side: ``POST /{version}/{phone_number_id}/messages`` (recorded; refused like the real
API refuses: no or wrong bearer token is 401 with error 190, a message outside WhatsApp's
limits is 400 with error 100 - more than 3 reply buttons, a button title over 20 characters,
more than 10 list rows, a row title over 24 characters, an interactive body over 1024
characters, a text over 4096, a template parameter with a line break; with
``enforce_window`` a free-form message to a citizen who has not written in 24 hours is 400
with error 131047), ``GET /{version}/{media_id}`` (the media's URL, type, size and hash) and
``GET /media/{media_id}`` (its bytes, with the token only). ``fail_next(code)`` makes the next
sends fail with that Cloud API error code.

The citizen's side (``send_text``, ``send_image``, ``press_button``...) builds a webhook
notification as Meta does, signs it with the app secret (X-Hub-Signature-256) and POSTs it to
the bot's ``/whatsapp/webhook``; ``send_status`` reports a sent message delivered, read or
failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientSession, web

VERSION = "v21.0"
PHONE_NUMBER_ID = "109876543210987"
TOKEN = "EAAGtestWhatsAppAccessToken0123456789"
APP_SECRET = "whatsapp-app-secret-0123456789abcdef"
VERIFY_TOKEN = "barri-verify-token-0123"
ERROR_TITLES = {
    100: "Invalid parameter", 190: "Invalid OAuth access token", 130429: "Rate limit hit",
    131047: "Re-engagement message", 131056: "(Business Account, Consumer Account) pair rate limit hit",
    131026: "Message undeliverable", 131051: "Unsupported message type", 80007: "Rate limit issues",
}


class Refused(Exception):
    def __init__(self, code: int, status: int = 400, details: str = "") -> None:
        super().__init__(code)
        self.code, self.status, self.details = code, status, details


@dataclass
class Sent:
    to: str
    body: dict[str, Any]
    id: str
    at: float

    @property
    def type(self) -> str:
        return str(self.body.get("type"))

    @property
    def interactive(self) -> dict[str, Any]:
        return self.body.get("interactive") or {}

    @property
    def text(self) -> str:
        """What the citizen reads: a text, an interactive body, or a template's parameter."""
        if self.type == "text":
            return str(self.body["text"]["body"])
        if self.type == "interactive":
            return str(self.interactive["body"]["text"])
        if self.type == "template":
            return " ".join(p["text"] for c in self.body["template"].get("components", [])
                            for p in c.get("parameters", []))
        return ""

    @property
    def choices(self) -> list[tuple[str, str]]:
        """(id, title) of its reply buttons or list rows."""
        action = self.interactive.get("action") or {}
        if self.interactive.get("type") == "button":
            return [(b["reply"]["id"], b["reply"]["title"]) for b in action["buttons"]]
        if self.interactive.get("type") == "list":
            return [(r["id"], r["title"]) for s in action["sections"] for r in s["rows"]]
        return []


@dataclass
class FakeWhatsApp:
    """The Cloud API and the citizens' phones (see the module docstring)."""

    enforce_window: bool = False
    sent: list[Sent] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)  # (to, error code) of refused sends
    media: dict[str, bytes] = field(default_factory=dict)
    downloads: list[str] = field(default_factory=list)
    last_inbound: dict[str, float] = field(default_factory=dict)
    webhook_url: str = ""
    _failures: list[int] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _http: ClientSession | None = None
    base: str = ""
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    # server -----------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"{self.base}/{VERSION}"

    async def start(self) -> FakeWhatsApp:
        app = web.Application()
        app.router.add_post(f"/{VERSION}/{{number}}/messages", self._messages)
        app.router.add_get(f"/{VERSION}/{{media_id}}", self._media_info)
        app.router.add_get("/media/{media_id}", self._media_bytes)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        self._http = ClientSession()
        return self

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def fail_next(self, code: int, times: int = 1) -> None:
        self._failures += [code] * times

    def _authorised(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise Refused(190, 401)

    @staticmethod
    def _error(refused: Refused) -> web.Response:
        return web.json_response({"error": {
            "message": f"(#{refused.code}) {ERROR_TITLES.get(refused.code, 'Error')}", "type": "OAuthException",
            "code": refused.code, "title": ERROR_TITLES.get(refused.code, "Error"),
            "error_data": {"messaging_product": "whatsapp", "details": refused.details},
            "fbtrace_id": secrets.token_hex(8)}}, status=refused.status)

    async def _messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        to = str(body.get("to", ""))
        try:
            self._authorised(request)
            if request.match_info["number"] != PHONE_NUMBER_ID:
                raise Refused(100, details="unknown phone number id")
            self._check(body)
            if self._failures:
                code = self._failures.pop(0)
                raise Refused(code, 429 if code == 130429 else 400)
            if (self.enforce_window and body.get("type") != "template"
                    and time.time() - self.last_inbound.get(to, 0) > 24 * 3600):
                raise Refused(131047)
        except Refused as refused:
            self.refused.append((to, refused.code))
            return self._error(refused)
        message_id = "wamid." + secrets.token_urlsafe(24)
        self.sent.append(Sent(to=to, body=body, id=message_id, at=time.monotonic()))
        self._changed.set()
        return web.json_response({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                                  "messages": [{"id": message_id}]})

    @staticmethod
    def _check(body: dict[str, Any]) -> None:
        def refuse(why: str) -> None:
            raise Refused(100, details=why)

        if body.get("messaging_product") != "whatsapp" or not str(body.get("to", "")).isdigit():
            refuse("messaging_product and to are required")
        kind = body.get("type")
        if kind == "text":
            if not 0 < len(body["text"]["body"]) <= 4096:
                refuse("text.body")
        elif kind == "interactive":
            interactive = body["interactive"]
            if not 0 < len(interactive["body"]["text"]) <= 1024:
                refuse("interactive.body.text")
            action = interactive["action"]
            if interactive["type"] == "button":
                buttons = action["buttons"]
                titles = [b["reply"]["title"] for b in buttons]
                if not 1 <= len(buttons) <= 3 or any(not 0 < len(t) <= 20 for t in titles) or len(set(titles)) < len(titles):
                    refuse("buttons")
                if any(len(b["reply"]["id"]) > 256 for b in buttons):
                    refuse("button id")
            elif interactive["type"] == "list":
                rows = [r for s in action["sections"] for r in s["rows"]]
                if not 1 <= len(rows) <= 10 or any(not 0 < len(r["title"]) <= 24 for r in rows):
                    refuse("rows")
                if any(len(r["id"]) > 200 or len(r.get("description", "")) > 72 for r in rows):
                    refuse("row id or description")
                if not 0 < len(action["button"]) <= 20:
                    refuse("list button")
            elif interactive["type"] == "location_request_message":
                if action.get("name") != "send_location":
                    refuse("location request")
            else:
                refuse("interactive.type")
        elif kind == "template":
            template = body["template"]
            if not template.get("name") or not template.get("language", {}).get("code"):
                refuse("template")
            for component in template.get("components", []):
                for parameter in component.get("parameters", []):
                    text = parameter.get("text", "")
                    if "\n" in text or "\t" in text or "     " in text or len(text) > 1024:
                        refuse("Param text cannot have new-line/tab characters or more than 4 consecutive spaces")
        else:
            refuse("type")

    async def _media_info(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        try:
            self._authorised(request)
            if media_id not in self.media:
                raise Refused(100, details="unknown media")
        except Refused as refused:
            return self._error(refused)
        data = self.media[media_id]
        return web.json_response({"messaging_product": "whatsapp", "url": f"{self.base}/media/{media_id}",
                                  "mime_type": "image/png", "sha256": hashlib.sha256(data).hexdigest(),
                                  "file_size": len(data), "id": media_id})

    async def _media_bytes(self, request: web.Request) -> web.Response:
        try:
            self._authorised(request)
        except Refused as refused:
            return self._error(refused)
        media_id = request.match_info["media_id"]
        self.downloads.append(media_id)
        return web.Response(body=self.media[media_id], content_type="image/png")

    # what Barri sent --------------------------------------------------------------------
    def to(self, phone: str) -> list[Sent]:
        return [s for s in self.sent if s.to == phone]

    async def wait_for(self, phone: str, count: int, timeout: float = 60) -> list[Sent]:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while len(self.to(phone)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.to(phone))} messages to the citizen, not {count}: "
                                     f"{[s.text for s in self.to(phone)]}")
            self._changed.clear()
            with _suppress_timeout():
                await asyncio.wait_for(self._changed.wait(), timeout=0.5)
        return self.to(phone)

    async def settle(self, phone: str, quiet: float = 2.0, timeout: float = 90) -> list[Sent]:  # noqa: ASYNC109
        """Wait until Barri stops writing to the citizen (at least one message)."""
        deadline = time.monotonic() + timeout
        count = -1
        while time.monotonic() < deadline:
            now = len(self.to(phone))
            if now == count and now > 0:
                break
            count = now
            await asyncio.sleep(quiet)
        return self.to(phone)

    # the citizen's phone ----------------------------------------------------------------
    def notification(self, *, messages: list[dict[str, Any]] | None = None,
                     statuses: list[dict[str, Any]] | None = None, phone_number_id: str = PHONE_NUMBER_ID
                     ) -> dict[str, Any]:
        value: dict[str, Any] = {"messaging_product": "whatsapp",
                                 "metadata": {"display_phone_number": "34930000000", "phone_number_id": phone_number_id}}
        if messages:
            value["contacts"] = [{"profile": {"name": "Citizen"}, "wa_id": m["from"]} for m in messages]
            value["messages"] = messages
        if statuses:
            value["statuses"] = statuses
        return {"object": "whatsapp_business_account",
                "entry": [{"id": "WABA_ID", "changes": [{"value": value, "field": "messages"}]}]}

    async def post(self, payload: dict[str, Any], *, secret: str | None = APP_SECRET,
                   signature: str | None = None) -> int:
        """POST a notification to the bot's webhook, signed with ``secret`` (None: unsigned)."""
        assert self._http is not None and self.webhook_url
        raw = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        elif secret is not None:
            headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        async with self._http.post(self.webhook_url, data=raw, headers=headers) as response:
            await response.read()
            return response.status

    async def _citizen(self, phone: str, kind: str, content: dict[str, Any]) -> dict[str, Any]:
        self.last_inbound[phone] = time.time()
        message = {"from": phone, "id": "wamid." + secrets.token_urlsafe(24), "timestamp": str(int(time.time())),
                   "type": kind, **content}
        status = await self.post(self.notification(messages=[message]))
        assert status == 200, status
        return message

    async def send_text(self, phone: str, text: str) -> dict[str, Any]:
        return await self._citizen(phone, "text", {"text": {"body": text}})

    async def send_location(self, phone: str, latitude: float, longitude: float) -> dict[str, Any]:
        return await self._citizen(phone, "location", {"location": {"latitude": latitude, "longitude": longitude}})

    async def send_image(self, phone: str, data: bytes, caption: str | None = None) -> dict[str, Any]:
        media_id = str(secrets.randbelow(10**15) + 10**15)
        self.media[media_id] = data
        image: dict[str, Any] = {"id": media_id, "mime_type": "image/png", "sha256": hashlib.sha256(data).hexdigest()}
        if caption:
            image["caption"] = caption
        return await self._citizen(phone, "image", {"image": image})

    async def send_sticker(self, phone: str) -> dict[str, Any]:
        return await self._citizen(phone, "sticker", {"sticker": {"id": "9988776655", "mime_type": "image/webp",
                                                                  "animated": False}})

    async def press(self, phone: str, sent: Sent, choice_id: str) -> dict[str, Any]:
        """Press a reply button, or pick a list row, of a message Barri sent."""
        title = dict(sent.choices)[choice_id]
        if sent.interactive.get("type") == "button":
            content = {"type": "button_reply", "button_reply": {"id": choice_id, "title": title}}
        else:
            content = {"type": "list_reply", "list_reply": {"id": choice_id, "title": title}}
        return await self._citizen(phone, "interactive", {"context": {"from": "34930000000", "id": sent.id},
                                                          "interactive": content})

    async def send_status(self, sent: Sent, status: str, errors: list[dict[str, Any]] | None = None) -> int:
        entry: dict[str, Any] = {"id": sent.id, "status": status, "timestamp": str(int(time.time())),
                                 "recipient_id": sent.to}
        if errors:
            entry["errors"] = errors
        return await self.post(self.notification(statuses=[entry]))


class _suppress_timeout:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, *rest: object) -> bool:
        return kind is TimeoutError


@pytest.fixture
async def fake_whatsapp() -> AsyncIterator[FakeWhatsApp]:
    fake = await FakeWhatsApp().start()
    try:
        yield fake
    finally:
        await fake.stop()
