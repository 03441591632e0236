"""What the Open311 API (``bot.open311``) reads and writes: service requests are cases."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from storage import cases as case_store
from storage.audit import record_audit
from storage.models import EVENT_NOTE_PUBLIC, Case, CaseCreate, CaseEvent


def file_request(*, session: Session, case_in: CaseCreate, actor: str) -> str:
    """Store a posted service request as a case, audited in the name of the key's staff user;
    returns its reference."""
    case = case_store.create_case(session=session, case_in=case_in)
    record_audit(session=session, actor=actor, action="open311.request_created", subject_type="case",
                            subject_id=str(case.id), detail={"ref": case.ref, "service_code": case.category})
    return case.ref


def find_requests(
    *,
    session: Session,
    services: Sequence[str],
    limit: int,
    refs: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    coarse_categories: Sequence[str] = (),
    coarse_window: tuple[datetime, datetime] | None = None,
    service_codes: Sequence[str] = (),
    statuses: Sequence[str] = (),
    with_notes: bool = False,
) -> list[tuple[Case, str | None]]:
    """Cases of the ``services`` categories, newest first, each with its latest public note
    when ``with_notes`` (else None).

    ``refs`` (even empty) overrides every other filter. Otherwise a case was created between
    ``start`` and ``end``, except that with a ``coarse_window`` (from, before) the
    ``coarse_categories`` match on it instead: a window of whole days.
    """
    if refs is not None and not refs:
        return []
    statement = select(Case).where(col(Case.category).in_(services))
    if refs is not None:
        statement = statement.where(col(Case.ref).in_(refs))
    else:
        exact = and_(col(Case.created_at) >= start, col(Case.created_at) <= end)
        if coarse_window is None:
            statement = statement.where(exact)
        else:
            first_day, after_last_day = coarse_window
            by_day = and_(col(Case.category).in_(coarse_categories),
                          col(Case.created_at) >= first_day, col(Case.created_at) < after_last_day)
            statement = statement.where(or_(and_(col(Case.category).not_in(coarse_categories), exact), by_day))
        if service_codes:
            statement = statement.where(col(Case.category).in_(service_codes))
        if statuses:
            statement = statement.where(col(Case.status).in_(statuses))
    statement = statement.order_by(col(Case.created_at).desc(), col(Case.ref)).limit(limit)
    cases = list(session.exec(statement).all())
    notes: dict[uuid.UUID, str] = {}
    if cases and with_notes:
        events = session.exec(
            select(CaseEvent)
            .where(col(CaseEvent.case_id).in_([c.id for c in cases]),
                   CaseEvent.kind == EVENT_NOTE_PUBLIC, col(CaseEvent.text).is_not(None))
            .order_by(col(CaseEvent.at), col(CaseEvent.id))
        ).all()
        for event in events:  # oldest first: the latest note wins
            notes[event.case_id] = event.text or ""
    return [(case, notes.get(case.id)) for case in cases]
