"""storage.cases on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import String, func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel, col, select

import storage.attachments as attachments_module
import storage.cases as cases_module
import storage.erasure as erasure_module
from storage.attachments import (
    add_pending_attachment,
    discard_pending_attachments,
    get_attachment_data,
    get_attachments,
    purge_stale_pending_attachments,
)
from storage.audit import record_audit
from storage.cases import (
    add_citizen_info,
    create_case,
    get_case_by_ref,
    get_case_events,
    get_case_for_sender,
    list_cases_for_sender,
    request_handoff,
)
from storage.db import session_scope
from storage.desk import CaseChange, IllegalTransition, update_case
from storage.erasure import ErasureResult, erase_reporter
from storage.errors import AttachmentTooLarge, CaseRefExhausted
from storage.models import (
    Attachment,
    AttachmentData,
    AuditLog,
    Case,
    CaseCreate,
    CaseEvent,
    Reporter,
)
from storage.refs import REF_PATTERN
from storage.reporters import get_or_create_reporter
from tests.threads import at_once

ALICE = "telegram:1001"
BOB = "web:b0b0b0b0"

PHOTO = b"\xff\xd8\xff\xe0 not really a jpeg \x00\x01\x02"


def case_input(sender_id: str = ALICE, **overrides: Any) -> CaseCreate:
    values: dict[str, Any] = {
        "sender_id": sender_id,
        "channel": "telegram" if sender_id.startswith("telegram:") else "web",
        "locale": "ca",
        "category": "vandalism",
        "description": "Han trencat la marquesina de l'autobús",
        "address": "Carrer de Mallorca 401, Barcelona",
        "latitude": 41.403629,
        "longitude": 2.174356,
        "neighbourhood_code": "02-06",
        "neighbourhood_name": "la Sagrada Família",
        "district_name": "Eixample",
        "occurred_at": datetime(2026, 3, 14, 22, 30, tzinfo=timezone(timedelta(hours=1))),
        "occurred_text": "ahir a la nit",
    }
    values.update(overrides)
    return CaseCreate(**values)


def count(session: Session, model: type[SQLModel]) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def counts(session: Session) -> dict[str, int]:
    return {
        model.__name__: count(session, model)
        for model in (Reporter, Case, CaseEvent, Attachment, AttachmentData, AuditLog)
    }


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


# --------------------------------------------------------------------------- attachments


def test_add_pending_attachment(session: Session, new_session: Callable[[], Session]) -> None:
    attachment = add_pending_attachment(
        session=session, sender_id=ALICE, data=PHOTO, mime_type="image/jpeg"
    )
    assert attachment.sha256 == hashlib.sha256(PHOTO).hexdigest()
    assert len(attachment.sha256) == 64
    assert attachment.size == len(PHOTO) == 26
    assert attachment.mime_type == "image/jpeg"
    assert attachment.owner_sender_id == ALICE
    assert attachment.case_id is None

    other = new_session()
    stored = other.get(Attachment, attachment.id)
    assert stored is not None
    assert stored.sha256 == hashlib.sha256(PHOTO).hexdigest()
    assert stored.created_at.tzinfo is UTC
    assert get_attachment_data(session=other, attachment_id=attachment.id) == PHOTO
    assert get_attachment_data(session=other, attachment_id=uuid.uuid4()) is None


def test_add_pending_attachment_limits(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="empty"):
        add_pending_attachment(session=session, sender_id=ALICE, data=b"", mime_type="image/jpeg")
    monkeypatch.setattr(attachments_module, "MAX_ATTACHMENT_BYTES", 10)
    with pytest.raises(AttachmentTooLarge):
        add_pending_attachment(
            session=session, sender_id=ALICE, data=b"x" * 11, mime_type="image/jpeg"
        )
    assert count(session, Attachment) == 0


def test_binary_data_round_trips_exactly(
    session: Session, new_session: Callable[[], Session]
) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB with every byte value
    attachment = add_pending_attachment(
        session=session, sender_id=ALICE, data=data, mime_type="application/octet-stream"
    )
    assert get_attachment_data(session=new_session(), attachment_id=attachment.id) == data
    assert attachment.size == 1024 * 1024


def test_discard_pending_attachments(session: Session, new_session: Callable[[], Session]) -> None:
    linked = add_pending_attachment(
        session=session, sender_id=ALICE, data=b"a", mime_type="image/jpeg"
    )
    create_case(session=session, case_in=case_input(attachment_ids=[linked.id]))
    pending = [
        add_pending_attachment(session=session, sender_id=ALICE, data=b"b", mime_type="image/jpeg"),
        add_pending_attachment(session=session, sender_id=ALICE, data=b"c", mime_type="image/jpeg"),
    ]
    bobs = add_pending_attachment(session=session, sender_id=BOB, data=b"d", mime_type="image/jpeg")

    assert discard_pending_attachments(session=session, sender_id=ALICE) == 2
    assert discard_pending_attachments(session=session, sender_id=ALICE) == 0

    other = new_session()
    remaining = {a.id for a in other.exec(select(Attachment)).all()}
    assert remaining == {linked.id, bobs.id}
    data_rows = {d.attachment_id for d in other.exec(select(AttachmentData)).all()}
    assert data_rows == {linked.id, bobs.id}
    assert all(other.get(Attachment, a.id) is None for a in pending)


def test_purge_stale_pending_attachments(
    session: Session, new_session: Callable[[], Session]
) -> None:
    old = add_pending_attachment(
        session=session, sender_id=ALICE, data=b"old", mime_type="image/png"
    )
    old.created_at = datetime.now(UTC) - timedelta(days=3)
    session.add(old)
    session.commit()
    fresh = add_pending_attachment(
        session=session, sender_id=ALICE, data=b"new", mime_type="image/png"
    )
    assert purge_stale_pending_attachments(session=session, older_than=timedelta(days=1)) == 1
    assert {a.id for a in new_session().exec(select(Attachment)).all()} == {fresh.id}


def test_get_attachments_only_for_that_case(session: Session) -> None:
    a1 = add_pending_attachment(session=session, sender_id=ALICE, data=b"1", mime_type="image/jpeg")
    a2 = add_pending_attachment(session=session, sender_id=ALICE, data=b"2", mime_type="image/jpeg")
    case1 = create_case(session=session, case_in=case_input(attachment_ids=[a1.id]))
    case2 = create_case(session=session, case_in=case_input(attachment_ids=[a2.id]))
    assert [a.id for a in get_attachments(session=session, case_id=case1.id)] == [a1.id]
    assert [a.id for a in get_attachments(session=session, case_id=case2.id)] == [a2.id]
    assert get_attachments(session=session, case_id=uuid.uuid4()) == []


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
