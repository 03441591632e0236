"""storage.cases (creating and reading cases, their history) and storage.audit on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import Session, col, select

import storage.cases as cases_module
from storage.attachments import (
    add_pending_attachment,
    get_attachments,
)
from storage.audit import record_audit
from storage.cases import (
    create_case,
    get_case_by_ref,
    get_case_events,
    get_case_for_sender,
    list_cases_for_sender,
    request_handoff,
)
from storage.db import session_scope
from storage.desk import CaseChange, IllegalTransition, update_case
from storage.errors import CaseRefExhausted
from storage.models import (
    Attachment,
    AuditLog,
    Case,
    Reporter,
)
from storage.refs import REF_PATTERN
from tests.cases import ALICE, BOB, PHOTO, case_input, count, counts

# --------------------------------------------------------------------------- create_case


def test_create_case_stores_everything(
    session: Session, new_session: Callable[[], Session]
) -> None:
    case = create_case(session=session, case_in=case_input())

    assert REF_PATTERN.fullmatch(case.ref)
    assert case.status == "new"
    assert case.priority == "normal"
    assert case.contact_mode == "anonymous"

    other = new_session()
    stored = other.get(Case, case.id)
    assert stored is not None
    reporter = other.get(Reporter, stored.reporter_id)
    assert reporter is not None
    assert reporter.sender_id == ALICE
    assert reporter.contact_name is None
    assert stored.ref == case.ref
    assert stored.channel == "telegram"
    assert stored.locale == "ca"
    assert stored.category == "vandalism"
    assert stored.description == "Han trencat la marquesina de l'autobús"
    assert stored.address == "Carrer de Mallorca 401, Barcelona"
    assert stored.latitude == pytest.approx(41.403629)
    assert stored.longitude == pytest.approx(2.174356)
    assert stored.neighbourhood_code == "02-06"
    assert stored.neighbourhood_name == "la Sagrada Família"
    assert stored.district_name == "Eixample"
    assert stored.occurred_at == datetime(2026, 3, 14, 21, 30, tzinfo=UTC)
    assert stored.occurred_text == "ahir a la nit"
    assert stored.handoff_requested_at is None
    assert stored.acknowledged_at is None
    assert stored.erased_at is None

    events = get_case_events(session=other, case_id=case.id)
    assert [(e.kind, e.actor, e.from_status, e.to_status, e.text) for e in events] == [
        ("created", "citizen", None, "new", None)
    ]
    audit = other.exec(select(AuditLog)).all()
    assert len(audit) == 1
    assert audit[0].actor == "citizen"
    assert audit[0].action == "case.created"
    assert audit[0].subject_type == "case"
    assert audit[0].subject_id == str(case.id)
    assert json.loads(audit[0].detail or "") == {
        "ref": case.ref,
        "channel": "telegram",
        "category": "vandalism",
        "contact_mode": "anonymous",
        "priority": "normal",
        "attachments": 0,
    }
    assert counts(other) == {
        "Reporter": 1,
        "Case": 1,
        "CaseEvent": 1,
        "Attachment": 0,
        "AttachmentData": 0,
        "AuditLog": 1,
    }


def test_timestamps_are_aware_utc_after_round_trip(
    session: Session, new_session: Callable[[], Session]
) -> None:
    madrid_summer = timezone(timedelta(hours=2))
    occurred = datetime(2026, 7, 1, 23, 15, 30, 123456, tzinfo=madrid_summer)
    before = datetime.now(UTC)
    case = create_case(session=session, case_in=case_input(occurred_at=occurred))
    request_handoff(session=session, case=case)
    after = datetime.now(UTC)

    other = new_session()
    stored = other.get(Case, case.id)
    assert stored is not None
    assert stored.occurred_at == occurred
    assert stored.occurred_at is not None
    assert stored.occurred_at.tzinfo is UTC
    assert stored.occurred_at.hour == 21
    assert stored.occurred_at.microsecond == 123456
    for value in (stored.created_at, stored.updated_at, stored.handoff_requested_at):
        assert value is not None
        assert value.tzinfo is UTC
        assert before <= value <= after
    reporter = other.get(Reporter, stored.reporter_id)
    assert reporter is not None
    assert reporter.created_at.tzinfo is UTC
    for event in get_case_events(session=other, case_id=case.id):
        assert event.at.tzinfo is UTC
    for entry in other.exec(select(AuditLog)).all():
        assert entry.at.tzinfo is UTC


def test_naive_datetimes_are_refused(session: Session) -> None:
    with pytest.raises(ValidationError, match="timezone"):
        case_input(occurred_at=datetime(2026, 1, 1, 12, 0))  # noqa: DTZ001
    session.add(
        AuditLog(
            at=datetime(2026, 1, 1, 12, 0),  # noqa: DTZ001
            actor="system",
            action="x",
            subject_type="t",
            subject_id="1",
        )
    )
    with pytest.raises(StatementError, match="naive datetime"):
        session.commit()
    session.rollback()


@pytest.mark.parametrize(
    "bad",
    [
        {"category": "murder_mystery"},
        {"channel": "fax"},
        {"locale": "fr"},
        {"contact_mode": "shout"},
        {"priority": "whenever"},
        {"latitude": 91.0},
        {"longitude": -181.0},
        {"description": "x" * 4001},
        {"sender_id": ""},
    ],
)
def test_case_create_validation(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        case_input(**bad)


def test_contact_details_only_stored_in_contact_mode(
    session: Session, new_session: Callable[[], Session]
) -> None:
    details = {
        "contact_name": "Maria Puig",
        "contact_phone": "+34 600 111 222",
        "contact_email": "maria@example.org",
    }
    chat_case = create_case(session=session, case_in=case_input(contact_mode="chat", **details))
    reporter = new_session().get(Reporter, chat_case.reporter_id)
    assert reporter is not None
    assert (reporter.contact_name, reporter.contact_phone, reporter.contact_email) == (
        None,
        None,
        None,
    )

    contact_case = create_case(
        session=session, case_in=case_input(contact_mode="contact", **details)
    )
    assert contact_case.reporter_id == chat_case.reporter_id
    reporter = new_session().get(Reporter, contact_case.reporter_id)
    assert reporter is not None
    assert (reporter.contact_name, reporter.contact_phone, reporter.contact_email) == (
        "Maria Puig",
        "+34 600 111 222",
        "maria@example.org",
    )
    stored = new_session().get(Case, contact_case.id)
    assert stored is not None
    assert stored.contact_mode == "contact"


def test_refs_are_unique(session: Session) -> None:
    refs = [create_case(session=session, case_in=case_input()).ref for _ in range(25)]
    assert len(set(refs)) == 25
    assert all(REF_PATTERN.fullmatch(ref) for ref in refs)


def test_ref_collision_is_retried(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    first = create_case(session=session, case_in=case_input())
    draws = iter([first.ref, first.ref, "ZZZ-ZZZ"])
    monkeypatch.setattr(cases_module, "new_case_ref", lambda: next(draws))
    second = create_case(session=session, case_in=case_input(BOB))
    assert second.ref == "ZZZ-ZZZ"


def test_ref_exhaustion_raises_and_stores_nothing(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = create_case(session=session, case_in=case_input())
    before = counts(session)
    monkeypatch.setattr(cases_module, "new_case_ref", lambda: first.ref)
    with pytest.raises(CaseRefExhausted):
        create_case(session=session, case_in=case_input(BOB))
    assert counts(session) == before


def test_attachments_linked_only_for_same_sender(
    session: Session, new_session: Callable[[], Session]
) -> None:
    mine = add_pending_attachment(
        session=session, sender_id=ALICE, data=PHOTO, mime_type="image/jpeg"
    )
    mine2 = add_pending_attachment(
        session=session, sender_id=ALICE, data=b"second", mime_type="image/png"
    )
    not_mine = add_pending_attachment(
        session=session, sender_id=BOB, data=b"bob's photo", mime_type="image/jpeg"
    )
    unknown = uuid.uuid4()

    case = create_case(
        session=session,
        case_in=case_input(attachment_ids=[mine.id, not_mine.id, unknown, mine2.id, mine.id]),
    )

    other = new_session()
    linked = get_attachments(session=other, case_id=case.id)
    assert [a.id for a in linked] == [mine.id, mine2.id]
    assert all(a.owner_sender_id is None for a in linked)
    bob_photo = other.get(Attachment, not_mine.id)
    assert bob_photo is not None
    assert bob_photo.case_id is None
    assert bob_photo.owner_sender_id == BOB
    audit = other.exec(select(AuditLog)).one()
    assert json.loads(audit.detail or "")["attachments"] == 2

    # An attachment already linked to a case cannot be linked again.
    second = create_case(session=session, case_in=case_input(attachment_ids=[mine.id]))
    assert get_attachments(session=new_session(), case_id=second.id) == []


def test_integrity_error_mid_way_leaves_nothing(
    session: Session, new_session: Callable[[], Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = create_case(session=session, case_in=case_input())
    photo = add_pending_attachment(
        session=session, sender_id=BOB, data=PHOTO, mime_type="image/jpeg"
    )
    before = counts(new_session())

    # Force a duplicate ref past the pre-check: the INSERT of the case itself fails.
    monkeypatch.setattr(cases_module, "new_case_ref", lambda: existing.ref)
    monkeypatch.setattr(cases_module, "_ref_is_free", lambda session, ref: True)
    with pytest.raises(IntegrityError):
        create_case(
            session=session,
            case_in=case_input(
                BOB, contact_mode="contact", contact_name="Bob", attachment_ids=[photo.id]
            ),
        )

    other = new_session()
    assert counts(other) == before
    assert other.exec(select(Reporter).where(Reporter.sender_id == BOB)).first() is None
    pending = other.get(Attachment, photo.id)
    assert pending is not None
    assert (pending.case_id, pending.owner_sender_id) == (None, BOB)

    # The session is usable again after the failure.
    monkeypatch.undo()
    retried = create_case(session=session, case_in=case_input(BOB, attachment_ids=[photo.id]))
    assert [a.id for a in get_attachments(session=new_session(), case_id=retried.id)] == [photo.id]


def test_failure_at_the_last_step_leaves_nothing(
    session: Session, new_session: Callable[[], Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = add_pending_attachment(
        session=session, sender_id=ALICE, data=PHOTO, mime_type="image/jpeg"
    )
    before = counts(new_session())

    def broken_audit(**kwargs: Any) -> AuditLog:
        raise RuntimeError("audit store down")

    monkeypatch.setattr(cases_module, "record_audit", broken_audit)
    with pytest.raises(RuntimeError, match="audit store down"):
        create_case(session=session, case_in=case_input(attachment_ids=[photo.id]))
    assert counts(new_session()) == before
    assert session.get(Attachment, photo.id) is not None
    assert new_session().get(Attachment, photo.id).owner_sender_id == ALICE  # type: ignore[union-attr]


# --------------------------------------------------------------------------- reading


def test_get_case_by_ref(session: Session) -> None:
    case = create_case(session=session, case_in=case_input())
    compact = case.ref.replace("-", "")
    for spelling in (case.ref, case.ref.lower(), compact, f" {compact[:3]} {compact[3:]} "):
        found = get_case_by_ref(session=session, ref=spelling)
        assert found is not None
        assert found.id == case.id
    assert get_case_by_ref(session=session, ref="not a ref") is None
    unused = "ZZZ-ZZZ" if case.ref != "ZZZ-ZZZ" else "YYY-YYY"
    assert get_case_by_ref(session=session, ref=unused) is None


def test_get_case_for_sender_refuses_other_senders(session: Session) -> None:
    case = create_case(session=session, case_in=case_input())
    create_case(session=session, case_in=case_input(BOB))
    found = get_case_for_sender(session=session, ref=case.ref.lower(), sender_id=ALICE)
    assert found is not None
    assert found.id == case.id
    assert get_case_for_sender(session=session, ref=case.ref, sender_id=BOB) is None
    assert get_case_for_sender(session=session, ref=case.ref, sender_id="web:nobody") is None
    assert get_case_for_sender(session=session, ref="???", sender_id=ALICE) is None


def test_list_cases_for_sender_newest_first(session: Session) -> None:
    made = [create_case(session=session, case_in=case_input()) for _ in range(7)]
    bobs = create_case(session=session, case_in=case_input(BOB))
    newest_first = [c.id for c in reversed(made)]

    listed = list_cases_for_sender(session=session, sender_id=ALICE)
    assert [c.id for c in listed] == newest_first[:5]
    assert [c.id for c in list_cases_for_sender(session=session, sender_id=ALICE, limit=10)] == (
        newest_first
    )
    assert [c.id for c in list_cases_for_sender(session=session, sender_id=BOB)] == [bobs.id]
    assert list_cases_for_sender(session=session, sender_id="web:nobody") == []


# --------------------------------------------------------------------------- case history


def test_request_handoff(
    session: Session, new_session: Callable[[], Session], engine: Engine
) -> None:
    with session_scope(engine) as creating:
        case = create_case(session=creating, case_in=case_input())
    # ``case`` is now detached from its (closed) session, as in the bot's threads.

    updated = request_handoff(session=session, case=case)
    first_at = updated.handoff_requested_at
    assert first_at is not None
    assert first_at.tzinfo is UTC

    again = request_handoff(session=new_session(), case=case, actor="system")
    assert again.handoff_requested_at == first_at

    events = get_case_events(session=new_session(), case_id=case.id)
    assert [(e.kind, e.actor) for e in events] == [
        ("created", "citizen"),
        ("handoff_requested", "citizen"),
        ("handoff_requested", "system"),
    ]
    stored = new_session().get(Case, case.id)
    assert stored is not None
    assert stored.handoff_requested_at == first_at


def test_status_changes_stamp_the_case_and_its_history(session: Session, new_session: Callable[[], Session]) -> None:
    case = create_case(session=session, case_in=case_input())
    acknowledged = update_case(
        session=session, case=case, change=CaseChange(status="acknowledged"), actor="agent.ferrer"
    )
    assert acknowledged.status == "acknowledged"
    assert acknowledged.acknowledged_at is not None
    resolved = update_case(session=session, case=case, change=CaseChange(status="resolved"), actor="agent.ferrer")
    assert resolved.resolved_at is not None
    assert resolved.acknowledged_at == acknowledged.acknowledged_at
    update_case(session=session, case=case, change=CaseChange(public_note="Reparat"), actor="agent.ferrer")
    with pytest.raises(IllegalTransition, match="unknown status 'lost'"):
        update_case(session=session, case=case, change=CaseChange(status="lost"), actor="agent.ferrer")

    other = new_session()
    events = get_case_events(session=other, case_id=case.id)
    assert [(e.kind, e.actor, e.from_status, e.to_status, e.text) for e in events] == [
        ("created", "citizen", None, "new", None),
        ("status_changed", "agent.ferrer", "new", "acknowledged", None),
        ("status_changed", "agent.ferrer", "acknowledged", "resolved", None),
        ("note_public", "agent.ferrer", None, None, "Reparat"),
    ]
    actions = other.exec(select(AuditLog.action).order_by(col(AuditLog.at))).all()
    assert actions == ["case.created", "case.updated", "case.updated", "case.updated"]  # one per dispatcher change


def test_record_audit_joins_the_callers_transaction(
    session: Session, new_session: Callable[[], Session]
) -> None:
    entry = record_audit(
        session=session,
        actor="agent.ferrer",
        action="case.read_contact",
        subject_type="case",
        subject_id="abc",
        detail={"reason": "callback", "n": 1},
    )
    assert entry.detail == '{"n": 1, "reason": "callback"}'
    session.rollback()
    assert count(new_session(), AuditLog) == 0

    record_audit(
        session=session,
        actor="system",
        action="test.raw",
        subject_type="case",
        subject_id="abc",
        detail='{"ok": true}',
    )
    record_audit(
        session=session, actor="system", action="test.none", subject_type="case", subject_id="abc"
    )
    assert count(new_session(), AuditLog) == 0  # not committed by record_audit
    session.commit()
    rows = {r.action: r.detail for r in new_session().exec(select(AuditLog)).all()}
    assert rows == {"test.raw": '{"ok": true}', "test.none": None}

    with pytest.raises(json.JSONDecodeError):
        record_audit(
            session=session,
            actor="system",
            action="x",
            subject_type="case",
            subject_id="abc",
            detail="not json",
        )
