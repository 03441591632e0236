"""The outbox: every message Barri sends a citizen on its own initiative (alerts, status
changes, follow-ups, surveys) is first written here, one row per recipient, then sent by the
outbox worker (``bot.outbox``).

Enqueueing is idempotent: a row's ``dedupe_key`` is unique and a second insert with the same
key is ignored, so a fan-out or a job that runs again after a crash adds nobody twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from storage.models import OutboxMessage, Reporter, utcnow

# Inserting in chunks keeps statements under SQLite's bound-parameter limit.
INSERT_CHUNK = 500


@dataclass(frozen=True)
class OutgoingItem:
    """What to enqueue for one recipient."""

    reporter_id: uuid.UUID
    channel: str
    dedupe_key: str
    kind: str
    text: str
    buttons: Sequence[tuple[str, str]] = field(default_factory=tuple)
    urgent: bool = False
    alert_id: uuid.UUID | None = None
    case_id: uuid.UUID | None = None
    not_before: datetime | None = None

    @classmethod
    def to(cls, reporter: Reporter, **kwargs: Any) -> OutgoingItem:
        return cls(reporter_id=reporter.id, channel=reporter.channel, **kwargs)


def encode_payload(text: str, buttons: Iterable[tuple[str, str]] = ()) -> str:
    return json.dumps({"text": text, "buttons": [list(button) for button in buttons]}, ensure_ascii=False)


def decode_payload(payload: str) -> tuple[str, list[tuple[str, str]]]:
    data = json.loads(payload)
    return str(data.get("text", "")), [(str(title), str(value)) for title, value in data.get("buttons", [])]


def enqueue(*, session: Session, items: Iterable[OutgoingItem]) -> int:
    """Add the items not already queued (by ``dedupe_key``); commit; return how many were new."""
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "dedupe_key": item.dedupe_key,
            "kind": item.kind,
            "reporter_id": item.reporter_id,
            "channel": item.channel,
            "alert_id": item.alert_id,
            "case_id": item.case_id,
            "payload": encode_payload(item.text, item.buttons),
            "urgent": item.urgent,
            "status": "pending",
            "attempts": 0,
            "not_before": item.not_before or now,
            "created_at": now,
        }
        for item in items
    ]
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    added = 0
    try:
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            statement = (
                insert(OutboxMessage).values(chunk)
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(OutboxMessage.id)  # type: ignore[arg-type]
            )
            added += len(session.execute(statement).all())  # rowcount is 0 on psycopg here
        session.commit()
    except Exception:
        session.rollback()
        raise
    return added
