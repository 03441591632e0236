"""The one interface every messaging channel implements, and the neutral messages they
exchange with the engine. Adapters turn platform events into IncomingMessage and draw
OutgoingMessage on their platform; dialogue state stays in the engine."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Button:
    title: str
    payload: str


@dataclass(frozen=True)
class IncomingMessage:
    sender_id: str  # namespaced by channel: "web:…", "telegram:…"
    text: str  # what the engine reads: typed text or a "/intent{…}" payload
    locale_hint: str | None = None  # browser or app language, used until the citizen's own is known
    display_text: str | None = None  # what the citizen sees echoed (a button's title)


@dataclass(frozen=True)
class OutgoingMessage:
    text: str = ""
    buttons: tuple[Button, ...] = ()
    request: str | None = None  # "location" or "photo": offer that input
    custom: dict[str, Any] = field(default_factory=dict)


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
