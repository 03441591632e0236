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

from storage.models import OutboxMessage, Reporter, WhatsAppContact, utcnow
from storage.outbox import ERROR_MAX, FAILED, PENDING, SENT, UNREACHABLE


@dataclass(frozen=True)
class Contact:
    phone: str
    last_inbound_at: datetime | None
    locale: str | None  # the reporter's language, else the one last recognised in their messages


def _commit(session: Session) -> None:
    try:
        session.commit()
    except Exception:
        session.rollback()
        raise


def record_inbound(*, session: Session, sender_id: str, phone: str, at: datetime,
                   locale: str | None = None) -> None:
    """The citizen wrote (at ``at``): keep their number and open their 24-hour window."""
    try:
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
    except Exception:
        session.rollback()
        raise
    _commit(session)


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
    session.execute(update(WhatsAppContact).where(col(WhatsAppContact.sender_id) == sender_id)
                    .values(last_inbound_at=None))
    _commit(session)


def record_status(*, session: Session, message_id: str, status: str, at: datetime,
                  error: str = "", retry: bool = False, unreachable: bool = False) -> bool:
    """A status notification of a message the outbox sent (found by its platform id).

    ``delivered``/``read`` stamp the row; ``failed`` makes it failed, or ``unreachable`` (with
    every row still waiting for that citizen, and the reporter), or, with ``retry``, pending
    again at once (WhatsApp refused a free-form message outside the window after taking it:
    the worker sends it again, as a template). False when no outbox row has that id (a live
    reply, not an outbox message)."""
    message = session.execute(
        select(OutboxMessage).where(col(OutboxMessage.platform_message_id) == message_id)
    ).scalar_one_or_none()
    if message is None:
        session.rollback()
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
            session.execute(update(Reporter).where(col(Reporter.id) == message.reporter_id).values(unreachable=True))
        else:
            message.status = FAILED
    session.add(message)
    _commit(session)
    return True


def purge_idle_contacts(*, session: Session, before: datetime) -> int:
    """Delete the numbers of citizens who have not written since ``before`` and are no reporter
    (nothing to send them: reporters are erased with their data by the retention sweeps)."""
    reporters = select(col(Reporter.sender_id))
    result = session.execute(delete(WhatsAppContact).where(
        or_(col(WhatsAppContact.last_inbound_at).is_(None), col(WhatsAppContact.last_inbound_at) < before),
        col(WhatsAppContact.created_at) < before,
        col(WhatsAppContact.sender_id).not_in(reporters),
    ))
    _commit(session)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
