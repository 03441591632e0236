"""The Rasa-compatible Socket.IO endpoint (``/socket.io/``), so that a city already using the
open-source Rasa web-chat widget (npm ``rasa-webchat``) can point its ``socketUrl`` at Barri.

The protocol is Rasa's ``socketio`` channel:

- ``session_request`` ``{session_id}`` -> ``session_confirm`` ``<session id>``. The session id
  is a token signed with the deployment's secret (``web:<random>.<issued>.<signature>``), never
  the sender id itself, so nobody can speak in someone else's conversation by guessing an id;
  an unknown, forged or expired one gets a new session. The token is renewed at most once a day
  (the widget resends its ``initPayload`` whenever the id changes).
- ``user_uttered`` ``{message, customData: {language}}`` -> ``bot_uttered`` ``{text}``,
  ``{text, quick_replies: [{content_type, title, payload}]}`` or ``{attachment: {type: "image",
  payload: {src}}}``. The socket speaks for the session it confirmed, whatever ``session_id``
  a later event carries.

The widget sends a quick reply's payload as ordinary text, so an engine command
(``/intent{...}``) is taken only when it is one of the buttons Barri last offered this citizen;
any other leading ``/`` is typed text and dropped, as in the web chat.

Everything goes through the hub (``bot.engine.Conversations``): rate limits, replay while the
engine is down, language, hand-off; sender ids are ``web:…`` like the web chat's, so reports,
alerts and status messages treat both alike (``bot.channels.shared.SharedChannel``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import socketio
from aiohttp import web

from bot.channels.base import Button, Channel, ChannelParts, DeliveryOutcome, IncomingMessage, OutgoingMessage
from bot.channels.webchat.channel import SessionTokens
from bot.engine import Conversations
from bot.ratelimit import AddressLimiters, RateLimiter, Verdict
from common.i18n import Catalogs
from common.netaddr import client_address
from common.responses import ADAPTER_MESSAGES
from common.settings import Settings

if TYPE_CHECKING:
    from bot.outbox import OutboxWorker

log = logging.getLogger(__name__)

# the Socket.IO server, attached with the routes before start-up; the channel adds its handlers
SOCKETIO_SERVER: web.AppKey[socketio.AsyncServer] = web.AppKey("socketio_server")

SOCKETIO_PATH = "socket.io"  # Rasa's and the widget's default (socketPath "/socket.io/")
MAX_PAYLOAD_CHARS = 500
RENEW_AFTER_SECONDS = 24 * 3600
# citizens whose offered buttons are remembered (a reload of the widget shows the last ones again)
REMEMBERED_SENDERS = 10_000


@dataclass
class Connection:
    """One socket: who it speaks for (once confirmed), from where, in which language."""

    address: str
    sender_id: str | None = None
    hint: str | None = None


def create_server(settings: Settings) -> socketio.AsyncServer:
    """The Socket.IO server, attached to the app at start-up (no I/O); the channel adds its
    handlers once the hub exists."""
    return socketio.AsyncServer(
        async_mode="aiohttp",
        cors_allowed_origins=lambda origin, environ: origin_allowed(settings, origin, environ),
        max_http_buffer_size=settings.max_socket_frame_bytes,
        logger=False,
        engineio_logger=False,
    )


async def close_server(server: socketio.AsyncServer) -> None:
    """Close every client's socket, then the server's background tasks (before the web server stops)."""
    # not engineio's disconnect(): it waits for every polling client to poll once more
    for socket in list(server.eio.sockets.values()):
        await socket.close(wait=False, reason=server.eio.reason.SERVER_DISCONNECT)
    server.eio.sockets.clear()
    await server.shutdown()


def origin_allowed(settings: Settings, origin: str | None, environ: dict[str, Any]) -> bool:
    """The web chat's origin check: the service's own origin, PUBLIC_URL, ALLOWED_ORIGINS, and the
    city's sites in EMBED_ORIGINS (where the widget runs). No Origin: not a browser."""
    if origin is None:
        return True
    request: web.Request | None = environ.get("aiohttp.request")
    allowed = {*settings.allowed_origins, *settings.embed_origins}
    if request is not None:
        allowed.add(f"{request.scheme}://{request.host}")
    if settings.public_url:
        allowed.add(settings.public_url.rstrip("/"))
    return origin in allowed


class SocketIOChannel(Channel):
    name = "socketio"
    sends_where_connected = True  # its citizens' sockets are on this instance

    def __init__(
        self, server: socketio.AsyncServer, settings: Settings, catalogs: Catalogs, conversations: Conversations,
        address_limiter: RateLimiter | None = None, hello_limiter: RateLimiter | None = None,
        new_session_limiter: RateLimiter | None = None, clock: Callable[[], float] = time.time,
    ) -> None:
        self.server = server
        self.settings = settings
        self.catalogs = catalogs
        self.conversations = conversations
        # per network address, shared with the web chat: messages, session requests, new sessions
        self.address_limiter = address_limiter
        self.hello_limiter = hello_limiter
        self.new_session_limiter = new_session_limiter
        self.clock = clock
        # its own key: a web-chat token is no Socket.IO session id, nor the other way round
        self.tokens = SessionTokens("socketio:" + settings.secret_key,
                                    settings.webchat_session_idle_days * 24 * 3600, clock)
        self.connections: dict[str, Connection] = {}
        self.sids: defaultdict[str, set[str]] = defaultdict(set)
        self.offered: OrderedDict[str, dict[str, str]] = OrderedDict()  # sender -> payload -> title
        # called (as a task) with the sender id after each session_confirm: the outbox delivers
        # what waited for this citizen while they were away
        self.on_connect: list[Callable[[str], Coroutine[Any, Any, object]]] = []
        self._tasks: set[asyncio.Task[object]] = set()
        server.on("connect", self._connect)
        server.on("disconnect", self._disconnect)
        server.on("session_request", self._session_request)
        server.on("user_uttered", self._user_uttered)

    # Channel interface ------------------------------------------------------------------
    @property
    def serves(self) -> str:
        return "web"  # the web chat's citizens: one conversation whichever of the two they use

    @classmethod
    def create(cls, parts: ChannelParts) -> SocketIOChannel:
        limits = AddressLimiters.from_settings(parts.settings)
        return cls(
            parts.app[SOCKETIO_SERVER], parts.settings, parts.catalogs, parts.conversations,
            address_limiter=limits.address, hello_limiter=limits.hello, new_session_limiter=limits.new_session,
        )

    @classmethod
    def add_routes(cls, app: web.Application, settings: Settings) -> None:
        server = create_server(settings)
        server.attach(app, socketio_path=SOCKETIO_PATH)
        app[SOCKETIO_SERVER] = server

        async def close_sockets(app: web.Application) -> None:
            """At shutdown, before the app waits for its handlers: an open socket would hold it."""
            await close_server(server)

        app.on_shutdown.append(close_sockets)

    def use_outbox(self, worker: OutboxWorker) -> None:
        self.on_connect.append(worker.flush)  # what waited for a citizen goes when they come back

    async def connect(self) -> None:
        return None

    async def disconnect(self) -> None:
        # the server itself was closed at shutdown (add_routes), before the app waited for handlers
        for limiter in (self.address_limiter, self.hello_limiter, self.new_session_limiter):
            if limiter is not None:
                await limiter.close()
        self.connections.clear()
        self.sids.clear()

    def connected(self) -> list[str]:
        """The citizens with an open socket on this instance."""
        return [sender_id for sender_id, sids in self.sids.items() if sids]

    async def respond(self, sender_id: str, messages: list[OutgoingMessage]) -> bool:
        sids = list(self.sids.get(sender_id, ()))
        if not sids:
            return False
        for message in messages:
            if message.custom.get("forget"):
                await self._forget(sender_id)
                return True
            self._remember_buttons(sender_id, message.buttons)
            for utterance in bot_utterances(message):
                for sid in sids:
                    await self.server.emit("bot_uttered", utterance, to=sid)
        return True

    async def push(self, sender_id: str, message: OutgoingMessage) -> DeliveryOutcome:
        """An outbox message to every open socket of the citizen; `offline` when none is open here."""
        return DeliveryOutcome("sent") if await self.respond(sender_id, [message]) else DeliveryOutcome("offline")

    # events -----------------------------------------------------------------------------
    async def _connect(self, sid: str, environ: dict[str, Any], auth: object = None) -> None:
        request: web.Request | None = environ.get("aiohttp.request")
        address = client_address(request, self.settings.trusted_proxies) if request is not None else "unknown"
        self.connections[sid] = Connection(address=address)

    async def _disconnect(self, sid: str, reason: object = None) -> None:
        connection = self.connections.pop(sid, None)
        if connection is not None and connection.sender_id is not None:
            self._detach(sid, connection.sender_id)

    async def _session_request(self, sid: str, data: object = None) -> None:
        connection = self.connections.get(sid)
        if connection is None:
            return
        given = data.get("session_id") if isinstance(data, dict) else None
        sender_id = self.tokens.verify(given)
        limiters = [self.hello_limiter] + ([self.new_session_limiter] if sender_id is None else [])
        for limiter in limiters:
            if limiter is not None and await limiter.check(connection.address) is not Verdict.ALLOW:
                log.info("rate limit: a Socket.IO session request from one address was refused")
                await self._notice(sid, "rate_limited", connection.hint)
                await self.server.disconnect(sid)
                return
        if sender_id is not None and isinstance(given, str) and not self._due_for_renewal(given):
            token = given  # the same id: the widget keeps its conversation as it is
        else:
            sender_id, token = self.tokens.issue(sender_id)
        if connection.sender_id is not None and connection.sender_id != sender_id:
            self._detach(sid, connection.sender_id)
        connection.sender_id = sender_id
        self.sids[sender_id].add(sid)
        await self.server.emit("session_confirm", token, to=sid)
        for hook in self.on_connect:
            task: asyncio.Task[object] = asyncio.create_task(hook(sender_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _user_uttered(self, sid: str, data: object = None) -> None:
        connection = self.connections.get(sid)
        if connection is None or connection.sender_id is None or not isinstance(data, dict):
            return  # the widget asks for a session first and waits for it
        custom = data.get("customData")
        if isinstance(custom, dict) and isinstance(custom.get("language"), str):
            connection.hint = custom["language"][:35] or None
        message = await self._read(sid, connection, data.get("message"))
        if message is None:
            return
        if self.address_limiter is not None:
            verdict = await self.address_limiter.check(connection.address)
            if verdict is Verdict.NOTIFY:
                log.info("rate limit: messages from one address were not read")
                await self._notice(sid, "rate_limited", connection.hint)
            if verdict is not Verdict.ALLOW:
                return
        await self.respond(message.sender_id, await self.conversations.handle(message))

    async def _read(self, sid: str, connection: Connection, text: object) -> IncomingMessage | None:
        """The message for the engine, or None (the citizen was told why, or it was nothing)."""
        sender_id, hint = connection.sender_id, connection.hint
        assert sender_id is not None
        if not isinstance(text, str):
            return None  # e.g. a widget without initPayload sends {message: undefined}
        text = text.strip()
        if not text:
            await self._notice(sid, "empty", hint)
            return None
        if len(text) > self.settings.max_message_chars:
            await self._notice(sid, "too_long", hint, text=text, limit=self.settings.max_message_chars)
            return None
        title = self.offered.get(sender_id, {}).get(text) if len(text) <= MAX_PAYLOAD_CHARS else None
        if title is not None:  # a quick reply Barri offered: its payload goes to the engine as it is
            return IncomingMessage(sender_id=sender_id, text=text, locale_hint=hint, display_text=title)
        # typed text is never an engine command ("/intent{...}" comes only from buttons)
        stripped = text.lstrip("/").strip()
        if not stripped:
            await self._notice(sid, "unreadable", hint)
            return None
        return IncomingMessage(sender_id=sender_id, text=stripped, locale_hint=hint)

    # helpers ----------------------------------------------------------------------------
    def _due_for_renewal(self, token: str) -> bool:
        stamp = token.split(".")[1]
        return self.clock() - int(stamp) > RENEW_AFTER_SECONDS

    def _detach(self, sid: str, sender_id: str) -> None:
        sids = self.sids.get(sender_id)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self.sids[sender_id]

    def _remember_buttons(self, sender_id: str, buttons: tuple[Button, ...]) -> None:
        if not buttons:
            return
        self.offered[sender_id] = {b.payload: b.title for b in buttons if b.payload.startswith("/")}
        self.offered.move_to_end(sender_id)
        while len(self.offered) > REMEMBERED_SENDERS:
            self.offered.popitem(last=False)

    async def _forget(self, sender_id: str) -> None:
        """The citizen's data was erased: every socket of theirs gets a new session (the widget
        has no way to clear its own transcript; it stores the new id and goes on)."""
        self.offered.pop(sender_id, None)
        for sid in list(self.sids.pop(sender_id, ())):
            connection = self.connections.get(sid)
            if connection is None:
                continue
            new_sender, token = self.tokens.issue()
            connection.sender_id = new_sender
            self.sids[new_sender].add(sid)
            await self.server.emit("session_confirm", token, to=sid)

    async def _notice(self, sid: str, key: str, hint: str | None, text: str = "", **args: Any) -> None:
        locale = self.conversations.adapter_locale(IncomingMessage(sender_id="", text=text[:500], locale_hint=hint))
        notice = self.catalogs.gettext(ADAPTER_MESSAGES[key], locale, **args)
        await self.server.emit("bot_uttered", {"text": notice}, to=sid)


def bot_utterances(message: OutgoingMessage) -> list[dict[str, Any]]:
    """One neutral message as the widget's ``bot_uttered`` events, as Rasa's socketio channel
    sends them: a text per paragraph, the quick replies with the last one, an image apart."""
    utterances: list[dict[str, Any]] = []
    paragraphs = [part for part in message.text.split("\n\n") if part.strip()] if message.text else []
    if message.buttons and not paragraphs:
        paragraphs = [""]
    for index, paragraph in enumerate(paragraphs):
        utterance: dict[str, Any] = {"text": paragraph}
        if message.buttons and index == len(paragraphs) - 1:
            utterance["quick_replies"] = [
                {"content_type": "text", "title": b.title or b.payload, "payload": b.payload} for b in message.buttons
            ]
        utterances.append(utterance)
    image = message.custom.get("image")
    if isinstance(image, str) and image:
        utterances.append({"attachment": {"type": "image", "payload": {"src": image}}})
    return utterances

