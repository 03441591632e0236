"""The web chat page and the Rasa widget's Socket.IO endpoint both serve ``web:…`` citizens:
to the hub's replay, the notifier (hand-off) and the outbox they are one "web" channel, and
whichever adapter has the citizen connected delivers."""

from __future__ import annotations

from typing import Protocol

from bot.channels.base import Channel, DeliveryOutcome, OutgoingMessage


class WebAdapter(Protocol):
    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def respond(self, sender_id: str, messages: list[OutgoingMessage]) -> bool: ...

    async def push(self, sender_id: str, message: OutgoingMessage) -> DeliveryOutcome: ...

    def connected(self) -> list[str]: ...


class WebChannels(Channel):
    name = "web"

    def __init__(self, *adapters: WebAdapter) -> None:
        self.adapters = adapters

    async def connect(self) -> None:
        for adapter in self.adapters:
            await adapter.connect()

    async def disconnect(self) -> None:
        for adapter in self.adapters:
            await adapter.disconnect()

    def connected(self) -> list[str]:
        return sorted({sender_id for adapter in self.adapters for sender_id in adapter.connected()})

    async def respond(self, sender_id: str, messages: list[OutgoingMessage]) -> bool:
        delivered = False
        for adapter in self.adapters:  # a citizen may have the page and the widget open at once
            delivered = await adapter.respond(sender_id, messages) or delivered
        return delivered

    async def push(self, sender_id: str, message: OutgoingMessage) -> DeliveryOutcome:
        outcomes = [await adapter.push(sender_id, message) for adapter in self.adapters]
        for outcome in outcomes:
            if outcome.status == "sent":
                return outcome
        return next((o for o in outcomes if o.status != "offline"), DeliveryOutcome("offline"))
