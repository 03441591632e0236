"""storage.reporters on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from storage.db import session_scope
from storage.models import (
    Reporter,
)
from storage.reporters import get_or_create_reporter
from tests.cases import ALICE, BOB, count
from tests.threads import at_once

# --------------------------------------------------------------------------- reporters


def test_get_or_create_reporter_creates_then_updates(
    session: Session, new_session: Callable[[], Session]
) -> None:
    first = get_or_create_reporter(
        session=session, sender_id=ALICE, channel="telegram", locale="ca"
    )
    assert first.sender_id == ALICE
    assert first.channel == "telegram"
    assert first.locale == "ca"
    assert first.unreachable is False
    assert first.contact_name is None
    assert first.erased_at is None

    second = get_or_create_reporter(
        session=session, sender_id=ALICE, channel="telegram", locale="es"
    )
    assert second.id == first.id
    assert second.locale == "es"
    assert second.last_seen_at >= first.created_at

    other = new_session()
    stored = other.exec(select(Reporter)).all()
    assert [(r.id, r.locale) for r in stored] == [(first.id, "es")]
    assert stored[0].created_at.tzinfo is UTC
    assert stored[0].last_seen_at.tzinfo is UTC


def test_get_or_create_reporter_is_safe_under_concurrency(engine: Engine) -> None:
    def reporter_id(_: int) -> uuid.UUID:
        with session_scope(engine) as session:
            return get_or_create_reporter(session=session, sender_id=BOB, channel="web", locale="en").id

    results = at_once(reporter_id, 6)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert len(results) == 6
    assert len(set(results)) == 1
    with session_scope(engine) as session:
        assert count(session, Reporter) == 1
