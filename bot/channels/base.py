"""The one interface every messaging channel implements, and the neutral messages they
exchange with the engine. Adapters turn platform events into IncomingMessage and draw
OutgoingMessage on their platform; dialogue state stays in the engine.

A channel lives in its own folder (``bot/channels/<name>/``) and is listed once, in
``bot.app.CHANNELS``: the app builds it with ``create`` from the ``ChannelParts``, adds its
``add_routes`` before start-up, connects it, and gives it an outbox worker."""

from __future__ import annotations

import abc
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
from aiohttp import web
from sqlalchemy import Engine

from common.i18n import Catalogs
from common.settings import Settings

if TYPE_CHECKING:
    from bot.dispatch import DispatchDesk
    from bot.engine import Conversations
    from bot.notify import Notifier
    from bot.outbox import OutboxWorker


@dataclass(frozen=True)
class Button:
    title: str
    payload: str


@dataclass(frozen=True)
class IncomingMessage:
    sender_id: str  # namespaced by channel: "web:…", "telegram:…", "whatsapp:…"
    text: str  # what the engine reads: typed text or a "/intent{…}" payload
    locale_hint: str | None = None  # browser or app language, used until the citizen's own is known
    display_text: str | None = None  # what the citizen sees echoed (a button's title)


@dataclass(frozen=True)
class OutgoingMessage:
    text: str = ""
    buttons: tuple[Button, ...] = ()
    request: str | None = None  # "location" or "photo": offer that input
    custom: dict[str, Any] = field(default_factory=dict)


DeliveryStatus = Literal["sent", "retry", "unreachable", "failed", "offline"]


@dataclass(frozen=True)
class DeliveryOutcome:
    """What the platform did with one message Barri sent on its own (the outbox's send).

    ``sent``: the platform took it. ``retry``: try again later (flood control, with the
    platform's ``retry_after`` in seconds; or a server/network error). ``unreachable``: the
    citizen blocked the bot. ``failed``: it will never go (e.g. the chat does not exist).
    ``offline``: the citizen cannot be reached from here right now (a web-chat citizen not
    connected to this instance); nothing was tried. A ``retry_after`` with ``recipient_only``
    holds back only this citizen's messages, not the whole channel.
    """

    status: DeliveryStatus
    retry_after: float | None = None
    error: str = ""
    recipient_only: bool = False  # the wait concerns this citizen alone (WhatsApp's pair rate limit)
    platform_id: str = ""  # the platform's id of the sent message (WhatsApp's delivery reports use it)


@dataclass(frozen=True)
class ChannelParts:
    """What the app builds before the channels, for them to be built from."""

    settings: Settings
    catalogs: Catalogs
    db: Engine
    tracker_db: Engine  # the engine's tracker store: whether a conversation still exists
    conversations: Conversations  # the hub: where incoming messages go
    notifier: Notifier  # tells citizens what happened to their cases
    http: aiohttp.ClientSession  # the app's one HTTP client, for platforms reached over HTTP
    app: web.Application  # what a channel's ``add_routes`` attached (the Socket.IO server)


class Channel(abc.ABC):
    """A messaging platform: connect, listen (push IncomingMessage to the hub), respond, disconnect."""

    name: str
    # The citizens it serves: the prefix of their sender ids and the outbox rows' channel. Two
    # adapters may serve the same citizens (the web chat page and the Rasa widget both serve
    # "web:…"): the app delivers to them as one (bot.channels.shared).
    @property
    def serves(self) -> str:
        return self.name
    # Where the outbox (bot.outbox) sends this channel's messages from: False, only the
    # scheduler leader (one sender keeps within the platform's limits); True, every instance,
    # to the citizens connected to it (``connected``).
    sends_where_connected: bool = False
    # The dispatchers' group on this platform that announces new and escalated cases, if any
    desk: DispatchDesk | None = None

    @classmethod
    @abc.abstractmethod
    def create(cls, parts: ChannelParts) -> Channel | None:
        """The channel, or None when the deployment does not configure it (no token)."""

    @classmethod
    def add_routes(cls, app: web.Application, settings: Settings) -> None:
        """Add the routes the channel serves (pages, sockets, webhooks): before start-up, so
        before the channel exists; a handler finds it in ``request.app[bot.keys.CHANNELS]``."""
        return None

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def respond(self, sender_id: str, messages: list[OutgoingMessage]) -> bool:
        """Send messages to a citizen; True when the platform took them."""

    @abc.abstractmethod
    async def disconnect(self) -> None: ...

    def connected(self) -> Collection[str]:
        """The citizens reachable from this instance (for ``sends_where_connected`` channels)."""
        return ()

    def outbox_pace(self) -> dict[str, float]:
        """The outbox worker's pace for this platform's limits (``OutboxWorker`` arguments
        ``rate_per_second``, ``per_chat_interval``); empty for the worker's defaults."""
        return {}

    def use_outbox(self, worker: OutboxWorker) -> None:
        """The outbox worker that sends this channel's messages, once the app has made it (to
        flush it when a citizen connects, say)."""
        return None

    async def push(self, sender_id: str, message: OutgoingMessage) -> DeliveryOutcome:
        """Send one message the citizen did not ask for right now (an alert, a status change)
        and report exactly what happened, without retrying: the outbox worker paces, retries
        and records. Channels that cannot do this keep the default."""
        return DeliveryOutcome("failed", error=f"the {self.name} channel cannot send on its own")
