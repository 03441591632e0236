"""Staff users: who may use the API, with which role, and how they prove it.

A user authenticates with an API token (``Authorization: Bearer barri_...``) or, for the web
interface, with a password. Neither secret is stored: the token is a long random value, so its
SHA-256 digest is enough and lets ``user_for_token`` find the user with one indexed lookup; the
password is chosen by a person, so it is hashed with argon2id. A token is returned once, by
``create_user`` or ``rotate_token``, and cannot be recovered afterwards.

Like the other storage modules, every function takes keyword-only arguments and a function that writes
commits once, at its end. Audit entries never hold a token, a password or a hash.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.audit import record_audit
from storage.db import atomic
from storage.errors import UserExists, UserNotFound
from storage.models import ACTOR_SYSTEM, STAFF_NAME_MAX, STAFF_ROLES, StaffSession, StaffUser, utcnow

ROLES: tuple[str, ...] = STAFF_ROLES  # ("dispatcher", "community", "admin")
LOCALES = ("en", "es", "ca")  # the desk's languages (common.settings.SUPPORTED_LOCALES)

TOKEN_PREFIX = "barri_"
TOKEN_BYTES = 32
TOKEN_MAX_LENGTH = 256  # longer values are refused without being hashed
PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 1024  # bounds the work a single login attempt can cause

_NAME_PATTERN = re.compile(rf"[A-Za-z0-9._-]{{1,{STAFF_NAME_MAX}}}")

# argon2id with argon2-cffi's defaults (RFC 9106's low-memory profile). Raising the parameters
# later is safe: ``check_password`` rehashes old hashes on the next successful login.
_hasher = PasswordHasher(type=Type.ID)


# --------------------------------------------------------------------------- helpers


def _audit(
    *, session: Session, actor: str, action: str, user: StaffUser, detail: dict[str, object] | None = None
) -> None:
    """Record a change to a staff account: who, what, the account's name and ``detail``."""
    record_audit(session=session, actor=actor, action=action, subject_type="staff_user",
                 subject_id=str(user.id), detail={"name": user.name, **(detail or {})})


def _validate_name(name: str) -> None:
    if not isinstance(name, str) or _NAME_PATTERN.fullmatch(name) is None:
        raise ValueError(
            f"invalid user name {name!r}: use 1 to {STAFF_NAME_MAX} characters among "
            "ASCII letters, digits, '.', '_' and '-'"
        )


def _validate_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"invalid role {role!r}: use one of {', '.join(ROLES)}")


def _validate_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < PASSWORD_MIN_LENGTH:
        raise ValueError(f"the password must have at least {PASSWORD_MIN_LENGTH} characters")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise ValueError(f"the password must have at most {PASSWORD_MAX_LENGTH} characters")


def _validate_locale(locale: str | None) -> None:
    if locale is not None and locale not in LOCALES:
        raise ValueError(f"invalid language {locale!r}: use one of {', '.join(LOCALES)}")


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password, verified when there is no real hash to verify."""
    return _hasher.hash(secrets.token_urlsafe(TOKEN_BYTES))


def _find_user(session: Session, name: str) -> StaffUser | None:
    return session.exec(select(StaffUser).where(StaffUser.name == name)).first()


def _require_user(session: Session, name: str) -> StaffUser:
    user = _find_user(session, name)
    if user is None:
        raise UserNotFound(f"no staff user named {name!r}")
    return user


# --------------------------------------------------------------------------- management


def create_user(
    *, session: Session, name: str, role: str, locale: str | None = None, actor: str = ACTOR_SYSTEM
) -> tuple[StaffUser, str]:
    """Create an active user; return it with its API token, which is never shown again.
    ``locale`` is the language of their desk (``None``: the deployment's default).

    Raises ``ValueError`` for an invalid name, role or language and ``UserExists`` for a taken name.
    """
    _validate_name(name)
    _validate_role(role)
    _validate_locale(locale)
    token = _new_token()
    with atomic(session):
        if _find_user(session, name) is not None:
            raise UserExists(f"a staff user named {name!r} already exists")
        user = StaffUser(name=name, role=role, locale=locale, token_hash=_token_hash(token), created_at=utcnow())
        session.add(user)
        try:
            session.flush()
        except IntegrityError as exc:  # created concurrently by another session
            raise UserExists(f"a staff user named {name!r} already exists") from exc
        _audit(session=session, actor=actor, action="user.created", user=user, detail={"role": user.role})
    return user, token


def rotate_token(*, session: Session, name: str, actor: str = ACTOR_SYSTEM) -> str:
    """Give the user a new API token and return it; the previous token stops working.

    Raises ``UserNotFound``. An inactive user keeps being refused until reactivated.
    """
    token = _new_token()
    with atomic(session):
        user = _require_user(session, name)
        user.token_hash = _token_hash(token)
        session.add(user)
        _audit(session=session, actor=actor, action="user.token_rotated", user=user)
    return token


def set_password(*, session: Session, name: str, password: str, actor: str = ACTOR_SYSTEM) -> None:
    """Set (or replace) the user's password, stored as an argon2id hash, and end every
    dashboard session of the user: whoever knew the old password is signed out.

    Raises ``ValueError`` for a password shorter than ``PASSWORD_MIN_LENGTH`` (or longer than
    ``PASSWORD_MAX_LENGTH``) characters and ``UserNotFound`` for an unknown name.
    """
    _validate_password(password)
    password_hash = _hasher.hash(password)  # slow on purpose: done before the transaction
    with atomic(session):
        user = _require_user(session, name)
        user.password_hash = password_hash
        session.add(user)
        session.execute(delete(StaffSession).where(col(StaffSession.user_id) == user.id))
        _audit(session=session, actor=actor, action="user.password_set", user=user)


def deactivate_user(*, session: Session, name: str, actor: str = ACTOR_SYSTEM) -> int:
    """Refuse the user's token and password from now on and end their desk sessions at once
    (the row stays for the audit trail); returns how many sessions were ended.

    Raises ``UserNotFound``; deactivating an inactive user changes nothing.
    """
    with atomic(session):
        user = _require_user(session, name)
        if not user.active:
            return 0
        user.active = False
        session.add(user)
        ended = session.execute(delete(StaffSession).where(col(StaffSession.user_id) == user.id))
        sessions = int(ended.rowcount or 0)  # type: ignore[attr-defined]
        _audit(session=session, actor=actor, action="user.deactivated", user=user, detail={"sessions_ended": sessions})
    return sessions


def set_role(*, session: Session, name: str, role: str, actor: str = ACTOR_SYSTEM) -> str:
    """Give the user another role (it applies to their next request: sessions read the user's
    row every time); returns the previous role. Raises ``ValueError`` and ``UserNotFound``."""
    _validate_role(role)
    with atomic(session):
        user = _require_user(session, name)
        previous = user.role
        if previous != role:
            user.role = role
            session.add(user)
            _audit(session=session, actor=actor, action="user.role_changed", user=user,
                   detail={"from": previous, "to": role})
    return previous


def set_locale(*, session: Session, name: str, locale: str | None, actor: str = ACTOR_SYSTEM) -> None:
    """The language of the user's desk (``None``: the deployment's default)."""
    _validate_locale(locale)
    with atomic(session):
        user = _require_user(session, name)
        user.locale = locale
        session.add(user)


def link_telegram(*, session: Session, name: str, telegram_id: int | None, actor: str = ACTOR_SYSTEM) -> None:
    """Link the user to their Telegram account (``None`` unlinks): the dispatch group's buttons
    then act in their name. Raises ``ValueError`` for an id that is not a Telegram user's,
    ``UserExists`` when another user has it, ``UserNotFound`` for an unknown name."""
    if telegram_id is not None and not (isinstance(telegram_id, int) and 0 < telegram_id < 2**53):
        raise ValueError(f"{telegram_id!r} is not a Telegram user id (a positive number)")
    with atomic(session):
        user = _require_user(session, name)
        if telegram_id is not None:
            holder = session.exec(select(StaffUser).where(StaffUser.telegram_id == telegram_id)).first()
            if holder is not None and holder.id != user.id:
                raise UserExists(f"Telegram user {telegram_id} is already linked to {holder.name}")
        user.telegram_id = telegram_id
        session.add(user)
        action = "user.telegram_linked" if telegram_id is not None else "user.telegram_unlinked"
        _audit(session=session, actor=actor, action=action, user=user)


def user_for_telegram(*, session: Session, telegram_id: int) -> StaffUser | None:
    """The active user linked to this Telegram account, or ``None``. Writes nothing."""
    statement = select(StaffUser).where(StaffUser.telegram_id == telegram_id, col(StaffUser.active).is_(True))
    return session.exec(statement).first()


def list_users(*, session: Session) -> list[StaffUser]:
    """Every user, active or not, by name."""
    return list(session.exec(select(StaffUser).order_by(col(StaffUser.name))).all())


# --------------------------------------------------------------------------- authentication


def user_for_token(*, session: Session, token: str) -> StaffUser | None:
    """The active user holding this API token, or ``None``. Writes nothing.

    The token is compared through its SHA-256 digest (an indexed lookup), so no comparison
    with the stored value depends on how much of a guessed token is right. Values without the
    ``barri_`` prefix, or too long to be a token, are refused before hashing.
    """
    if (
        not isinstance(token, str)
        or not token.startswith(TOKEN_PREFIX)
        or len(token) > TOKEN_MAX_LENGTH
    ):
        return None
    statement = select(StaffUser).where(
        StaffUser.token_hash == _token_hash(token), col(StaffUser.active).is_(True)
    )
    return session.exec(statement).first()


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):  # VerifyMismatchError is a VerificationError
        return False


def check_password(*, session: Session, name: str, password: str) -> StaffUser | None:
    """The active user if ``password`` is theirs, else ``None``; records the login time.

    An unknown name, an inactive user and a user without a password cost one argon2
    verification too (against a dummy hash), so response times do not reveal which names
    exist. A hash made with older parameters is replaced on success.
    """
    if not isinstance(password, str) or len(password) > PASSWORD_MAX_LENGTH:
        return None
    user = _find_user(session, name) if isinstance(name, str) else None
    if user is None or not user.active or user.password_hash is None:
        _verify(_dummy_hash(), password)
        return None
    if not _verify(user.password_hash, password):
        return None
    with atomic(session):
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        user.last_login_at = utcnow()
        session.add(user)
    return user
