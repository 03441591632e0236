"""Photos and files the citizens send: pending while a report is in progress, then a case's.

Metadata (``Attachment``) and bytes (``AttachmentData``) are separate rows so listing a case's
attachments never loads the files.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from storage.db import atomic
from storage.errors import AttachmentTooLarge, TooManyPendingAttachments
from storage.models import Attachment, AttachmentData, utcnow

MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024


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
    with atomic(session):
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


def link_pending_attachments(
    *, session: Session, sender_id: str, attachment_ids: Sequence[uuid.UUID], case_id: uuid.UUID
) -> int:
    """Give ``case_id`` those of ``attachment_ids`` that ``sender_id`` uploaded and that are still
    pending (any other id is ignored); joins the caller's transaction. Returns how many."""
    if not attachment_ids:
        return 0
    pending = session.exec(
        select(Attachment).where(
            col(Attachment.id).in_(list(dict.fromkeys(attachment_ids))),
            Attachment.owner_sender_id == sender_id,
            col(Attachment.case_id).is_(None),
        )
    ).all()
    for attachment in pending:
        attachment.case_id = case_id
        attachment.owner_sender_id = None
        session.add(attachment)
    return len(pending)


def discard_pending_attachments(*, session: Session, sender_id: str) -> int:
    """Delete the sender's attachments not yet linked to a case; return how many."""
    with atomic(session):
        count = delete_attachments(
            session=session,
            where=(Attachment.owner_sender_id == sender_id, col(Attachment.case_id).is_(None)),
        )
    return count


def purge_stale_pending_attachments(*, session: Session, older_than: timedelta) -> int:
    """Delete pending attachments uploaded more than ``older_than`` ago (abandoned reports)."""
    with atomic(session):
        count = delete_attachments(
            session=session,
            where=(
                col(Attachment.case_id).is_(None),
                col(Attachment.created_at) < utcnow() - older_than,
            ),
        )
    return count


def delete_attachments(*, session: Session, where: Sequence[Any]) -> int:
    """Delete the attachments matching all of ``where`` with their bytes; joins the caller's
    transaction. Returns how many."""
    ids = list(session.exec(select(Attachment.id).where(*where)).all())
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
