"""Messages written while the engine is down are kept and replayed when it is back.

Design (see the README, "When the engine is down"):

- When the engine does not answer, ``Conversations`` keeps the citizen's message in the
  ``pending_messages`` table and tells the citizen at once that it was received and will be
  answered as soon as the assistant is back.
- Before any new message of that sender reaches the engine, the kept ones are replayed first,
  oldest first, under the sender's turn lock; if they still cannot be replayed the new message
  is kept behind them. So the engine always sees a citizen's messages in the order written.
- A background task (``Replayer``) probes the engine every ``replay_probe_seconds`` while
  something is kept, and replays every waiting sender when it answers; the answers go to the
  citizen through the channel they wrote on.
- A row is deleted only after the engine took the message, so a message is never lost; a
  per-sender lease in the database keeps two bot-service instances from replaying the same
  sender at once (a crash between the engine's answer and the delete could replay one message
  twice: the only case where the engine may see a message again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.channels.base import Channel, IncomingMessage, OutgoingMessage
from bot.tasks import cancel_and_wait
from storage import inbox as store
from storage.db import run_storage
from storage.errors import StorageError
from storage.leases import acquire_lease, new_holder_id, release_lease

log = logging.getLogger(__name__)

# one turn of the engine for a kept message: raises EngineUnavailable while it is down
Turn = Callable[[IncomingMessage, dict[str, Any]], Awaitable[list[OutgoingMessage]]]


def channel_of(sender_id: str) -> str:
    """Sender ids are namespaced by channel: "web:…", "telegram:…"."""
    return sender_id.split(":", 1)[0]


class Inbox:
    """The durable queue of messages the engine has not taken yet, and where answers go."""

    def __init__(self, db: Engine, lease_seconds: float, channels: Mapping[str, Channel]) -> None:
        self._db = db
        self._lease = timedelta(seconds=lease_seconds)
        self._holder = new_holder_id()
        self.channels = channels  # the app's running channels, by name: where replayed answers go

    async def keep(self, message: IncomingMessage, metadata: Mapping[str, Any]) -> bool:
        """Store a message the engine could not take; False when the database is down too."""

        try:
            await run_storage(self._db, store.keep_message, sender_id=message.sender_id,
                              channel=channel_of(message.sender_id), text=message.text, metadata=dict(metadata))
        except (StorageError, SQLAlchemyError) as error:
            log.warning("could not keep a message for replay: %s", type(error).__name__)
            return False
        return True

    async def senders(self) -> list[str]:
        try:
            return await run_storage(self._db, store.pending_senders)
        except (StorageError, SQLAlchemyError) as error:
            log.warning("could not read the kept messages: %s", type(error).__name__)
            return []

    async def replay(self, sender_id: str, turn: Turn, engine_down: type[Exception]) -> bool:
        """Replay the sender's kept messages in order (the caller holds the sender's turn lock).

        True when nothing is waiting any more; False when some are still kept (the engine is
        still down, or another instance is replaying them right now).
        """

        try:
            if not await run_storage(self._db, store.has_pending, sender_id=sender_id):
                return True
        except (StorageError, SQLAlchemyError):
            # database down: nothing can be replayed now, and new messages still reach the engine
            return True
        try:
            return await self._replay(sender_id, turn, engine_down)
        except (StorageError, SQLAlchemyError) as error:
            log.warning("replay interrupted by the database: %s", type(error).__name__)
            return False
        finally:
            with contextlib.suppress(StorageError, SQLAlchemyError):
                await run_storage(self._db, release_lease, name=_lease_name(sender_id), holder=self._holder)

    async def _replay(self, sender_id: str, turn: Turn, engine_down: type[Exception]) -> bool:
        while True:
            if not await self._claim(sender_id):
                return False  # another instance is replaying this sender
            rows = await run_storage(self._db, store.pending_for, sender_id=sender_id)
            if not rows:
                return True
            for row in rows:
                metadata = store.decode_metadata(row)
                message = IncomingMessage(sender_id=sender_id, text=row.text,
                                          locale_hint=metadata.get("locale"))
                try:
                    answers = await turn(message, metadata)
                except engine_down:
                    return False
                if row.id is not None:
                    await run_storage(self._db, store.forget_message, message_id=row.id)
                await self._deliver(sender_id, row.channel, answers)
                await self._claim(sender_id)  # renew for the next one

    async def _deliver(self, sender_id: str, channel_name: str, answers: list[OutgoingMessage]) -> None:
        channel = self.channels.get(channel_name)
        if channel is None or not answers:
            return
        if not await channel.respond(sender_id, answers):
            # the engine has the message and its state moved on; the citizen sees the
            # conversation continue when they come back
            log.info("a replayed answer found no open %s conversation", channel_name)

    async def _claim(self, sender_id: str) -> bool:
        return await run_storage(self._db, acquire_lease, name=_lease_name(sender_id), holder=self._holder,
                                 ttl=self._lease)


def _lease_name(sender_id: str) -> str:
    # lease names are at most 64 characters; sender ids are short ("web:" + 32 hex)
    return f"inbox:{sender_id}"[:64]


class Replayer:
    """Background task: while messages are kept, probe the engine and replay them when it answers."""

    def __init__(
        self,
        inbox: Inbox,
        engine_ready: Callable[[], Awaitable[bool]],
        replay_sender: Callable[[str], Awaitable[bool]],
        interval: float,
    ) -> None:
        self._inbox = inbox
        self._engine_ready = engine_ready
        self._replay_sender = replay_sender
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="barri-replay")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.replay_once()
            except Exception:  # the loop must outlive any single failure
                log.exception("replay round failed")

    async def replay_once(self) -> int:
        """One round; returns how many senders were fully replayed."""
        senders = await self._inbox.senders()
        if not senders or not await self._engine_ready():
            return 0
        done = 0
        for sender_id in senders:
            if await self._replay_sender(sender_id):
                done += 1
        return done
