"""Dashboard sign-ins, kept in the database (table ``staff_sessions``).

The browser holds a random 256-bit token in an HttpOnly cookie; the database holds only its
SHA-256 digest, so a copy of the database cannot be used to sign in. A session ends on logout,
after ``IDLE_LIMIT`` without a request, after ``MAX_AGE`` in any case, or as soon as its user
is deactivated (the user's row is read on every request, so a role change applies at once).
Keeping sessions in the database lets them survive a restart of the bot service and lets
several processes share them.

The CSRF token of a session is not stored: the dashboard derives it from the cookie value
under the deployment's SECRET_KEY (``bot.dashboard.base``), so it changes with every sign-in
and cannot be derived from the database alone.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlmodel import Session, col, select

from storage.audit import record_audit
from storage.db import atomic
from storage.models import StaffSession, StaffUser, utcnow

IDLE_LIMIT = timedelta(hours=8)
MAX_AGE = timedelta(hours=24)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most once a minute
TOKEN_BYTES = 32
TOKEN_MAX_LENGTH = 128  # longer cookie values are refused without being hashed


@dataclass(frozen=True)
class SignedIn:
    """The member of staff behind a request, and the session they use."""

    session_id: uuid.UUID
    user_id: uuid.UUID
    name: str
    role: str
    token: str  # the cookie value, from which the CSRF token is derived
    locale: str | None = None  # the language of their desk; None: the deployment's default


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _expired(row: StaffSession, now: datetime) -> bool:
    return now - row.last_seen_at > IDLE_LIMIT or now - row.created_at > MAX_AGE


def purge_expired(*, session: Session, now: datetime | None = None) -> int:
    """Delete the sessions that can no longer be used (no commit)."""
    now = now or utcnow()
    result = session.execute(
        delete(StaffSession).where(
            or_(col(StaffSession.last_seen_at) < now - IDLE_LIMIT, col(StaffSession.created_at) < now - MAX_AGE)
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def start_session(*, session: Session, user: StaffUser) -> str:
    """Open a session for a user who has just proved their password; return the cookie value."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with atomic(session):
        now = utcnow()
        purge_expired(session=session, now=now)
        session.add(StaffSession(token_hash=token_hash(token), user_id=user.id, created_at=now, last_seen_at=now))
        record_audit(session=session, actor=user.name, action="user.signed_in", subject_type="staff_user",
                     subject_id=str(user.id))
    return token


def sign_in(*, session: Session, user: StaffUser, previous_token: str | None) -> str:
    """``start_session``, ending first the session of ``previous_token`` if it is still open:
    a browser never keeps two sessions."""
    if previous_token:
        signed_in = resume_session(session=session, token=previous_token, touch=False)
        if signed_in is not None:
            end_session(session=session, signed_in=signed_in)
    return start_session(session=session, user=user)


def resume_session(*, session: Session, token: str | None, touch: bool = True) -> SignedIn | None:
    """The signed-in user of this cookie value, or ``None``; an expired session is deleted.

    ``touch`` records the activity (the idle limit counts from it); the live event stream
    does not touch, so an open tab alone does not keep a session alive.
    """
    if not token or len(token) > TOKEN_MAX_LENGTH:
        return None
    found = session.exec(
        select(StaffSession, StaffUser)
        .join(StaffUser, col(StaffUser.id) == col(StaffSession.user_id))
        .where(StaffSession.token_hash == token_hash(token))
    ).first()
    if found is None:
        return None
    row, user = found
    now = utcnow()
    if _expired(row, now) or not user.active:
        with atomic(session):
            session.delete(row)
        return None
    if touch and now - row.last_seen_at > TOUCH_EVERY:
        with atomic(session):
            row.last_seen_at = now
            session.add(row)
    return SignedIn(session_id=row.id, user_id=user.id, name=user.name, role=user.role, token=token,
                    locale=user.locale)


def end_session(*, session: Session, signed_in: SignedIn) -> None:
    """Logout: the cookie value stops working at once."""
    with atomic(session):
        session.execute(delete(StaffSession).where(col(StaffSession.id) == signed_in.session_id))
        record_audit(session=session, actor=signed_in.name, action="user.signed_out", subject_type="staff_user",
                     subject_id=str(signed_in.user_id))
