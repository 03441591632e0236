"""Adapters that serve the same citizens, delivered to as one channel.

The web chat page and the Rasa widget's Socket.IO endpoint both serve ``web:…`` citizens: to
the hub's replay, the notifier (hand-off) and the outbox they are one "web" channel, and
whichever adapter has the citizen connected delivers. ``bot.app`` groups the running adapters
by ``Channel.serves``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.channels.base import Channel, ChannelParts, DeliveryOutcome, OutgoingMessage

if TYPE_CHECKING:
    from bot.outbox import OutboxWorker


class SharedChannel(Channel):
    """Several running adapters serving one kind of sender id; connected and disconnected by
    the app one by one, so this only delivers."""

    def __init__(self, serves: str, adapters: list[Channel]) -> None:
        self.name = serves
        self.adapters = adapters
        self.sends_where_connected = any(adapter.sends_where_connected for adapter in adapters)

    @classmethod
    def create(cls, parts: ChannelParts) -> Channel | None:
        raise TypeError("built by the app from running adapters")

    async def connect(self) -> None:
        return None

    async def disconnect(self) -> None:
        return None

    def use_outbox(self, worker: OutboxWorker) -> None:
        for adapter in self.adapters:
            adapter.use_outbox(worker)

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
