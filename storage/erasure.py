"""Erasing a citizen on request (or after the retention period): their words and photos go,
the case rows stay, anonymised, for statistics."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from storage.attachments import delete_attachments
from storage.audit import record_audit
from storage.cases import add_case_event
from storage.db import atomic
from storage.models import (
    ACTOR_CITIZEN,
    EVENT_CITIZEN_INFO,
    EVENT_ERASED,
    EVENT_NOTE_PUBLIC,
    Attachment,
    Case,
    CaseEvent,
    PendingMessage,
    SurveyResponse,
    utcnow,
)
from storage.reporters import find_reporter

ERASED_COORDINATE_DECIMALS = 3  # about 100 m

# Texts the citizen wrote or that were written to them (and may quote them): erased with them.
CITIZEN_TEXT_EVENT_KINDS = (EVENT_CITIZEN_INFO, EVENT_NOTE_PUBLIC, "chat_citizen", "chat_staff", "citizen_notified")


@dataclass(frozen=True)
class ErasureResult:
    reporter_found: bool
    cases_anonymised: int
    attachments_deleted: int


def _round_coordinate(value: float | None) -> float | None:
    return None if value is None else round(value, ERASED_COORDINATE_DECIMALS)


def erase_reporter(*, session: Session, sender_id: str) -> ErasureResult:
    """Erase a citizen: delete their reporter row and photos, strip their words from cases.

    Category, neighbourhood, times, status and priority stay for statistics; coordinates
    are rounded to about 100 m. The audit entry holds counts only, never the sender id.
    """
    with atomic(session):
        now = utcnow()
        reporter = find_reporter(session=session, sender_id=sender_id)
        cases: list[Case] = []
        if reporter is not None:
            cases = list(session.exec(select(Case).where(Case.reporter_id == reporter.id)).all())
        case_ids = [case.id for case in cases]

        attachments_deleted = delete_attachments(
            session=session, where=(Attachment.owner_sender_id == sender_id,)
        )
        if case_ids:
            attachments_deleted += delete_attachments(
                session=session, where=(col(Attachment.case_id).in_(case_ids),)
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
            add_case_event(session=session, case_id=case.id, kind=EVENT_ERASED, actor=ACTOR_CITIZEN, at=now)
        # messages kept while the engine was down hold the citizen's words too
        session.execute(delete(PendingMessage).where(col(PendingMessage.sender_id) == sender_id))
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
