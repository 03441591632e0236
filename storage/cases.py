"""Cases: creating them, reading them, and the history of what happened to each.

Every function takes the session and keyword-only arguments. A function that writes commits
once, at its end (``storage.db.atomic``), so a failure part-way leaves nothing behind; the
helpers that say they join the caller's transaction (``add_case_event``) never commit.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.attachments import link_pending_attachments
from storage.audit import record_audit
from storage.db import atomic
from storage.errors import CaseRefExhausted
from storage.models import (
    ACTOR_CITIZEN,
    EVENT_CITIZEN_INFO,
    EVENT_CREATED,
    EVENT_HANDOFF_REQUESTED,
    Case,
    CaseCreate,
    CaseEvent,
    Reporter,
    utcnow,
)
from storage.refs import new_case_ref, normalise_ref
from storage.reporters import ensure_reporter

REF_ATTEMPTS = 20


def _ref_is_free(session: Session, ref: str) -> bool:
    return session.exec(select(Case.id).where(Case.ref == ref)).first() is None


def _unique_ref(session: Session) -> str:
    for _ in range(REF_ATTEMPTS):
        ref = new_case_ref()
        if _ref_is_free(session, ref):
            return ref
    raise CaseRefExhausted(f"no free case reference after {REF_ATTEMPTS} attempts")


def add_case_event(
    *,
    session: Session,
    case_id: uuid.UUID,
    kind: str,
    actor: str,
    at: datetime | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    text: str | None = None,
) -> CaseEvent:
    """Add an event to a case's history in the caller's transaction (no commit)."""
    event = CaseEvent(
        case_id=case_id,
        at=at or utcnow(),
        kind=kind,
        actor=actor,
        from_status=from_status,
        to_status=to_status,
        text=text,
    )
    session.add(event)
    return event


def create_case(*, session: Session, case_in: CaseCreate) -> Case:
    """Store a new case with its reporter, pending attachments, first event and audit entry.

    Contact details are stored on the reporter only when ``contact_mode == "contact"``.
    Only attachments that ``case_in.sender_id`` uploaded and that are still pending are linked;
    any other id is ignored.
    """
    with atomic(session):
        now = utcnow()
        reporter = ensure_reporter(
            session=session, sender_id=case_in.sender_id, channel=case_in.channel, locale=case_in.locale
        )
        if case_in.contact_mode == "contact":
            reporter.contact_name = case_in.contact_name
            reporter.contact_phone = case_in.contact_phone
            reporter.contact_email = case_in.contact_email
            reporter.unreachable = False
        session.flush()

        case = Case(
            ref=_unique_ref(session),
            reporter_id=reporter.id,
            channel=case_in.channel,
            locale=case_in.locale,
            category=case_in.category,
            description=case_in.description,
            address=case_in.address,
            latitude=case_in.latitude,
            longitude=case_in.longitude,
            location_source=case_in.location_source,
            location_radius=case_in.location_radius,
            neighbourhood_code=case_in.neighbourhood_code,
            neighbourhood_name=case_in.neighbourhood_name,
            district_name=case_in.district_name,
            occurred_at=case_in.occurred_at,
            occurred_text=case_in.occurred_text,
            contact_mode=case_in.contact_mode,
            status="new",
            priority=case_in.priority,
            created_at=now,
            updated_at=now,
        )
        session.add(case)
        session.flush()

        linked = link_pending_attachments(
            session=session, sender_id=case_in.sender_id, attachment_ids=case_in.attachment_ids, case_id=case.id
        )

        add_case_event(
            session=session,
            case_id=case.id,
            kind=EVENT_CREATED,
            actor=ACTOR_CITIZEN,
            at=now,
            to_status="new",
        )
        record_audit(
            session=session,
            actor=ACTOR_CITIZEN,
            action="case.created",
            subject_type="case",
            subject_id=str(case.id),
            detail={
                "ref": case.ref,
                "channel": case.channel,
                "category": case.category,
                "contact_mode": case.contact_mode,
                "priority": case.priority,
                "attachments": linked,
            },
        )
    return case


def get_case_by_ref(*, session: Session, ref: str) -> Case | None:
    """The case with this reference (any spelling ``normalise_ref`` accepts), or ``None``."""
    canonical = normalise_ref(ref)
    if canonical is None:
        return None
    return session.exec(select(Case).where(Case.ref == canonical)).first()


def get_case_for_sender(*, session: Session, ref: str, sender_id: str) -> Case | None:
    """The case with this reference if ``sender_id`` reported it, else ``None``."""
    canonical = normalise_ref(ref)
    if canonical is None:
        return None
    statement = (
        select(Case)
        .join(Reporter, col(Case.reporter_id) == col(Reporter.id))
        .where(Case.ref == canonical, Reporter.sender_id == sender_id)
    )
    return session.exec(statement).first()


def list_cases_for_sender(*, session: Session, sender_id: str, limit: int = 5) -> list[Case]:
    """The sender's latest cases, newest first."""
    statement = (
        select(Case)
        .join(Reporter, col(Case.reporter_id) == col(Reporter.id))
        .where(Reporter.sender_id == sender_id)
        .order_by(col(Case.created_at).desc(), col(Case.ref).desc())
        .limit(limit)
    )
    return list(session.exec(statement).all())


def get_case_events(*, session: Session, case_id: uuid.UUID) -> list[CaseEvent]:
    """A case's history, oldest first."""
    statement = (
        select(CaseEvent)
        .where(CaseEvent.case_id == case_id)
        .order_by(col(CaseEvent.at), col(CaseEvent.id))
    )
    return list(session.exec(statement).all())


def reload_case(*, session: Session, case: Case) -> Case:
    """The case as stored now (raises LookupError when it is gone).

    The caller's copy may come from another, closed session.
    """
    fresh = session.get(Case, case.id)
    if fresh is None:
        raise LookupError(f"case {case.id} no longer exists")
    return fresh


def request_handoff(*, session: Session, case: Case, actor: str = ACTOR_CITIZEN) -> Case:
    """Mark that the citizen wants a person; returns the up-to-date case.

    The first request's time is kept; every request adds a ``handoff_requested`` event.
    """
    with atomic(session):
        current = reload_case(session=session, case=case)
        now = utcnow()
        if current.handoff_requested_at is None:
            current.handoff_requested_at = now
        current.updated_at = now
        session.add(current)
        add_case_event(session=session, case_id=current.id, kind=EVENT_HANDOFF_REQUESTED, actor=actor, at=now)
    return current


def add_citizen_info(*, session: Session, case: Case, text: str) -> CaseEvent:
    """Add what the citizen says later about a case to its history (erased with them)."""
    with atomic(session):
        current = reload_case(session=session, case=case)
        now = utcnow()
        current.updated_at = now
        session.add(current)
        event = add_case_event(
            session=session,
            case_id=current.id,
            kind=EVENT_CITIZEN_INFO,
            actor=ACTOR_CITIZEN,
            at=now,
            text=text,
        )
    return event


def counts_by_category_and_channel(*, session: Session) -> dict[tuple[str, str], int]:
    """Cases ever filed per (category, channel) (for monitoring; erasure keeps the case rows)."""
    statement = select(col(Case.category), col(Case.channel), func.count()).group_by(
        col(Case.category), col(Case.channel))
    return {(category, channel): int(count) for category, channel, count in session.execute(statement).all()}
