"""Citizen messages kept while the engine is down (``pending_messages``), replayed in order.

The bot service writes a message here when the engine does not answer, and deletes it once
the engine has taken it. Rows are read oldest first per sender (``id`` only grows).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from storage.models import PendingMessage, utcnow


def keep_message(
    *, session: Session, sender_id: str, channel: str, text: str, metadata: dict[str, Any],
    received_at: datetime | None = None,
) -> PendingMessage:
    """Store one message for a later replay; commit."""
    row = PendingMessage(
        sender_id=sender_id, channel=channel, text=text, meta=json.dumps(metadata),
        received_at=received_at or utcnow(),
    )
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def has_pending(*, session: Session, sender_id: str) -> bool:
    statement = select(PendingMessage.id).where(PendingMessage.sender_id == sender_id).limit(1)
    return session.exec(statement).first() is not None


def pending_for(*, session: Session, sender_id: str, limit: int = 50) -> list[PendingMessage]:
    """The sender's kept messages, oldest first."""
    statement = (
        select(PendingMessage).where(PendingMessage.sender_id == sender_id)
        .order_by(col(PendingMessage.id)).limit(limit)
    )
    return list(session.exec(statement).all())


def pending_senders(*, session: Session, limit: int = 500) -> list[str]:
    """Senders with kept messages, the one waiting longest first."""
    first = func.min(PendingMessage.id)
    statement = (
        select(PendingMessage.sender_id).group_by(col(PendingMessage.sender_id)).order_by(first).limit(limit)
    )
    return list(session.exec(statement).all())


def forget_message(*, session: Session, message_id: int) -> None:
    """Delete a message the engine has taken; commit."""
    session.execute(delete(PendingMessage).where(col(PendingMessage.id) == message_id))
    session.commit()


def decode_metadata(row: PendingMessage) -> dict[str, Any]:
    try:
        value = json.loads(row.meta)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
