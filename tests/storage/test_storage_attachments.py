"""storage.attachments on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

import storage.attachments as attachments_module
from storage.attachments import (
    add_pending_attachment,
    discard_pending_attachments,
    get_attachment_data,
    get_attachments,
    purge_stale_pending_attachments,
)
from storage.cases import (
    create_case,
)
from storage.errors import AttachmentTooLarge
from storage.models import (
    Attachment,
    AttachmentData,
)
from tests.cases import ALICE, BOB, PHOTO, case_input, count

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
