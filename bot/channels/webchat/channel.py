"""Web chat: a page and a WebSocket served by the bot service (protocol in PROTOCOL.md).

The browser keeps a signed session token, so a reload continues the same conversation and
nobody can speak in someone else's conversation by guessing an id.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import aiohttp_jinja2
import jinja2
from aiohttp import WSMsgType, web
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.channels.base import Channel, ChannelParts, DeliveryOutcome, IncomingMessage, OutgoingMessage
from bot.channels.media import PhotoRejected, location_payload, pending_photos, photo_payload, store_photo
from bot.embed import routes as embed
from bot.engine import Conversations
from bot.headers import CONTENT_SECURITY_POLICY
from bot.keys import CHANNELS
from bot.outbox import OutboxWorker
from bot.ratelimit import AddressLimiters, RateLimiter, Verdict
from common.i18n import LANGUAGE_NAMES, Catalogs
from common.netaddr import client_address
from common.responses import ADAPTER_MESSAGES
from common.settings import Settings
from storage.db import run_storage
from storage.errors import StorageError
from storage.inbox import has_pending
from storage.tracker import conversation_last_active

log = logging.getLogger(__name__)

MAX_PAYLOAD_CHARS = 500
CLOCK_SKEW_SECONDS = 300  # a token stamped by an instance whose clock is ahead is still good
TRY_AGAIN_LATER = 1013  # WebSocket close code


class SessionTokens:
    """`web:<random>` sender ids in tokens signed with the deployment's secret and stamped with
    when they were issued. Every `welcome` renews the stamp, so a conversation lives as long as
    the citizen comes back; a token not renewed for ``idle_seconds`` is refused (a new
    conversation starts), so a stolen or forgotten token does not work forever."""

    def __init__(self, secret: str, idle_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._key = hashlib.sha256(("webchat:" + secret).encode()).digest()
        self.idle_seconds = idle_seconds
        self.clock = clock

    def issue(self, sender_id: str | None = None) -> tuple[str, str]:
        """A token for ``sender_id`` (a new conversation when None), stamped now."""
        sender_id = sender_id or f"web:{secrets.token_hex(16)}"
        body = f"{sender_id}.{int(self.clock())}"
        return sender_id, f"{body}.{self._sign(body)}"

    def verify(self, token: object) -> str | None:
        if not isinstance(token, str) or len(token) > 200 or token.count(".") != 2:
            return None
        sender_id, stamp, signature = token.split(".")
        if not (sender_id.startswith("web:") and stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            return None
        if not hmac.compare_digest(signature, self._sign(f"{sender_id}.{stamp}")):
            return None
        age = self.clock() - int(stamp)
        if age > self.idle_seconds or age < -CLOCK_SKEW_SECONDS:
            return None
        return sender_id

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]


WEBCHAT_DIR = Path(__file__).parent


class WebChatChannel(Channel):
    name = "web"
    sends_where_connected = True  # a citizen's sockets are open on one instance only

    def __init__(
        self, settings: Settings, catalogs: Catalogs, conversations: Conversations, db,  # noqa: ANN001
        address_limiter: RateLimiter | None = None, hello_limiter: RateLimiter | None = None,
        new_session_limiter: RateLimiter | None = None,
        conversation_exists: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.settings = settings
        # False once retention has erased the conversation behind a session token: the session
        # goes on (alerts still reach a subscriber), but the page forgets its copy
        self.conversation_exists = conversation_exists
        # all sessions of one network address together: new sessions must not dodge the
        # per-citizen limit (bot.engine.Conversations applies that one)
        self.address_limiter = address_limiter
        # per address too: connections (each `hello` reads the database) and new conversations
        self.hello_limiter = hello_limiter
        self.new_session_limiter = new_session_limiter
        self.catalogs = catalogs
        self.conversations = conversations
        self.db = db
        self.tokens = SessionTokens(settings.secret_key, settings.webchat_session_idle_days * 24 * 3600)
        self.sockets: defaultdict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self.hints: dict[str, str] = {}
        # called (as a task) with the sender id after each `welcome`: the outbox delivers what
        # waited for this citizen while they were away
        self.on_connect: list[Callable[[str], Coroutine[Any, Any, object]]] = []
        self._tasks: set[asyncio.Task[object]] = set()

    # Channel interface ------------------------------------------------------------------
    @classmethod
    def create(cls, parts: ChannelParts) -> WebChatChannel:
        async def conversation_exists(sender_id: str) -> bool:
            return await _conversation_exists(parts.db, parts.tracker_db, sender_id)

        limits = AddressLimiters.from_settings(parts.settings)
        return cls(
            parts.settings, parts.catalogs, parts.conversations, parts.db, address_limiter=limits.address,
            hello_limiter=limits.hello, new_session_limiter=limits.new_session, conversation_exists=conversation_exists,
        )

    @classmethod
    def add_routes(cls, app: web.Application, settings: Settings) -> None:
        aiohttp_jinja2.setup(
            app,
            loader=jinja2.FileSystemLoader(str(WEBCHAT_DIR / "templates")),
            autoescape=jinja2.select_autoescape(default=True),
        )
        app.router.add_static("/static/webchat", WEBCHAT_DIR / "static")
        # the page may be framed by the city's sites in EMBED_ORIGINS (bot/embed), nothing else
        app.router.add_get("/", embed.framable(_via_webchat("page"), CONTENT_SECURITY_POLICY), name="chat")
        app.router.add_get("/webchat/ws", _via_webchat("socket"))
        app.router.add_post("/webchat/upload", _via_webchat("upload"))

        async def close_sockets(app: web.Application) -> None:
            """At shutdown, before the app waits for its handlers: an open socket would hold it."""
            channel = app.get(CHANNELS, {}).get(cls.name)
            if isinstance(channel, WebChatChannel):
                await channel.close_sockets()

        app.on_shutdown.append(close_sockets)

    async def connect(self) -> None:
        return None

    async def disconnect(self) -> None:
        await self.close_sockets()
        for limiter in (self.address_limiter, self.hello_limiter, self.new_session_limiter):
            if limiter is not None:
                await limiter.close()

    async def close_sockets(self) -> None:
        for sockets in list(self.sockets.values()):
            for ws in list(sockets):
                await ws.close(code=1001, message=b"server shutdown")
        self.sockets.clear()

    def connected(self) -> list[str]:
        """The citizens with an open socket on this instance."""
        return [sender_id for sender_id, sockets in self.sockets.items() if sockets]

    def use_outbox(self, worker: OutboxWorker) -> None:
        self.on_connect.append(worker.flush)  # what waited for a citizen goes when they come back

    async def push(self, sender_id: str, message: OutgoingMessage) -> DeliveryOutcome:
        """An outbox message to every open tab of the citizen; `offline` when none is open here."""
        sockets = [ws for ws in self.sockets.get(sender_id, ()) if not ws.closed]
        frame = {**self._frame(message), "kind": message.custom.get("kind")}
        sent = 0
        for ws in sockets:
            try:
                await ws.send_json(frame)
                sent += 1
            except (ConnectionResetError, RuntimeError):
                log.debug("socket closed while pushing")
        return DeliveryOutcome("sent") if sent else DeliveryOutcome("offline")

    async def respond(self, sender_id: str, messages: list[OutgoingMessage]) -> bool:
        sockets = [ws for ws in self.sockets.get(sender_id, ()) if not ws.closed]
        for ws in sockets:
            for message in messages:
                await self._send(ws, self._frame(message))
        return bool(sockets)

    # routes -----------------------------------------------------------------------------
    async def page(self, request: web.Request) -> web.Response:
        wanted = request.query.get("lang") or request.headers.get("Accept-Language", "").split(",")[0].split(";")[0]
        lang = self.catalogs.negotiate(wanted)
        context = {
            "lang": lang,
            "_": self.catalogs.bound(lang),
            "static_url": "/static/webchat",
            "ws_url": "/webchat/ws",
            "upload_url": "/webchat/upload",
            "max_photo_bytes": self.settings.max_photo_bytes,
            "languages": list(LANGUAGE_NAMES.items()),
            # framed by the city's site (bot/embed): Escape and focus talk to the snippet
            "embed_frame_url": "/static/embed/frame.js" if request.query.get("embed") == "1" else None,
        }
        return aiohttp_jinja2.render_template("chat.html", request, context)

    def _origin_allowed(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser: browsers always send Origin on WebSocket handshakes
        same = f"{request.scheme}://{request.host}"
        allowed = {same, *self.settings.allowed_origins}
        if self.settings.public_url:
            allowed.add(self.settings.public_url.rstrip("/"))
        return origin in allowed

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        if not self._origin_allowed(request):
            raise web.HTTPForbidden(text="cross-origin WebSocket refused")
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=self.settings.max_socket_frame_bytes)
        await ws.prepare(request)
        sender_id: str | None = None
        hint: str | None = None
        address = client_address(request, self.settings.trusted_proxies)
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    if frame.type == WSMsgType.BINARY:
                        await self._notice(ws, "unreadable", hint)
                    continue
                data = _parse(frame.data)
                if data is None:
                    await self._notice(ws, "unreadable", hint)
                    continue
                if sender_id is None:
                    if data.get("type") != "hello":
                        await self._notice(ws, "unreadable", hint)
                        continue
                    hint = str(data.get("locale") or "")[:35] or None
                    sender_id = self.tokens.verify(data.get("session"))
                    limiters = [self.hello_limiter] + ([self.new_session_limiter] if sender_id is None else [])
                    if not await _allowed(limiters, address):
                        log.info("rate limit: a web-chat connection from one address was refused")
                        await self._notice(ws, "rate_limited", hint)
                        await ws.close(code=TRY_AGAIN_LATER, message=b"too many connections")
                        sender_id = None
                        break
                    # whether the server still keeps the conversation of this session: not once
                    # retention erased it, and the page must then forget its copy (PROTOCOL.md §2)
                    kept = sender_id is not None and (self.conversation_exists is None
                                                      or await self.conversation_exists(sender_id))
                    sender_id, token = self.tokens.issue(sender_id)  # renewed: the idle clock restarts
                    self.sockets[sender_id].add(ws)
                    if hint:
                        self.hints[sender_id] = hint
                    await self._send(ws, {"type": "welcome", "session": token, "sender": sender_id,
                                          "conversation": kept})
                    for hook in self.on_connect:
                        task: asyncio.Task[object] = asyncio.create_task(hook(sender_id))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                    continue
                message = await self._read_frame(ws, sender_id, hint, data)
                if message is not None and await self._address_allows(ws, address, hint):
                    await self.deliver(message)
        finally:
            if sender_id is not None:
                self.sockets[sender_id].discard(ws)
                if not self.sockets[sender_id]:
                    self.sockets.pop(sender_id, None)
                    self.hints.pop(sender_id, None)  # kept only while the citizen is connected
        return ws

    async def _address_allows(self, ws: web.WebSocketResponse, address: str, hint: str | None) -> bool:
        if self.address_limiter is None:
            return True
        verdict = await self.address_limiter.check(address)
        if verdict is Verdict.NOTIFY:
            log.info("rate limit: messages from one address were not read")
            await self._notice(ws, "rate_limited", hint)
        return verdict is Verdict.ALLOW

    async def _read_frame(
        self, ws: web.WebSocketResponse, sender_id: str, hint: str | None, data: dict[str, Any]
    ) -> IncomingMessage | None:
        """The message a frame carries for the engine, or None (the citizen was told why)."""
        kind = data.get("type")
        if kind == "text":
            text = data.get("text")
            if not isinstance(text, str):
                await self._notice(ws, "unreadable", hint)
                return None
            text = text.strip()
            if not text:
                await self._notice(ws, "empty", hint)
                return None
            if len(text) > self.settings.max_message_chars:
                await self._notice(ws, "too_long", hint, text=text, limit=self.settings.max_message_chars)
                return None
            # typed text is never an engine command ("/intent{...}" comes only from buttons)
            text = text.lstrip("/").strip() or text
            return IncomingMessage(sender_id=sender_id, text=text, locale_hint=hint)
        if kind == "button":
            payload = data.get("payload")
            if not isinstance(payload, str) or not payload.startswith("/") or len(payload) > MAX_PAYLOAD_CHARS:
                await self._notice(ws, "unreadable", hint)
                return None
            return IncomingMessage(sender_id=sender_id, text=payload, locale_hint=hint,
                                   display_text=str(data.get("title") or "")[:200])
        if kind == "location":
            try:
                payload = location_payload(float(data["latitude"]), float(data["longitude"]))
            except (KeyError, TypeError, ValueError):
                payload = None
            if payload is not None:
                return IncomingMessage(sender_id=sender_id, text=payload, locale_hint=hint)
        await self._notice(ws, "unreadable", hint)
        return None

    async def deliver(self, message: IncomingMessage, *, admitted: bool = False) -> None:
        """Hand a message to the engine and send the answers to every open tab of this citizen
        (``admitted``: already counted against the citizen's limit)."""
        sockets = list(self.sockets.get(message.sender_id, ()))
        for ws in sockets:
            await self._send(ws, {"type": "typing", "on": True})
        try:
            replies = await self.conversations.handle(message, admitted=admitted)
            await self.respond(message.sender_id, replies)
        finally:
            for ws in sockets:
                await self._send(ws, {"type": "typing", "on": False})

    async def upload(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        sender_id = self.tokens.verify(auth.removeprefix("Bearer ").strip())
        hint = self.hints.get(sender_id or "") or request.headers.get("Accept-Language")
        locale = self.catalogs.negotiate((hint or "").split(",")[0])
        if sender_id is None:
            return web.json_response({"error": self.catalogs.gettext(_adapter_message("session"), locale)}, status=401)
        address = client_address(request, self.settings.trusted_proxies)
        if self.address_limiter is not None and await self.address_limiter.check(address) is not Verdict.ALLOW:
            text = self.catalogs.gettext(_adapter_message("rate_limited"), locale)
            return web.json_response({"error": text}, status=429)

        def error(key: str, status: int, **args: Any) -> web.Response:
            text = self.catalogs.gettext(_adapter_message(key), locale, **args)
            return web.json_response({"error": text}, status=status)

        limit = self.settings.max_photo_bytes
        most = self.settings.max_photos_per_report
        if request.content_length and request.content_length > limit + 64 * 1024:
            return error("photo_too_big", 413, limit_mb=limit // (1024 * 1024))
        # every limit before anything is stored: the citizen's message rate, then their pending photos
        if await self.conversations.admit(sender_id) is not Verdict.ALLOW:
            return error("rate_limited", 429)
        try:
            if await pending_photos(self.db, sender_id) >= most:
                return error("too_many_photos", 409, max_photos=most)
        except StorageError:
            return error("unavailable", 503)
        try:
            reader = await request.multipart()
            part = await reader.next()
            while part is not None and getattr(part, "name", None) != "photo":
                part = await reader.next()
        except (ValueError, AssertionError, KeyError):
            return error("photo_type", 400)
        if part is None or not hasattr(part, "read_chunk"):
            return error("photo_type", 400)
        data = bytearray()
        while chunk := await part.read_chunk(64 * 1024):
            data.extend(chunk)
            if len(data) > limit:
                return error("photo_too_big", 413, limit_mb=limit // (1024 * 1024))
        try:
            async with self.conversations.lock(sender_id):  # one photo of a sender at a time: the cap holds
                attachment_id = await store_photo(self.db, sender_id, bytes(data), max_bytes=limit, max_pending=most)
        except PhotoRejected as rejected:
            status = {"photo_too_big": 413, "too_many_photos": 409}.get(rejected.key, 415)
            return error(rejected.key, status, limit_mb=limit // (1024 * 1024), max_photos=most)
        except StorageError:
            log.exception("could not store a photo")
            return error("unavailable", 503)
        payload = photo_payload(attachment_id)
        await self.deliver(IncomingMessage(sender_id=sender_id, text=payload, locale_hint=hint), admitted=True)
        return web.json_response({"ok": True})

    # helpers ----------------------------------------------------------------------------
    @staticmethod
    def _frame(message: OutgoingMessage) -> dict[str, Any]:
        if message.custom.get("forget"):
            return {"type": "forget"}
        return {
            "type": "message",
            "text": message.text,
            "buttons": [{"title": b.title, "payload": b.payload} for b in message.buttons],
            "request": message.request,
        }

    async def _notice(self, ws: web.WebSocketResponse, key: str, hint: str | None, text: str = "", **args: Any) -> None:
        locale = self.conversations.adapter_locale(IncomingMessage(sender_id="", text=text[:500], locale_hint=hint))
        await self._send(ws, {"type": "error", "text": self.catalogs.gettext(_adapter_message(key), locale, **args)})

    @staticmethod
    async def _send(ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        if ws.closed:
            return
        try:
            await ws.send_json(frame)
        except (ConnectionResetError, RuntimeError):
            log.debug("socket closed while sending")


async def _conversation_exists(db: Engine, tracker_db: Engine, sender_id: str) -> bool:
    """Whether the engine still has this conversation (or messages of it wait to be replayed);
    a database that does not answer erases nothing from anyone's page."""
    try:
        if await asyncio.to_thread(conversation_last_active, tracker=tracker_db, sender_id=sender_id) is not None:
            return True
        return await run_storage(db, has_pending, sender_id=sender_id)
    except (StorageError, SQLAlchemyError):
        return True


def _via_webchat(method: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A route of the web chat: routes exist before start-up, the channel only once it runs."""

    async def handler(request: web.Request) -> web.StreamResponse:
        channel = cast(WebChatChannel, request.app[CHANNELS][WebChatChannel.name])
        return cast(web.StreamResponse, await getattr(channel, method)(request))

    handler.__name__ = f"webchat_{method}"
    return handler


async def _allowed(limiters: list[RateLimiter | None], address: str) -> bool:
    for limiter in limiters:
        if limiter is not None and await limiter.check(address) is not Verdict.ALLOW:
            return False
    return True


def _adapter_message(key: str) -> str:
    return ADAPTER_MESSAGES[key]


def _parse(raw: str) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
        # "\ud800" escapes decode to lone surrogates, which no later step can encode
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError, UnicodeEncodeError):  # JSONDecodeError is a ValueError
        return None
    return data if isinstance(data, dict) else None
