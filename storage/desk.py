"""What dispatchers do to cases: find them, move them through their life, write notes, and
record what the citizen was told."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from storage import attachments as attachment_store
from storage import cases as case_store
from storage.audit import record_audit
from storage.cases import add_case_event
from storage.db import atomic
from storage.errors import StorageError
from storage.models import (
    EVENT_NOTE_INTERNAL,
    EVENT_NOTE_PUBLIC,
    EVENT_STATUS_CHANGED,
    OPEN_STATUSES,
    PRIORITIES,
    STATUSES,
    Attachment,
    Case,
    CaseEvent,
    Reporter,
    utcnow,
)
from storage.refs import normalise_ref

EVENT_CITIZEN_NOTIFIED = "citizen_notified"
EVENT_UPDATED = "updated"

# Where a case may go from each status. Closed, rejected and duplicate cases are final:
# dispatchers can still write public notes on them (updates after closing).
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"acknowledged", "in_progress", "rejected", "duplicate"}),
    "acknowledged": frozenset({"in_progress", "resolved", "rejected", "duplicate"}),
    "in_progress": frozenset({"resolved", "rejected", "duplicate"}),
    "resolved": frozenset({"closed", "in_progress"}),
    "closed": frozenset(),
    "rejected": frozenset(),
    "duplicate": frozenset(),
}

# The moment a case first reaches these statuses is kept on the case itself.
STATUS_TIMESTAMPS = {
    "acknowledged": "acknowledged_at",
    "resolved": "resolved_at",
    "closed": "closed_at",
}


class IllegalTransition(StorageError):
    """A status change the case's life does not allow; the message says why. ``template``
    and ``values`` let the desk say it in the reader's language."""

    def __init__(self, template: str, **values: str) -> None:
        self.template = template
        self.values = values
        super().__init__(template.format(**values))


@dataclass(frozen=True)
class CaseFilters:
    status: str | None = None
    category: str | None = None
    neighbourhood: str | None = None  # code ("06-31") or exact name
    priority: str | None = None
    since: datetime | None = None


@dataclass
class CaseChange:
    """What a dispatcher asked to change; None means "leave as it is"."""

    status: str | None = None
    duplicate_of: str | None = None  # the other case's reference, with status "duplicate"
    priority: str | None = None
    assignee: str | None = None
    public_note: str | None = None
    internal_note: str | None = None
    events: list[CaseEvent] = field(default_factory=list)


def list_cases(
    *, session: Session, filters: CaseFilters, limit: int = 50, offset: int = 0
) -> tuple[list[Case], int]:
    """Cases matching the filters, urgent first then newest, and how many match in all."""
    query = select(Case)
    if filters.status:
        query = query.where(Case.status == filters.status)
    if filters.category:
        query = query.where(Case.category == filters.category)
    if filters.priority:
        query = query.where(Case.priority == filters.priority)
    if filters.neighbourhood:
        query = query.where(
            (Case.neighbourhood_code == filters.neighbourhood) | (Case.neighbourhood_name == filters.neighbourhood)
        )
    if filters.since:
        query = query.where(col(Case.created_at) >= filters.since)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    urgent_first = (col(Case.priority) == "urgent").desc()
    rows = session.exec(query.order_by(urgent_first, col(Case.created_at).desc()).offset(offset).limit(limit)).all()
    return list(rows), int(total)


def check_transition(current: str, wanted: str) -> None:
    if wanted not in STATUSES:
        raise IllegalTransition("unknown status {status}", status=repr(wanted))
    if wanted == current:
        raise IllegalTransition("the case is already {current}", current=current)
    if wanted not in TRANSITIONS[current]:
        if not TRANSITIONS[current]:
            raise IllegalTransition("a {current} case cannot become {wanted} (allowed: none: it is final)",
                                    current=current, wanted=wanted)
        raise IllegalTransition("a {current} case cannot become {wanted} (allowed: {allowed})",
                                current=current, wanted=wanted, allowed=", ".join(sorted(TRANSITIONS[current])))


def update_case(*, session: Session, case: Case, change: CaseChange, actor: str) -> Case:
    """Apply a dispatcher's change in one transaction; the new history events are put in
    ``change.events`` so the caller can tell the citizen about the public ones."""
    with atomic(session):
        current = case_store.reload_case(session=session, case=case)
        now = utcnow()
        if change.status is not None:
            check_transition(current.status, change.status)
            if change.status == "duplicate":
                original = _duplicate_target(session, current, change.duplicate_of)
                current.duplicate_of_id = original.id
            previous = current.status
            current.status = change.status
            stamp = STATUS_TIMESTAMPS.get(change.status)
            if stamp and getattr(current, stamp) is None:
                setattr(current, stamp, now)
            change.events.append(add_case_event(
                session=session, case_id=current.id, kind=EVENT_STATUS_CHANGED, actor=actor, at=now,
                from_status=previous, to_status=change.status,
            ))
        if change.priority is not None:
            if change.priority not in PRIORITIES:
                raise IllegalTransition("unknown priority {priority}", priority=repr(change.priority))
            current.priority = change.priority
        if change.assignee is not None:
            current.assignee = change.assignee or None
        if change.priority is not None or change.assignee is not None:
            change.events.append(add_case_event(
                session=session, case_id=current.id, kind=EVENT_UPDATED, actor=actor, at=now,
                text=f"priority={current.priority}; assignee={current.assignee or '-'}",
            ))
        if change.public_note:
            change.events.append(add_case_event(
                session=session, case_id=current.id, kind=EVENT_NOTE_PUBLIC, actor=actor, at=now,
                text=change.public_note,
            ))
        if change.internal_note:
            change.events.append(add_case_event(
                session=session, case_id=current.id, kind=EVENT_NOTE_INTERNAL, actor=actor, at=now,
                text=change.internal_note,
            ))
        current.updated_at = now
        session.add(current)
        record_audit(
            session=session, actor=actor, action="case.updated", subject_type="case", subject_id=str(current.id),
            detail={"status": change.status, "priority": change.priority,
                    "assignee_changed": change.assignee is not None,
                    "public_note": bool(change.public_note), "internal_note": bool(change.internal_note)},
        )
    return current


def _duplicate_target(session: Session, case: Case, ref: str | None) -> Case:
    canonical = normalise_ref(ref or "")
    if canonical is None:
        raise IllegalTransition("a duplicate needs duplicate_of: the reference of the original case")
    original = session.exec(select(Case).where(Case.ref == canonical)).first()
    if original is None:
        raise IllegalTransition("there is no case {ref}", ref=canonical)
    if original.id == case.id:
        raise IllegalTransition("a case cannot be a duplicate of itself")
    return original


def reachable_reporter(*, session: Session, case: Case) -> Reporter | None:
    """The case's reporter, unless erased or known to be unreachable (nothing can be sent to them)."""
    if case.reporter_id is None:
        return None
    reporter = session.get(Reporter, case.reporter_id)
    return reporter if reporter is not None and not reporter.unreachable else None


def record_citizen_notification(
    *, session: Session, case_id: uuid.UUID, channel: str, outcome: str, what: str
) -> CaseEvent:
    """Which message about the case reached (or did not reach) the citizen, and how."""
    with atomic(session):
        event = add_case_event(
            session=session, case_id=case_id, kind=EVENT_CITIZEN_NOTIFIED, actor="system", at=utcnow(),
            text=f"{what} via {channel}: {outcome}",
        )
    return event


DUPLICATE_RADIUS_METRES = 150.0
# Only points placed this precisely take part in the 150 m check (a shared location, a corner,
# a landmark); a street or a stretch of numbers is hundreds of metres long.
PRECISE_RADIUS_METRES = 100
DUPLICATE_WINDOW_HOURS = 48


def distance_metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine) between two points."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(a))


def likely_duplicates(
    *, session: Session, case: Case, radius_m: float = DUPLICATE_RADIUS_METRES,
    window_hours: int = DUPLICATE_WINDOW_HOURS,
) -> list[Case]:
    """Open cases of the same category within ``radius_m`` and ``window_hours`` of this one.

    Only precise points (``PRECISE_RADIUS_METRES``) are compared by distance; otherwise the
    same neighbourhood and the same written address count as "the same place".
    """
    window = timedelta(hours=window_hours)
    candidates = session.exec(
        select(Case).where(
            Case.category == case.category,
            col(Case.status).in_(OPEN_STATUSES),
            Case.id != case.id,
            col(Case.created_at) >= case.created_at - window,
            col(Case.created_at) <= case.created_at + window,
        )
    ).all()
    found = []
    for other in candidates:
        here, there = _precise_point(case), _precise_point(other)
        if here is not None and there is not None:
            if distance_metres(*here, *there) <= radius_m:
                found.append(other)
        elif (case.neighbourhood_code and case.neighbourhood_code == other.neighbourhood_code
              and case.address and other.address and case.address.strip().lower() == other.address.strip().lower()):
            found.append(other)
    return sorted(found, key=lambda other: other.created_at)


def _precise_point(case: Case) -> tuple[float, float] | None:
    """The case's point if it is precise enough for the distance check (a case with
    coordinates and no radius is a shared location from before the radius existed)."""
    if case.latitude is None or case.longitude is None:
        return None
    if case.location_radius is not None and case.location_radius > PRECISE_RADIUS_METRES:
        return None
    return case.latitude, case.longitude


# --------------------------------------------------------------------------- live chat
LIVE_STARTED = "live_started"
LIVE_ENDED = "live_ended"
CHAT_FROM_CITIZEN = "chat_citizen"
CHAT_FROM_STAFF = "chat_staff"
CHAT_KINDS = (CHAT_FROM_CITIZEN, CHAT_FROM_STAFF)
_LIVE_KINDS = (LIVE_STARTED, LIVE_ENDED)


def is_live(*, session: Session, case: Case) -> bool:
    """Whether a person, not the assistant, is talking with the reporter of this case."""
    latest = session.exec(
        select(CaseEvent.kind).where(CaseEvent.case_id == case.id, col(CaseEvent.kind).in_(_LIVE_KINDS))
        .order_by(col(CaseEvent.at).desc()).limit(1)
    ).first()
    return latest == LIVE_STARTED


def live_case_for_sender(*, session: Session, sender_id: str) -> Case | None:
    """The case whose live chat this citizen's messages belong to, if any."""
    reporter = session.exec(select(Reporter).where(Reporter.sender_id == sender_id)).first()
    if reporter is None:
        return None
    recent = session.exec(
        select(Case).where(Case.reporter_id == reporter.id).order_by(col(Case.created_at).desc()).limit(5)
    ).all()
    return next((case for case in recent if is_live(session=session, case=case)), None)


def set_live(*, session: Session, case: Case, live: bool, actor: str) -> bool:
    """Start or end the live chat; False when it already was so."""
    with atomic(session):
        current = case_store.reload_case(session=session, case=case)
        if is_live(session=session, case=current) == live:
            return False
        add_case_event(session=session, case_id=current.id, kind=LIVE_STARTED if live else LIVE_ENDED, actor=actor,
                       at=utcnow())
        record_audit(session=session, actor=actor, action="case.live_chat_started" if live else "case.live_chat_ended",
                     subject_type="case", subject_id=str(current.id))
    return True


def add_chat_message(*, session: Session, case: Case, text: str, actor: str, from_citizen: bool) -> CaseEvent:
    with atomic(session):
        event = add_case_event(session=session, case_id=case.id,
                               kind=CHAT_FROM_CITIZEN if from_citizen else CHAT_FROM_STAFF,
                               actor=actor, at=utcnow(), text=text)
    return event


def take_citizen_message(*, session: Session, sender_id: str, text: str) -> bool:
    """Add the citizen's message to the case of their live chat; False when they are in none."""
    case = live_case_for_sender(session=session, sender_id=sender_id)
    if case is None:
        return False
    add_chat_message(session=session, case=case, text=text, actor="citizen", from_citizen=True)
    return True


def chat_messages(*, session: Session, case: Case) -> list[CaseEvent]:
    return list(session.exec(
        select(CaseEvent).where(CaseEvent.case_id == case.id,
                                col(CaseEvent.kind).in_((*CHAT_KINDS, *_LIVE_KINDS)))
        .order_by(col(CaseEvent.at))
    ).all())


def chat_of_case(*, session: Session, ref: str, after: datetime) -> list[CaseEvent] | None:
    """The chat messages of case ``ref`` written after ``after``; None when there is no such case."""
    case = case_store.get_case_by_ref(session=session, ref=ref)
    if case is None:
        return None
    return [event for event in chat_messages(session=session, case=case)
            if event.kind in CHAT_KINDS and event.at > after]


def read_case_photo(
    *, session: Session, ref: str, attachment_id: uuid.UUID, actor: str, via: str
) -> tuple[str, bytes] | None:
    """A photo of a case with its type, recorded in the audit log; None if it is not that case's."""
    case = case_store.get_case_by_ref(session=session, ref=ref)
    if case is None:
        return None
    attachments = attachment_store.get_attachments(session=session, case_id=case.id)
    found = next((a for a in attachments if a.id == attachment_id), None)
    data = attachment_store.get_attachment_data(session=session, attachment_id=attachment_id) if found else None
    if found is None or data is None:
        return None
    record_audit(session=session, actor=actor, action="attachment.read", subject_type="attachment",
                 subject_id=str(attachment_id), detail={"ref": case.ref, "via": via})
    return found.mime_type, data


# --------------------------------------------------------------------------- what the API and the desk share


class ChatRefused(StorageError):
    """The citizen of this case cannot be written to; the message says why."""


@dataclass(frozen=True)
class CaseRecord:
    """A case as a dispatcher reads it: its photos, its history, the reporter's contact
    details when they asked to be contacted, and the references of likely duplicates."""

    case: Case
    attachments: list[Attachment]
    events: list[CaseEvent]
    contact: Reporter | None
    duplicates: list[str]


def read_case(*, session: Session, ref: str, reader: str) -> CaseRecord | None:
    """Case ``ref`` for ``reader``; the read, and the read of the contact details, are audited."""
    case = case_store.get_case_by_ref(session=session, ref=ref)
    if case is None:
        return None
    attachments = attachment_store.get_attachments(session=session, case_id=case.id)
    events = case_store.get_case_events(session=session, case_id=case.id)
    record_audit(session=session, actor=reader, action="case.read", subject_type="case",
                 subject_id=str(case.id), detail={"ref": case.ref})
    contact = None
    if case.contact_mode == "contact" and case.reporter_id is not None:
        contact = session.get(Reporter, case.reporter_id)
        if contact is not None:
            record_audit(session=session, actor=reader, action="case.read_contact",
                         subject_type="case", subject_id=str(case.id), detail={"ref": case.ref})
    duplicates = [other.ref for other in likely_duplicates(session=session, case=case)]
    return CaseRecord(case=case, attachments=attachments, events=events, contact=contact, duplicates=duplicates)


def original_case(*, session: Session, case: Case) -> Case | None:
    """The case this one duplicates, if it was closed as a duplicate."""
    return session.get(Case, case.duplicate_of_id) if case.duplicate_of_id else None


def update_case_by_ref(
    *, session: Session, ref: str, change: CaseChange | Callable[[Case], CaseChange], actor: str
) -> tuple[Case, CaseChange] | None:
    """``update_case`` on case ``ref``: the case after the change and the change made; None when
    there is no such case. ``change`` may be worked out from the case as it stands (a form that
    sends every field changes only those that differ)."""
    case = case_store.get_case_by_ref(session=session, ref=ref)
    if case is None:
        return None
    wanted = change(case) if callable(change) else change
    return update_case(session=session, case=case, change=wanted, actor=actor), wanted


def export_cases(*, session: Session, filters: CaseFilters, limit: int, offset: int, actor: str, action: str,
                 query: dict[str, str]) -> list[Case]:
    """The cases of an export; the export is audited with its count and query (never its contents)."""
    cases, _ = list_cases(session=session, filters=filters, limit=limit, offset=offset)
    record_audit(session=session, actor=actor, action=action, subject_type="cases", subject_id="-",
                 detail={"count": len(cases), "query": query})
    return cases


@dataclass(frozen=True)
class CaseChat:
    live: bool  # a dispatcher has the conversation: the citizen's messages come to the case
    messages: list[CaseEvent]  # the chat and its live_started / live_ended marks, oldest first


def conversation_of(*, session: Session, case: Case) -> CaseChat:
    return CaseChat(live=is_live(session=session, case=case), messages=chat_messages(session=session, case=case))


def read_chat(*, session: Session, ref: str, reader: str) -> tuple[Case, CaseChat] | None:
    """The case's conversation with its reporter, audited; None when there is no such case."""
    case = case_store.get_case_by_ref(session=session, ref=ref)
    if case is None:
        return None
    record_audit(session=session, actor=reader, action="case.read_chat", subject_type="case", subject_id=str(case.id))
    return case, conversation_of(session=session, case=case)


def start_live_chat(*, session: Session, ref: str, text: str, actor: str) -> Case | None:
    """A dispatcher writes to the citizen: the chat becomes live and the message is recorded.
    None when there is no such case; ChatRefused when the citizen cannot be written to."""
    case = case_store.get_case_by_ref(session=session, ref=ref)
    if case is None:
        return None
    if case.contact_mode == "anonymous" and case.handoff_requested_at is None:
        raise ChatRefused("the citizen chose no contact and did not ask for a person")
    if case.reporter_id is None:
        raise ChatRefused("the citizen's data was erased")
    set_live(session=session, case=case, live=True, actor=actor)
    add_chat_message(session=session, case=case, text=text, actor=actor, from_citizen=False)
    return case


def end_live_chat(*, session: Session, ref: str, actor: str) -> tuple[Case, bool] | None:
    """Hand the conversation back to the assistant: (case, whether it was live), or None."""
    case = case_store.get_case_by_ref(session=session, ref=ref)
    return None if case is None else (case, set_live(session=session, case=case, live=False, actor=actor))
