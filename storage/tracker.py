"""Erasing a conversation from the engine's SQL tracker store.

Rasa has no API to delete a conversation, and the engine rewrites the whole tracker if the
rows vanish during a turn, so the bot service erases them after the turn that asked for it.
The table layout is Rasa's SQLTrackerStore (`events`, keyed by `sender_id`).
"""

from __future__ import annotations

from sqlalchemy import Engine, MetaData, Table, delete
from sqlalchemy.exc import NoSuchTableError


def erase_conversation(*, engine: Engine, sender_id: str) -> int:
    """Delete every stored event of this conversation; returns how many rows went."""
    try:
        events = Table("events", MetaData(), autoload_with=engine)
    except NoSuchTableError:
        return 0
    with engine.begin() as connection:
        result = connection.execute(delete(events).where(events.c.sender_id == sender_id))
    return result.rowcount or 0
