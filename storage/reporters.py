"""Reporters: the citizens behind the cases, known by their channel's sender id.

Contact details are kept only when the citizen chose to give them; ``storage.erasure``
deletes the row.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from storage.db import atomic
from storage.models import Reporter, utcnow


def find_reporter(*, session: Session, sender_id: str) -> Reporter | None:
    """The reporter of ``sender_id``, or ``None``."""
    return session.exec(select(Reporter).where(Reporter.sender_id == sender_id)).first()


def _insert_reporter_if_missing(
    session: Session, *, sender_id: str, channel: str, locale: str
) -> None:
    """Insert the reporter unless the sender exists, without failing on a concurrent insert."""
    now = utcnow()
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "channel": channel,
        "sender_id": sender_id,
        "locale": locale,
        "unreachable": False,
        "created_at": now,
        "last_seen_at": now,
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(
            pg_insert(Reporter)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["sender_id"])
        )
    elif dialect == "sqlite":
        session.execute(
            sqlite_insert(Reporter)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["sender_id"])
        )
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        if find_reporter(session=session, sender_id=sender_id) is None:
            session.add(Reporter(**values))
            session.flush()


def ensure_reporter(*, session: Session, sender_id: str, channel: str, locale: str) -> Reporter:
    """Like ``get_or_create_reporter`` but joins the caller's transaction (no commit)."""
    reporter = find_reporter(session=session, sender_id=sender_id)
    if reporter is None:
        _insert_reporter_if_missing(session, sender_id=sender_id, channel=channel, locale=locale)
        reporter = find_reporter(session=session, sender_id=sender_id)
        if reporter is None:  # pragma: no cover - the row was just inserted
            raise RuntimeError("reporter vanished right after its insertion")
    reporter.locale = locale
    reporter.last_seen_at = utcnow()
    reporter.unreachable = False  # they are writing to us: a block (Telegram 403) was lifted
    session.add(reporter)
    return reporter


def get_or_create_reporter(
    *, session: Session, sender_id: str, channel: str, locale: str
) -> Reporter:
    """Return the reporter of ``sender_id``, creating it; refresh its locale and last_seen_at."""
    with atomic(session):
        reporter = ensure_reporter(session=session, sender_id=sender_id, channel=channel, locale=locale)
    return reporter


def set_reporter_unreachable(*, session: Session, sender_id: str, unreachable: bool = True) -> bool:
    """Mark a reporter unreachable (they blocked the bot) or reachable again; False if unknown."""
    with atomic(session):
        reporter = find_reporter(session=session, sender_id=sender_id)
        if reporter is None:
            return False
        reporter.unreachable = unreachable
        session.add(reporter)
    return True
