"""storage.erasure on a real database (SQLite and PostgreSQL): a citizen erased leaves no personal data."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any

import pytest
from sqlalchemy import String, func
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel, col, select

import storage.erasure as erasure_module
from storage.attachments import (
    add_pending_attachment,
    get_attachments,
)
from storage.cases import (
    add_citizen_info,
    create_case,
    get_case_events,
    get_case_for_sender,
    list_cases_for_sender,
)
from storage.desk import CaseChange, update_case
from storage.erasure import ErasureResult, erase_reporter
from storage.models import (
    Attachment,
    AttachmentData,
    AuditLog,
    Case,
    CaseEvent,
    Reporter,
)
from tests.cases import ALICE, BOB, PHOTO, case_input, count, counts

# --------------------------------------------------------------------------- erasure

SECRETS = (
    "Maria Puig",
    "+34 600 111 222",
    "maria@example.org",
    "marquesina trencada al costat de casa meva",
    "Carrer de Mallorca 401",
    "ahir a la nit",
    "el meu veí del tercer",
    "Gràcies Maria",
    ALICE,
)


def _text_columns() -> Iterator[tuple[Any, Any]]:
    for table in SQLModel.metadata.sorted_tables:
        for column in table.columns:
            # sqlmodel's AutoString is a TypeDecorator over String.
            type_ = column.type
            if isinstance(type_, TypeDecorator):
                type_ = type_.impl_instance
            if isinstance(type_, String):
                yield table, column


def find_secrets(session: Session) -> list[str]:
    """Every (table.column, secret) where a secret string appears anywhere in the database."""
    found = []
    for table, column in _text_columns():
        for secret in SECRETS:
            hits = session.execute(
                select(func.count()).select_from(table).where(column.contains(secret))
            ).scalar_one()
            if hits:
                found.append(f"{table.name}.{column.name}: {secret}")
    return found


def test_text_columns_are_all_checked() -> None:
    names = {f"{t.name}.{c.name}" for t, c in _text_columns()}
    assert {
        "reporters.sender_id",
        "reporters.contact_name",
        "reporters.contact_phone",
        "reporters.contact_email",
        "cases.description",
        "cases.address",
        "cases.occurred_text",
        "case_events.text",
        "attachments.owner_sender_id",
        "audit_log.subject_id",
        "audit_log.detail",
    } <= names


def _alice_reports_everything(session: Session) -> tuple[Case, Case]:
    photo = add_pending_attachment(
        session=session, sender_id=ALICE, data=PHOTO, mime_type="image/jpeg"
    )
    first = create_case(
        session=session,
        case_in=case_input(
            description="marquesina trencada al costat de casa meva",
            contact_mode="contact",
            contact_name="Maria Puig",
            contact_phone="+34 600 111 222",
            contact_email="maria@example.org",
            attachment_ids=[photo.id],
        ),
    )
    second = create_case(
        session=session,
        case_in=case_input(
            category="noise",
            description="Soroll cada nit: el meu veí del tercer",
            latitude=None,
            longitude=None,
            address=None,
            priority="high",
        ),
    )
    add_citizen_info(session=session, case=first, text="Ho ha tornat a fer el meu veí del tercer")
    update_case(session=session, case=first, change=CaseChange(status="acknowledged"), actor="agent.ferrer")
    session.add(
        CaseEvent(
            case_id=first.id,
            kind="note_public",
            actor="agent.ferrer",
            text="Gràcies Maria, hi enviem una patrulla",
        )
    )
    session.add(
        CaseEvent(
            case_id=first.id,
            kind="note_internal",
            actor="agent.ferrer",
            text="Patrulla 12 assignada",
        )
    )
    session.commit()
    # Alice leaves a photo pending for a third report.
    add_pending_attachment(session=session, sender_id=ALICE, data=b"pending", mime_type="image/png")
    return first, second


def test_erase_reporter_leaves_no_personal_data(
    session: Session, new_session: Callable[[], Session]
) -> None:
    first, second = _alice_reports_everything(session)
    bob_photo = add_pending_attachment(
        session=session, sender_id=BOB, data=b"bob", mime_type="image/jpeg"
    )
    bobs = create_case(
        session=session,
        case_in=case_input(
            BOB,
            description="Bob's own words",
            address="Plaça del Sol 1",
            occurred_text="aquest matí",
            attachment_ids=[bob_photo.id],
        ),
    )
    assert find_secrets(new_session()) != []  # the probe does see them before erasure

    result = erase_reporter(session=session, sender_id=ALICE)
    assert result == ErasureResult(reporter_found=True, cases_anonymised=2, attachments_deleted=2)

    other = new_session()
    assert find_secrets(other) == []
    assert other.exec(select(Reporter).where(Reporter.sender_id == ALICE)).first() is None
    attachment_ids = {a.id for a in other.exec(select(Attachment)).all()}
    assert attachment_ids == {bob_photo.id}
    assert {d.attachment_id for d in other.exec(select(AttachmentData)).all()} == {bob_photo.id}
    assert (
        other.exec(
            select(func.count())
            .select_from(AttachmentData)
            .where(col(AttachmentData.data) == PHOTO)
        ).one()
        == 0
    )

    stored_first = other.get(Case, first.id)
    assert stored_first is not None
    assert stored_first.reporter_id is None
    assert stored_first.description is None
    assert stored_first.address is None
    assert stored_first.occurred_text is None
    assert stored_first.latitude == 41.404
    assert stored_first.longitude == 2.174
    assert stored_first.erased_at is not None
    assert stored_first.erased_at.tzinfo is UTC
    # What statistics need is kept.
    assert stored_first.ref == first.ref
    assert stored_first.category == "vandalism"
    assert stored_first.neighbourhood_code == "02-06"
    assert stored_first.neighbourhood_name == "la Sagrada Família"
    assert stored_first.district_name == "Eixample"
    assert stored_first.occurred_at == first.occurred_at
    assert stored_first.created_at == first.created_at
    assert stored_first.status == "acknowledged"
    assert stored_first.acknowledged_at is not None
    assert stored_first.priority == "normal"
    assert stored_first.contact_mode == "contact"

    stored_second = other.get(Case, second.id)
    assert stored_second is not None
    assert (stored_second.latitude, stored_second.longitude) == (None, None)
    assert stored_second.category == "noise"
    assert stored_second.priority == "high"
    assert stored_second.description is None

    events = get_case_events(session=other, case_id=first.id)
    assert [(e.kind, e.actor, e.text) for e in events] == [
        ("created", "citizen", None),
        ("citizen_info", "citizen", None),
        ("status_changed", "agent.ferrer", None),
        ("note_public", "agent.ferrer", None),
        ("note_internal", "agent.ferrer", "Patrulla 12 assignada"),
        ("erased", "citizen", None),
    ]
    assert [e.kind for e in get_case_events(session=other, case_id=second.id)] == [
        "created",
        "erased",
    ]

    erased_audit = other.exec(select(AuditLog).where(AuditLog.action == "reporter.erased")).one()
    assert erased_audit.actor == "citizen"
    assert erased_audit.subject_type == "reporter"
    assert erased_audit.subject_id == "-"
    assert json.loads(erased_audit.detail or "") == {
        "reporter_found": True,
        "cases_anonymised": 2,
        "attachments_deleted": 2,
    }

    # The citizen can no longer reach the cases through their sender id.
    assert get_case_for_sender(session=other, ref=first.ref, sender_id=ALICE) is None
    assert list_cases_for_sender(session=other, sender_id=ALICE) == []

    # Bob is untouched.
    stored_bob = other.get(Case, bobs.id)
    assert stored_bob is not None
    assert stored_bob.description == "Bob's own words"
    assert stored_bob.reporter_id is not None
    assert [a.id for a in get_attachments(session=other, case_id=bobs.id)] == [bob_photo.id]


def test_erase_unknown_reporter(session: Session, new_session: Callable[[], Session]) -> None:
    create_case(session=session, case_in=case_input(BOB))
    before = counts(new_session())
    assert erase_reporter(session=session, sender_id=ALICE) == ErasureResult(
        reporter_found=False, cases_anonymised=0, attachments_deleted=0
    )
    after = counts(new_session())
    assert after == {**before, "AuditLog": before["AuditLog"] + 1}


def test_erase_reporter_with_only_pending_photos(session: Session) -> None:
    add_pending_attachment(session=session, sender_id=ALICE, data=b"p", mime_type="image/png")
    assert erase_reporter(session=session, sender_id=ALICE) == ErasureResult(
        reporter_found=False, cases_anonymised=0, attachments_deleted=1
    )
    assert count(session, Attachment) == 0
    assert count(session, AttachmentData) == 0


def test_erasure_failure_leaves_everything(
    session: Session, new_session: Callable[[], Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    _alice_reports_everything(session)
    before = counts(new_session())
    secrets_before = find_secrets(new_session())

    def broken_audit(**kwargs: Any) -> AuditLog:
        raise RuntimeError("disk full")

    monkeypatch.setattr(erasure_module, "record_audit", broken_audit)
    with pytest.raises(RuntimeError, match="disk full"):
        erase_reporter(session=session, sender_id=ALICE)
    assert counts(new_session()) == before
    assert find_secrets(new_session()) == secrets_before


def test_reporter_can_report_again_after_erasure(session: Session) -> None:
    create_case(session=session, case_in=case_input())
    erase_reporter(session=session, sender_id=ALICE)
    again = create_case(session=session, case_in=case_input())
    assert [c.id for c in list_cases_for_sender(session=session, sender_id=ALICE)] == [again.id]
    assert count(session, Reporter) == 1
    assert count(session, Case) == 2
    erased = session.exec(select(Case).where(col(Case.erased_at).is_not(None))).one()
    assert erased.id != again.id


def test_erasure_removes_messages_kept_while_the_engine_was_down(session: Session) -> None:
    from storage.models import PendingMessage

    session.add(PendingMessage(sender_id=ALICE, channel="web", text="my name is Alice, 600 123 456"))
    session.add(PendingMessage(sender_id=BOB, channel="web", text="hello"))
    session.commit()
    erase_reporter(session=session, sender_id=ALICE)
    left = session.exec(select(PendingMessage)).all()
    assert [message.sender_id for message in left] == [BOB]
