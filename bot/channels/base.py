"""The one interface every messaging channel implements, and the neutral messages they
exchange with the engine. Adapters turn platform events into IncomingMessage and draw
OutgoingMessage on their platform; dialogue state stays in the engine."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Literal


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


class Channel(abc.ABC):
    """A messaging platform: connect, listen (push IncomingMessage to the hub), respond, disconnect."""

    name: str

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def respond(self, sender_id: str, messages: list[OutgoingMessage]) -> bool:
        """Send messages to a citizen; True when the platform took them."""

    @abc.abstractmethod
    async def disconnect(self) -> None: ...

    async def push(self, sender_id: str, message: OutgoingMessage) -> DeliveryOutcome:
        """Send one message the citizen did not ask for right now (an alert, a status change)
        and report exactly what happened, without retrying: the outbox worker paces, retries
        and records. Channels that cannot do this keep the default."""
        return DeliveryOutcome("failed", error=f"the {self.name} channel cannot send on its own")
