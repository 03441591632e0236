"""What the scheduler's sweeps read and write (``bot.jobs``): escalations, reporter follow-ups,
surveys after resolution, and which reporters' personal data has outlived its retention.

Every sweep is idempotent: a case carries the mark of what was done to it (``escalated_at``
and an ``escalated`` event; a ``follow_up_sent`` event; a ``survey_responses`` row), the mark
is written in the same transaction as the outbox row, and the outbox deduplicates by key.
A sweep that runs twice, or again after a crash, sends nobody anything twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from storage.audit import record_audit
from storage.cases import add_case_event
from storage.db import atomic
from storage.models import (
    ACTOR_SYSTEM,
    CLOSED_STATUSES,
    EVENT_ESCALATED,
    EVENT_FOLLOW_UP_SENT,
    EVENT_STATUS_CHANGED,
    EVENT_SURVEY_SENT,
    Case,
    CaseEvent,
    Reporter,
    Subscription,
    SurveyResponse,
)
from storage.outbox import OutgoingItem, enqueue

# The case was announced in the dispatch chat (bot.dispatch), and an escalated case re-sent
# there; each written after Telegram accepted the message, with its id in the event's text.
EVENT_DISPATCHED = "dispatched"
EVENT_ESCALATION_DISPATCHED = "escalation_dispatched"

# Channels on which Barri can write to a citizen first (Open311 clients have no chat).
CHAT_CHANNELS = ("web", "telegram", "whatsapp")
BATCH = 200  # cases per sweep; the next run takes the rest


def _reachable(query):  # type: ignore[no-untyped-def]
    """Restrict a ``select(Case, Reporter)`` to citizens who want and can get messages."""
    return query.join(Reporter, col(Case.reporter_id) == col(Reporter.id)).where(
        col(Case.contact_mode) != "anonymous",
        col(Reporter.unreachable).is_(False),
        col(Reporter.channel).in_(CHAT_CHANNELS),
        col(Case.erased_at).is_(None),
    )


# --------------------------------------------------------------------------- escalation


def cases_to_escalate(
    *, session: Session, now: datetime, after: timedelta, urgent_after: timedelta
) -> list[Case]:
    """Cases still ``new`` past their deadline (shorter for urgent ones) and not yet escalated."""
    overdue = (col(Case.created_at) <= now - after) | (
        (col(Case.priority) == "urgent") & (col(Case.created_at) <= now - urgent_after)
    )
    query = (
        select(Case)
        .where(col(Case.status) == "new", col(Case.escalated_at).is_(None), overdue)
        .order_by(col(Case.created_at))
        .limit(BATCH)
    )
    return list(session.exec(query).all())


def mark_escalated(*, session: Session, case_id: uuid.UUID, now: datetime) -> bool:
    """Set ``escalated_at`` and add the event, if the case is still new and unmarked.

    The conditional update makes this safe against a second sweep running at the same time:
    only one of them gets the row. Returns True if this call escalated the case.
    """
    with atomic(session):
        result = session.execute(
            update(Case)
            .where(col(Case.id) == case_id, col(Case.status) == "new", col(Case.escalated_at).is_(None))
            .values(escalated_at=now)
            .execution_options(synchronize_session=False)
        )
        if not getattr(result, "rowcount", 0):
            return False
        add_case_event(session=session, case_id=case_id, kind=EVENT_ESCALATED, actor=ACTOR_SYSTEM, at=now)
    return True


def escalate_overdue(*, session: Session, now: datetime, after: timedelta, urgent_after: timedelta) -> int:
    """Escalate every case past its deadline (``cases_to_escalate``); how many this call escalated."""
    overdue = cases_to_escalate(session=session, now=now, after=after, urgent_after=urgent_after)
    return sum(mark_escalated(session=session, case_id=case.id, now=now) for case in overdue)


def escalations_to_dispatch(*, session: Session, since: datetime) -> list[Case]:
    """Escalated cases, still new, not yet re-sent to the dispatch chat (escalated after ``since``)."""
    dispatched = select(CaseEvent.case_id).where(col(CaseEvent.kind) == EVENT_ESCALATION_DISPATCHED)
    query = (
        select(Case)
        .where(
            col(Case.status) == "new",
            col(Case.escalated_at) >= since,
            col(Case.id).not_in(dispatched),
        )
        .order_by((col(Case.priority) == "urgent").desc(), col(Case.escalated_at))
        .limit(BATCH)
    )
    return list(session.exec(query).all())


def cases_to_announce(*, session: Session, since: datetime) -> list[Case]:
    """Cases created after ``since`` not yet announced in the dispatch chat, urgent ones first."""
    announced = select(CaseEvent.case_id).where(col(CaseEvent.kind) == EVENT_DISPATCHED)
    query = (
        select(Case)
        .where(col(Case.created_at) >= since, col(Case.id).not_in(announced))
        .order_by((col(Case.priority) == "urgent").desc(), col(Case.created_at))
    )
    return list(session.exec(query).all())


def mark_dispatched(*, session: Session, case_id: uuid.UUID, message_id: int, now: datetime) -> None:
    with atomic(session):
        add_case_event(session=session, case_id=case_id, kind=EVENT_DISPATCHED, actor=ACTOR_SYSTEM, at=now,
                       text=dispatch_message_text(message_id))


def dispatch_message_text(message_id: int) -> str:
    return f"telegram message {message_id}"


def mark_escalation_dispatched(*, session: Session, case_id: uuid.UUID, message_id: int, now: datetime) -> None:
    with atomic(session):
        add_case_event(session=session, case_id=case_id, kind=EVENT_ESCALATION_DISPATCHED, actor=ACTOR_SYSTEM, at=now,
                   text=dispatch_message_text(message_id))


def case_of_dispatch_message(*, session: Session, message_id: int) -> Case | None:
    """The case announced, or re-sent when escalated, in this message of the dispatch chat:
    a button acts only on the case of the message it is under."""
    announced = select(CaseEvent.case_id).where(
        col(CaseEvent.kind).in_((EVENT_DISPATCHED, EVENT_ESCALATION_DISPATCHED)),
        col(CaseEvent.text) == dispatch_message_text(message_id),
    )
    return session.exec(select(Case).where(col(Case.id).in_(announced))).first()


# --------------------------------------------------------------------------- follow-ups


def follow_ups_due(*, session: Session, now: datetime, after: timedelta) -> list[tuple[Case, Reporter]]:
    """Open cases filed at least ``after`` ago whose reporter has not been followed up."""
    done = select(CaseEvent.case_id).where(col(CaseEvent.kind) == EVENT_FOLLOW_UP_SENT)
    query = _reachable(select(Case, Reporter)).where(
        col(Case.created_at) <= now - after,
        col(Case.status).not_in(CLOSED_STATUSES),
        col(Case.id).not_in(done),
    ).order_by(col(Case.created_at)).limit(BATCH)
    return [(case, reporter) for case, reporter in session.exec(query).all()]


def record_follow_up(*, session: Session, case_id: uuid.UUID, item: OutgoingItem, now: datetime) -> bool:
    """Queue the follow-up and mark the case in one transaction; False if already done."""
    # lock the case row (PostgreSQL) so that two sweeps cannot both pass the check below
    session.exec(select(Case.id).where(col(Case.id) == case_id).with_for_update()).first()
    already = session.exec(
        select(CaseEvent.id).where(col(CaseEvent.case_id) == case_id, col(CaseEvent.kind) == EVENT_FOLLOW_UP_SENT)
    ).first()
    if already is not None:
        session.rollback()
        return False
    add_case_event(session=session, case_id=case_id, kind=EVENT_FOLLOW_UP_SENT, actor=ACTOR_SYSTEM, at=now)
    enqueue(session=session, items=[item])  # commits the event with the outbox row
    return True


# --------------------------------------------------------------------------- surveys


def surveys_due(
    *, session: Session, now: datetime, delay: timedelta, window: timedelta
) -> list[tuple[Case, Reporter]]:
    """Cases resolved between ``window`` and ``delay`` ago, not yet surveyed."""
    surveyed = select(SurveyResponse.case_id)
    query = _reachable(select(Case, Reporter)).where(
        col(Case.status).in_(("resolved", "closed")),
        col(Case.resolved_at) <= now - delay,
        col(Case.resolved_at) >= now - window,
        col(Case.id).not_in(surveyed),
    ).order_by(col(Case.resolved_at)).limit(BATCH)
    return [(case, reporter) for case, reporter in session.exec(query).all()]


def record_survey(*, session: Session, case: Case, item: OutgoingItem, now: datetime) -> bool:
    """Create the case's survey row, its event and its outbox message together; False if the
    case already has a survey."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    created = session.execute(
        insert(SurveyResponse)
        .values(id=uuid.uuid4(), case_id=case.id, neighbourhood_code=case.neighbourhood_code, sent_at=now)
        .on_conflict_do_nothing(index_elements=["case_id"])
        .returning(col(SurveyResponse.id))
    ).first()
    if created is None:
        session.rollback()
        return False
    add_case_event(session=session, case_id=case.id, kind=EVENT_SURVEY_SENT, actor=ACTOR_SYSTEM, at=now)
    enqueue(session=session, items=[item])  # commits all three
    return True


# --------------------------------------------------------------------------- retention


def _closed_moment(case: Case, finished_at: datetime | None) -> datetime:
    moments = [m for m in (case.closed_at, case.resolved_at, finished_at) if m is not None]
    return max(moments) if moments else case.updated_at


@dataclass(frozen=True)
class RetentionDue:
    """A reporter whose personal data has outlived its retention, named only by their cases."""

    sender_id: str
    case_refs: tuple[str, ...]
    last_closed_at: datetime  # when their last case was finished
    last_seen_at: datetime  # when they last wrote to Barri


def retention_due(*, session: Session, now: datetime, retention: timedelta, limit: int | None = BATCH
                  ) -> list[RetentionDue]:
    """Reporters whose cases are all finished, the last one longer than ``retention`` ago, and
    who have not been seen since then either (at most ``limit``; ``None``: all).

    Reporters without any case are left alone (they left no contact details; ``forget_me``
    erases them when they ask).
    """
    cutoff = now - retention
    reporters: Sequence[Reporter] = session.exec(
        select(Reporter).where(col(Reporter.last_seen_at) <= cutoff).order_by(col(Reporter.last_seen_at))
    ).all()
    due: list[RetentionDue] = []
    for reporter in reporters:
        cases = session.exec(select(Case).where(col(Case.reporter_id) == reporter.id)).all()
        if not cases or any(case.status not in CLOSED_STATUSES for case in cases):
            continue
        finished = dict(
            session.execute(
                select(CaseEvent.case_id, func.max(CaseEvent.at))
                .where(
                    col(CaseEvent.case_id).in_([case.id for case in cases]),
                    col(CaseEvent.kind) == EVENT_STATUS_CHANGED,
                    col(CaseEvent.to_status).in_(CLOSED_STATUSES),
                )
                .group_by(col(CaseEvent.case_id))
            ).all()
        )
        closed = max(_closed_moment(case, finished.get(case.id)) for case in cases)
        if closed <= cutoff:
            due.append(RetentionDue(sender_id=reporter.sender_id, case_refs=tuple(sorted(c.ref for c in cases)),
                                    last_closed_at=closed, last_seen_at=reporter.last_seen_at))
        if limit is not None and len(due) >= limit:
            break
    return due


def reporters_past_retention(*, session: Session, now: datetime, retention: timedelta) -> list[str]:
    """Sender ids of the reporters ``retention_due`` finds (one sweep's batch)."""
    return [item.sender_id for item in retention_due(session=session, now=now, retention=retention)]


def visitors_without_cases(*, session: Session, sender_ids: Sequence[str]) -> list[tuple[str, bool]]:
    """Of these senders, those who never filed a case, each with whether they follow
    neighbourhood alerts (their subscriptions stay; only the conversation goes)."""
    found: list[tuple[str, bool]] = []
    for start in range(0, len(sender_ids), 500):  # bounded IN lists
        chunk = list(sender_ids[start:start + 500])
        with_cases = set(session.exec(
            select(Reporter.sender_id).join(Case, col(Case.reporter_id) == col(Reporter.id))
            .where(col(Reporter.sender_id).in_(chunk))
        ).all())
        subscribed = set(session.exec(
            select(Reporter.sender_id).join(Subscription, col(Subscription.reporter_id) == col(Reporter.id))
            .where(col(Reporter.sender_id).in_(chunk))
        ).all())
        found += [(sender, sender in subscribed) for sender in chunk if sender not in with_cases]
    return found


def record_conversations_purge(*, session: Session, erased: int) -> None:
    """Audit one sweep of idle conversations of visitors without a case (a count only)."""
    with atomic(session):
        record_audit(session=session, actor=ACTOR_SYSTEM, action="retention.conversations_purged",
                     subject_type="conversation", subject_id="-", detail={"conversations_erased": erased})


def record_retention_purge(*, session: Session, erased: int) -> None:
    """Audit one retention sweep (a count only: never who)."""
    with atomic(session):
        record_audit(session=session, actor=ACTOR_SYSTEM, action="retention.purged", subject_type="reporter",
                     subject_id="-", detail={"reporters_erased": erased})
