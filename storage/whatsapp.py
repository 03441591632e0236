"""WhatsApp's share of the storage: the pseudonym -> phone number table, the citizen's 24-hour
window, and the status notifications of the messages the outbox sent.

The phone number lives only in ``whatsapp_contacts`` (erased with the reporter by
``storage.erasure.erase_reporter``, so by ``forget_me`` and retention); everything else knows
the citizen by their pseudonymous sender id. Every function commits its own work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlmodel import Session, col

from storage.db import atomic
from storage.models import OutboxMessage, Reporter, WhatsAppContact, utcnow
from storage.outbox import ERROR_MAX, FAILED, PENDING, SENT, UNREACHABLE
from storage.reporters import set_reporter_unreachable


@dataclass(frozen=True)
class Contact:
    phone: str
    last_inbound_at: datetime | None
    locale: str | None  # the reporter's language, else the one last recognised in their messages


def record_inbound(*, session: Session, sender_id: str, phone: str, at: datetime,
                   locale: str | None = None) -> None:
    """The citizen wrote (at ``at``): keep their number and open their 24-hour window."""
    with atomic(session):
        contact = session.get(WhatsAppContact, sender_id)
        if contact is None:
            contact = WhatsAppContact(sender_id=sender_id, phone=phone, created_at=utcnow())
        contact.phone = phone
        if contact.last_inbound_at is None or at > contact.last_inbound_at:
            contact.last_inbound_at = at
        if locale:
            contact.locale = locale
        session.add(contact)
        # a citizen who writes again can be written to again
        session.execute(update(Reporter).where(col(Reporter.sender_id) == sender_id,
                                               col(Reporter.unreachable).is_(True)).values(unreachable=False))


def record_message(*, session: Session, sender_id: str, phone: str, at: datetime,
                   locale: str | None = None) -> str | None:
    """``record_inbound``, then the citizen's language as far as known (their reporter's, else
    the one last recognised in their messages)."""
    record_inbound(session=session, sender_id=sender_id, phone=phone, at=at, locale=locale)
    contact = contact_for(session=session, sender_id=sender_id)
    return contact.locale if contact else None


def contact_for(*, session: Session, sender_id: str) -> Contact | None:
    """The citizen's number, window and language; None once erased (or never seen)."""
    row = session.execute(
        select(WhatsAppContact, col(Reporter.locale))
        .outerjoin(Reporter, col(Reporter.sender_id) == col(WhatsAppContact.sender_id))
        .where(col(WhatsAppContact.sender_id) == sender_id)
    ).first()
    if row is None:
        return None
    contact, reporter_locale = row
    return Contact(phone=contact.phone, last_inbound_at=contact.last_inbound_at,
                   locale=reporter_locale or contact.locale)


def close_window(*, session: Session, sender_id: str) -> None:
    """WhatsApp said the window is closed (error 131047): templates only until they write."""
    with atomic(session):
        session.execute(update(WhatsAppContact).where(col(WhatsAppContact.sender_id) == sender_id)
                        .values(last_inbound_at=None))


def record_status(*, session: Session, message_id: str, status: str, at: datetime,
                  error: str = "", retry: bool = False, unreachable: bool = False) -> bool:
    """A status notification of a message the outbox sent (found by its platform id).

    ``delivered``/``read`` stamp the row; ``failed`` makes it failed, or ``unreachable`` (with
    every row still waiting for that citizen, and the reporter), or, with ``retry``, pending
    again at once (WhatsApp refused a free-form message outside the window after taking it:
    the worker sends it again, as a template). False when no outbox row has that id (a live
    reply, not an outbox message)."""
    with atomic(session):
        message = session.execute(
            select(OutboxMessage).where(col(OutboxMessage.platform_message_id) == message_id)
        ).scalar_one_or_none()
        if message is None:
            return False
        if status == "delivered" and message.delivered_at is None:
            message.delivered_at = at
        elif status == "read":
            message.delivered_at = message.delivered_at or at
            message.read_at = message.read_at or at
        elif status == "failed" and message.status == SENT:
            message.last_error = error[:ERROR_MAX]
            if retry:
                message.status, message.not_before, message.platform_message_id = PENDING, utcnow(), None
            elif unreachable:
                session.execute(update(OutboxMessage).where(
                    col(OutboxMessage.reporter_id) == message.reporter_id,
                    or_(col(OutboxMessage.id) == message.id, col(OutboxMessage.status) == PENDING),
                ).values(status=UNREACHABLE, lease_owner=None, lease_until=None, last_error=error[:ERROR_MAX]))
                session.execute(update(Reporter).where(col(Reporter.id) == message.reporter_id)
                                .values(unreachable=True))
            else:
                message.status = FAILED
        session.add(message)
    return True


def record_delivery(*, session: Session, message_id: str, status: str, at: datetime, error: str = "",
                    retry: bool = False, unreachable: bool = False, sender_id: str | None = None) -> None:
    """A status notification, with what it says of the citizen: a window WhatsApp closed
    (``retry``) closes theirs; an undeliverable message that no outbox row sent (a live reply)
    marks their reporter unreachable."""
    with atomic(session):
        if retry and sender_id:
            close_window(session=session, sender_id=sender_id)
        found = record_status(session=session, message_id=message_id, status=status, at=at, error=error,
                              retry=retry, unreachable=unreachable)
        if not found and unreachable and sender_id:
            set_reporter_unreachable(session=session, sender_id=sender_id)


def purge_idle_contacts(*, session: Session, before: datetime) -> int:
    """Delete the numbers of citizens who have not written since ``before`` and are no reporter
    (nothing to send them: reporters are erased with their data by the retention sweeps)."""
    reporters = select(col(Reporter.sender_id))
    with atomic(session):
        result = session.execute(delete(WhatsAppContact).where(
            or_(col(WhatsAppContact.last_inbound_at).is_(None), col(WhatsAppContact.last_inbound_at) < before),
            col(WhatsAppContact.created_at) < before,
            col(WhatsAppContact.sender_id).not_in(reporters),
        ))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
