"""Reading and writing cases, reporters, attachments and the audit log.

Every function takes the session first and keyword-only arguments. A function that writes
commits once, at its end, so a failure part-way leaves nothing behind (it rolls the session
back and re-raises). ``record_audit`` is the exception: it joins the caller's transaction.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from storage.errors import AttachmentTooLarge, CaseRefExhausted, InvalidStatus, TooManyPendingAttachments
from storage.models import (
    ACTOR_CITIZEN,
    EVENT_CITIZEN_INFO,
    EVENT_CREATED,
    EVENT_ERASED,
    EVENT_HANDOFF_REQUESTED,
    EVENT_NOTE_PUBLIC,
    EVENT_STATUS_CHANGED,
    STATUSES,
    Attachment,
    AttachmentData,
    AuditLog,
    Case,
    CaseCreate,
    CaseEvent,
    PendingMessage,
    Reporter,
    SurveyResponse,
    WhatsAppContact,
    utcnow,
)
from storage.refs import new_case_ref, normalise_ref

MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
REF_ATTEMPTS = 20
ERASED_COORDINATE_DECIMALS = 3  # about 100 m

# Texts the citizen wrote or that were written to them (and may quote them): erased with them.
CITIZEN_TEXT_EVENT_KINDS = (EVENT_CITIZEN_INFO, EVENT_NOTE_PUBLIC, "chat_citizen", "chat_staff", "citizen_notified")


@dataclass(frozen=True)
class ErasureResult:
    reporter_found: bool
    cases_anonymised: int
    attachments_deleted: int


@contextmanager
def _atomic(session: Session) -> Iterator[None]:
    """Commit once at the end of the block; roll back everything on any exception."""
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


# --------------------------------------------------------------------------- audit


def record_audit(
    *,
    session: Session,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    detail: Mapping[str, Any] | str | None = None,
) -> AuditLog:
    """Add an audit entry to the caller's transaction (no commit).

    ``detail`` is a mapping (stored as JSON) or a JSON string; never put personal data in it.
    """
    if isinstance(detail, str):
        json.loads(detail)  # raises ValueError when it is not JSON
        detail_text: str | None = detail
    elif detail is None:
        detail_text = None
    else:
        detail_text = json.dumps(dict(detail), sort_keys=True, ensure_ascii=False, default=str)
    entry = AuditLog(
        at=utcnow(),
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        detail=detail_text,
    )
    session.add(entry)
    return entry


# --------------------------------------------------------------------------- reporters


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
        if _find_reporter(session, sender_id) is None:
            session.add(Reporter(**values))
            session.flush()


def _find_reporter(session: Session, sender_id: str) -> Reporter | None:
    return session.exec(select(Reporter).where(Reporter.sender_id == sender_id)).first()


def _get_or_create_reporter(
    session: Session, *, sender_id: str, channel: str, locale: str
) -> Reporter:
    reporter = _find_reporter(session, sender_id)
    if reporter is None:
        _insert_reporter_if_missing(session, sender_id=sender_id, channel=channel, locale=locale)
        reporter = _find_reporter(session, sender_id)
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
    with _atomic(session):
        reporter = _get_or_create_reporter(
            session, sender_id=sender_id, channel=channel, locale=locale
        )
    return reporter


# --------------------------------------------------------------------------- cases


def _ref_is_free(session: Session, ref: str) -> bool:
    return session.exec(select(Case.id).where(Case.ref == ref)).first() is None


def _unique_ref(session: Session) -> str:
    for _ in range(REF_ATTEMPTS):
        ref = new_case_ref()
        if _ref_is_free(session, ref):
            return ref
    raise CaseRefExhausted(f"no free case reference after {REF_ATTEMPTS} attempts")


def _add_event(
    session: Session,
    *,
    case_id: uuid.UUID,
    kind: str,
    actor: str,
    at: datetime | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    text: str | None = None,
) -> CaseEvent:
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
    with _atomic(session):
        now = utcnow()
        reporter = _get_or_create_reporter(
            session, sender_id=case_in.sender_id, channel=case_in.channel, locale=case_in.locale
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

        linked = 0
        if case_in.attachment_ids:
            pending = session.exec(
                select(Attachment).where(
                    col(Attachment.id).in_(list(dict.fromkeys(case_in.attachment_ids))),
                    Attachment.owner_sender_id == case_in.sender_id,
                    col(Attachment.case_id).is_(None),
                )
            ).all()
            for attachment in pending:
                attachment.case_id = case.id
                attachment.owner_sender_id = None
                session.add(attachment)
            linked = len(pending)

        _add_event(
            session,
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


def _load_case(session: Session, case: Case) -> Case:
    fresh = session.get(Case, case.id)
    if fresh is None:
        raise LookupError(f"case {case.id} no longer exists")
    return fresh


def request_handoff(*, session: Session, case: Case, actor: str = ACTOR_CITIZEN) -> Case:
    """Mark that the citizen wants a person; returns the up-to-date case.

    The first request's time is kept; every request adds a ``handoff_requested`` event.
    """
    with _atomic(session):
        current = _load_case(session, case)
        now = utcnow()
        if current.handoff_requested_at is None:
            current.handoff_requested_at = now
        current.updated_at = now
        session.add(current)
        _add_event(session, case_id=current.id, kind=EVENT_HANDOFF_REQUESTED, actor=actor, at=now)
    return current


def add_citizen_info(*, session: Session, case: Case, text: str) -> CaseEvent:
    """Add what the citizen says later about a case to its history (erased with them)."""
    with _atomic(session):
        current = _load_case(session, case)
        now = utcnow()
        current.updated_at = now
        session.add(current)
        event = _add_event(
            session,
            case_id=current.id,
            kind=EVENT_CITIZEN_INFO,
            actor=ACTOR_CITIZEN,
            at=now,
            text=text,
        )
    return event


_STATUS_TIMESTAMPS = {
    "acknowledged": "acknowledged_at",
    "resolved": "resolved_at",
    "closed": "closed_at",
}


def change_status(
    *, session: Session, case: Case, to_status: str, actor: str, text: str | None = None
) -> Case:
    """Move a case to ``to_status`` with a ``status_changed`` event and an audit entry."""
    if to_status not in STATUSES:
        raise InvalidStatus(f"unknown status {to_status!r}")
    with _atomic(session):
        current = _load_case(session, case)
        now = utcnow()
        from_status = current.status
        current.status = to_status
        current.updated_at = now
        stamp = _STATUS_TIMESTAMPS.get(to_status)
        if stamp is not None and getattr(current, stamp) is None:
            setattr(current, stamp, now)
        session.add(current)
        _add_event(
            session,
            case_id=current.id,
            kind=EVENT_STATUS_CHANGED,
            actor=actor,
            at=now,
            from_status=from_status,
            to_status=to_status,
            text=text,
        )
        record_audit(
            session=session,
            actor=actor,
            action="case.status_changed",
            subject_type="case",
            subject_id=str(current.id),
            detail={"from": from_status, "to": to_status},
        )
    return current


# --------------------------------------------------------------------------- attachments


def add_pending_attachment(
    *, session: Session, sender_id: str, data: bytes, mime_type: str, sent_sha256: str | None = None,
    max_pending: int | None = None,
) -> Attachment:
    """Store an uploaded file for ``sender_id``'s report in progress.

    ``sent_sha256``: the digest of the file as the citizen sent it, when what is stored differs
    (metadata removed); the receipt is of that. ``max_pending``: refuse (TooManyPendingAttachments)
    when the sender already has that many attachments waiting for a report.
    """
    if not data:
        raise ValueError("empty attachment")
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise AttachmentTooLarge(f"{len(data)} bytes > {MAX_ATTACHMENT_BYTES}")
    with _atomic(session):
        if max_pending is not None and count_pending_attachments(session=session, sender_id=sender_id) >= max_pending:
            raise TooManyPendingAttachments(f"{max_pending} attachments already wait for a report")
        attachment = Attachment(
            owner_sender_id=sender_id,
            sha256=sent_sha256 or hashlib.sha256(data).hexdigest(),
            size=len(data),
            mime_type=mime_type,
            created_at=utcnow(),
        )
        session.add(attachment)
        session.flush()
        session.add(AttachmentData(attachment_id=attachment.id, data=bytes(data)))
    return attachment


def count_pending_attachments(*, session: Session, sender_id: str) -> int:
    """How many of the sender's attachments are not linked to a case yet."""
    return session.exec(
        select(func.count()).select_from(Attachment)
        .where(Attachment.owner_sender_id == sender_id, col(Attachment.case_id).is_(None))
    ).one()


def discard_pending_attachments(*, session: Session, sender_id: str) -> int:
    """Delete the sender's attachments not yet linked to a case; return how many."""
    with _atomic(session):
        count = _delete_attachments(
            session,
            (Attachment.owner_sender_id == sender_id, col(Attachment.case_id).is_(None)),
        )
    return count


def purge_stale_pending_attachments(*, session: Session, older_than: timedelta) -> int:
    """Delete pending attachments uploaded more than ``older_than`` ago (abandoned reports)."""
    with _atomic(session):
        count = _delete_attachments(
            session,
            (
                col(Attachment.case_id).is_(None),
                col(Attachment.created_at) < utcnow() - older_than,
            ),
        )
    return count


def count_stale_pending_attachments(*, session: Session, older_than: timedelta) -> int:
    """How many pending attachments ``purge_stale_pending_attachments`` would delete now."""
    return int(session.exec(
        select(func.count()).select_from(Attachment).where(
            col(Attachment.case_id).is_(None), col(Attachment.created_at) < utcnow() - older_than)
    ).one())


def _delete_attachments(session: Session, conditions: Sequence[Any]) -> int:
    ids = list(session.exec(select(Attachment.id).where(*conditions)).all())
    if not ids:
        return 0
    # Delete the bytes explicitly too, not only through ON DELETE CASCADE.
    session.execute(delete(AttachmentData).where(col(AttachmentData.attachment_id).in_(ids)))
    session.execute(
        delete(Attachment)
        .where(col(Attachment.id).in_(ids))
        .execution_options(synchronize_session="fetch")
    )
    return len(ids)


def get_attachments(*, session: Session, case_id: uuid.UUID) -> list[Attachment]:
    """A case's attachments (metadata only), oldest first."""
    statement = (
        select(Attachment)
        .where(Attachment.case_id == case_id)
        .order_by(col(Attachment.created_at), col(Attachment.id))
    )
    return list(session.exec(statement).all())


def get_attachment_data(*, session: Session, attachment_id: uuid.UUID) -> bytes | None:
    """The bytes of an attachment, or ``None`` when it does not exist."""
    row = session.get(AttachmentData, attachment_id)
    return None if row is None else row.data


# --------------------------------------------------------------------------- erasure


def _round_coordinate(value: float | None) -> float | None:
    return None if value is None else round(value, ERASED_COORDINATE_DECIMALS)


def erase_reporter(*, session: Session, sender_id: str) -> ErasureResult:
    """Erase a citizen: delete their reporter row and photos, strip their words from cases.

    Category, neighbourhood, times, status and priority stay for statistics; coordinates
    are rounded to about 100 m. The audit entry holds counts only, never the sender id.
    """
    with _atomic(session):
        now = utcnow()
        reporter = _find_reporter(session, sender_id)
        cases: list[Case] = []
        if reporter is not None:
            cases = list(session.exec(select(Case).where(Case.reporter_id == reporter.id)).all())
        case_ids = [case.id for case in cases]

        attachments_deleted = _delete_attachments(
            session, (Attachment.owner_sender_id == sender_id,)
        )
        if case_ids:
            attachments_deleted += _delete_attachments(
                session, (col(Attachment.case_id).in_(case_ids),)
            )
            session.execute(
                update(CaseEvent)
                .where(
                    col(CaseEvent.case_id).in_(case_ids),
                    (col(CaseEvent.kind).in_(CITIZEN_TEXT_EVENT_KINDS))
                    | (col(CaseEvent.actor) == ACTOR_CITIZEN),
                )
                .values(text=None)
                .execution_options(synchronize_session="fetch")
            )
            # the survey's scores stay for statistics; the citizen's own words go
            session.execute(
                update(SurveyResponse)
                .where(col(SurveyResponse.case_id).in_(case_ids))
                .values(comment=None)
                .execution_options(synchronize_session="fetch")
            )
        for case in cases:
            case.description = None
            case.address = None
            case.occurred_text = None
            case.latitude = _round_coordinate(case.latitude)
            case.longitude = _round_coordinate(case.longitude)
            case.reporter_id = None
            case.erased_at = now
            case.updated_at = now
            session.add(case)
            _add_event(session, case_id=case.id, kind=EVENT_ERASED, actor=ACTOR_CITIZEN, at=now)
        # messages kept while the engine was down hold the citizen's words too
        session.execute(delete(PendingMessage).where(col(PendingMessage.sender_id) == sender_id))
        # a WhatsApp citizen's phone number (the pseudonym's only link back to them)
        session.execute(delete(WhatsAppContact).where(col(WhatsAppContact.sender_id) == sender_id))
        session.flush()
        if reporter is not None:
            session.delete(reporter)

        result = ErasureResult(
            reporter_found=reporter is not None,
            cases_anonymised=len(cases),
            attachments_deleted=attachments_deleted,
        )
        record_audit(
            session=session,
            actor=ACTOR_CITIZEN,
            action="reporter.erased",
            subject_type="reporter",
            subject_id="-",
            detail={
                "reporter_found": result.reporter_found,
                "cases_anonymised": result.cases_anonymised,
                "attachments_deleted": result.attachments_deleted,
            },
        )
    return result


def set_reporter_unreachable(*, session: Session, sender_id: str, unreachable: bool = True) -> bool:
    """Mark a reporter unreachable (they blocked the bot) or reachable again; False if unknown."""
    with _atomic(session):
        reporter = _find_reporter(session, sender_id)
        if reporter is None:
            return False
        reporter.unreachable = unreachable
        session.add(reporter)
    return True


def counts_by_category_and_channel(*, session: Session) -> dict[tuple[str, str], int]:
    """Cases ever filed per (category, channel) (for monitoring; erasure keeps the case rows)."""
    statement = select(col(Case.category), col(Case.channel), func.count()).group_by(
        col(Case.category), col(Case.channel))
    return {(category, channel): int(count) for category, channel, count in session.execute(statement).all()}
