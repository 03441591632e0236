"""The engine's SQL tracker store, read and erased from outside the engine.

Rasa has no API to delete a conversation, and the engine rewrites the whole tracker if the
rows vanish during a turn, so the bot service erases them after the turn that asked for it.
The table layout is Rasa's SQLTrackerStore (`events`, keyed by `sender_id`, `timestamp` in
Unix seconds).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from sqlalchemy import Engine, MetaData, Table, delete, func, select
from sqlalchemy.exc import NoSuchTableError


@functools.cache
def _events(engine: Engine) -> Table:
    """The engine's `events` table, reflected once per database (raises NoSuchTableError
    until the engine has created it; that is not cached)."""
    return Table("events", MetaData(), autoload_with=engine)


def erase_conversation(*, engine: Engine, sender_id: str) -> int:
    """Delete every stored event of this conversation; returns how many rows went."""
    try:
        events = _events(engine)
    except NoSuchTableError:
        return 0
    with engine.begin() as connection:
        result = connection.execute(delete(events).where(events.c.sender_id == sender_id))
    return result.rowcount or 0


def conversation_last_active(*, tracker: Engine, sender_id: str) -> datetime | None:
    """When the engine last stored an event of this conversation; ``None`` if it has none."""
    try:
        events = _events(tracker)
    except NoSuchTableError:
        return None
    with tracker.connect() as connection:
        latest = connection.execute(
            select(func.max(events.c.timestamp)).where(events.c.sender_id == sender_id)
        ).scalar()
    return datetime.fromtimestamp(float(latest), UTC) if latest is not None else None


def idle_conversations(*, tracker: Engine, before: datetime) -> list[str]:
    """Sender ids of the conversations with nothing stored since ``before``."""
    return [sender_id for sender_id, _ in idle_conversations_last_active(tracker=tracker, before=before)]


def idle_conversations_last_active(*, tracker: Engine, before: datetime) -> list[tuple[str, datetime]]:
    """The conversations with nothing stored since ``before``, each with its last event's
    moment, longest idle first (for the retention dry run, which says how long)."""
    try:
        events = _events(tracker)
    except NoSuchTableError:
        return []
    last = func.max(events.c.timestamp)
    with tracker.connect() as connection:
        rows = connection.execute(
            select(events.c.sender_id, last).group_by(events.c.sender_id)
            .having(last < before.timestamp()).order_by(last)
        ).all()
    return [(sender_id, datetime.fromtimestamp(float(moment), UTC)) for sender_id, moment in rows]
