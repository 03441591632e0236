"""storage.users on a real database (SQLite and PostgreSQL), and its migration."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import String, func
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel, col, select

import storage.users as users_module
from storage.db import session_scope
from storage.errors import StorageError, UserExists, UserNotFound
from storage.models import AuditLog, StaffUser
from storage.users import (
    PASSWORD_MIN_LENGTH,
    ROLES,
    TOKEN_PREFIX,
    check_password,
    create_user,
    deactivate_user,
    list_users,
    rotate_token,
    set_password,
    user_for_token,
)
from tests.threads import at_once

PASSWORD = "correct horse battery staple"


def count(session: Session, model: type[SQLModel]) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def _string_columns() -> Iterator[tuple[Any, Any]]:
    for table in SQLModel.metadata.sorted_tables:
        for column in table.columns:
            type_ = column.type
            if isinstance(type_, TypeDecorator):  # sqlmodel's AutoString
                type_ = type_.impl_instance
            if isinstance(type_, String):
                yield table, column


def find_in_database(session: Session, *needles: str) -> list[str]:
    """Every ``table.column: needle`` where a needle appears in any string column of any table."""
    found = []
    for table, column in _string_columns():
        for needle in needles:
            hits = session.execute(
                select(func.count()).select_from(table).where(column.contains(needle))
            ).scalar_one()
            if hits:
                found.append(f"{table.name}.{column.name}: {needle}")
    return found


class CountingHasher(PasswordHasher):
    """The real hasher, counting verifications (to check that failures cost one too)."""

    def __init__(self) -> None:
        super().__init__()
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified += 1
        return super().verify(hash, password)


@pytest.fixture
def counting_hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    hasher = CountingHasher()
    monkeypatch.setattr(users_module, "_hasher", hasher)
    return hasher


# --------------------------------------------------------------------------- create_user


def test_roles() -> None:
    assert ROLES == ("dispatcher", "community", "admin")


def test_create_user_returns_the_token_once(
    session: Session, new_session: Callable[[], Session]
) -> None:
    user, token = create_user(session=session, name="maria.puig", role="dispatcher")

    assert token.startswith(TOKEN_PREFIX)
    assert len(token) >= len(TOKEN_PREFIX) + 43  # 32 random bytes, base64url
    assert user.name == "maria.puig"
    assert user.role == "dispatcher"
    assert user.active is True
    assert user.password_hash is None
    assert user.last_login_at is None
    assert user.token_hash == hashlib.sha256(token.encode()).hexdigest()

    other = new_session()
    stored = other.exec(select(StaffUser)).one()
    assert stored.id == user.id
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert stored.created_at.tzinfo is UTC
    # Neither the token nor its random part is stored anywhere, audit log included.
    assert find_in_database(other, token, token.removeprefix(TOKEN_PREFIX)) == []
    assert find_in_database(other, stored.token_hash) == ["staff_users.token_hash: " + stored.token_hash]

    audit = other.exec(select(AuditLog)).one()
    assert audit.action == "user.created"
    assert audit.actor == "system"
    assert audit.subject_type == "staff_user"
    assert audit.subject_id == str(user.id)
    assert json.loads(audit.detail or "null") == {"name": "maria.puig", "role": "dispatcher"}


def test_every_user_gets_a_different_token(session: Session) -> None:
    tokens = {create_user(session=session, name=f"user{i}", role=ROLES[i % 3])[1] for i in range(5)}
    assert len(tokens) == 5
    assert [u.name for u in list_users(session=session)] == [f"user{i}" for i in range(5)]


def test_create_user_records_the_actor(session: Session, new_session: Callable[[], Session]) -> None:
    create_user(session=session, name="anna", role="community", actor="admin.joan")
    assert new_session().exec(select(AuditLog.actor)).one() == "admin.joan"


def test_duplicate_name_is_refused(session: Session, new_session: Callable[[], Session]) -> None:
    first, _ = create_user(session=session, name="maria", role="dispatcher")
    with pytest.raises(UserExists, match="maria"):
        create_user(session=session, name="maria", role="admin")
    other = new_session()
    assert [(u.id, u.role) for u in other.exec(select(StaffUser)).all()] == [(first.id, "dispatcher")]
    assert count(other, AuditLog) == 1
    assert issubclass(UserExists, StorageError)


def test_duplicate_name_raced_past_the_check_is_refused(
    session: Session, new_session: Callable[[], Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    create_user(session=session, name="maria", role="dispatcher")
    monkeypatch.setattr(users_module, "_find_user", lambda session, name: None)
    with pytest.raises(UserExists):
        create_user(session=session, name="maria", role="admin")
    monkeypatch.undo()
    # The session is usable again and nothing of the failed attempt was kept.
    assert [u.role for u in list_users(session=session)] == ["dispatcher"]
    assert count(new_session(), AuditLog) == 1


def test_concurrent_creation_makes_one_user(engine: Engine) -> None:
    def create(_: int) -> str:
        with session_scope(engine) as session:
            create_user(session=session, name="same", role="admin")
        return "created"

    outcomes = at_once(create, 6)
    assert [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, UserExists)] == []
    assert sorted("exists" if isinstance(o, UserExists) else o for o in outcomes) == ["created"] + ["exists"] * 5
    with session_scope(engine) as session:
        assert count(session, StaffUser) == 1
        assert count(session, AuditLog) == 1


@pytest.mark.parametrize(
    "name",
    ["", "a" * 65, "maria puig", "maria/puig", "maría", "maria\n", "maria@example.org", " maria"],
)
def test_invalid_name_is_refused(
    session: Session, new_session: Callable[[], Session], name: str
) -> None:
    with pytest.raises(ValueError, match="invalid user name"):
        create_user(session=session, name=name, role="admin")
    assert count(new_session(), StaffUser) == 0


@pytest.mark.parametrize("name", ["a", "a" * 64, "Maria.Puig_2-b", "0", "..", "-_-"])
def test_valid_names(session: Session, name: str) -> None:
    user, _ = create_user(session=session, name=name, role="community")
    assert user.name == name


@pytest.mark.parametrize("role", ["", "Admin", "root", "dispatcher ", "citizen"])
def test_invalid_role_is_refused(
    session: Session, new_session: Callable[[], Session], role: str
) -> None:
    with pytest.raises(ValueError, match="invalid role"):
        create_user(session=session, name="maria", role=role)
    other = new_session()
    assert count(other, StaffUser) == 0
    assert count(other, AuditLog) == 0


# --------------------------------------------------------------------------- tokens


def test_token_finds_its_user(session: Session) -> None:
    user, token = create_user(session=session, name="maria", role="dispatcher")
    create_user(session=session, name="joan", role="admin")
    found = user_for_token(session=session, token=token)
    assert found is not None
    assert (found.id, found.name, found.role) == (user.id, "maria", "dispatcher")


def test_wrong_and_prefixless_tokens_are_refused(session: Session) -> None:
    _, token = create_user(session=session, name="maria", role="dispatcher")
    random_part = token.removeprefix(TOKEN_PREFIX)
    for wrong in (
        "",
        TOKEN_PREFIX,
        TOKEN_PREFIX + "wrong",
        random_part,  # no prefix
        "Barri_" + random_part,
        " " + token,
        token + "x",
        token[:-1],
        TOKEN_PREFIX + "x" * 10_000,
        hashlib.sha256(token.encode()).hexdigest(),  # the stored hash is not a token
    ):
        assert user_for_token(session=session, token=wrong) is None, wrong


def test_prefixless_token_is_not_looked_up(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_hashing(token: str) -> str:
        raise AssertionError("hashed a value without the prefix")

    monkeypatch.setattr(users_module, "_token_hash", no_hashing)
    assert user_for_token(session=session, token="not-a-barri-token") is None
    assert user_for_token(session=session, token=TOKEN_PREFIX + "x" * 1000) is None


def test_rotated_token_replaces_the_old_one(
    session: Session, new_session: Callable[[], Session]
) -> None:
    user, old = create_user(session=session, name="maria", role="dispatcher")
    new = rotate_token(session=session, name="maria")

    assert new != old
    assert new.startswith(TOKEN_PREFIX)
    assert user_for_token(session=session, token=old) is None
    found = user_for_token(session=session, token=new)
    assert found is not None and found.id == user.id

    other = new_session()
    assert find_in_database(other, old, new, new.removeprefix(TOKEN_PREFIX)) == []
    actions = other.exec(select(AuditLog.action).order_by(col(AuditLog.at))).all()
    assert actions == ["user.created", "user.token_rotated"]


def test_rotate_token_of_unknown_user(session: Session, new_session: Callable[[], Session]) -> None:
    with pytest.raises(UserNotFound, match="nobody"):
        rotate_token(session=session, name="nobody")
    assert count(new_session(), AuditLog) == 0


def test_user_for_token_writes_nothing(session: Session) -> None:
    _, token = create_user(session=session, name="maria", role="dispatcher")
    user = user_for_token(session=session, token=token)
    assert user is not None
    assert user.last_login_at is None
    assert not session.dirty and not session.new


# --------------------------------------------------------------------------- passwords


def test_password_is_stored_as_argon2id(
    session: Session, new_session: Callable[[], Session]
) -> None:
    create_user(session=session, name="maria", role="dispatcher")
    set_password(session=session, name="maria", password=PASSWORD)

    other = new_session()
    stored = other.exec(select(StaffUser)).one()
    assert stored.password_hash is not None
    assert stored.password_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(stored.password_hash, PASSWORD)
    assert find_in_database(other, PASSWORD) == []
    audit = other.exec(select(AuditLog).where(AuditLog.action == "user.password_set")).one()
    assert audit.subject_id == str(stored.id)
    assert "argon2" not in (audit.detail or "")


def test_check_password(session: Session, new_session: Callable[[], Session]) -> None:
    user, _ = create_user(session=session, name="maria", role="dispatcher")
    set_password(session=session, name="maria", password=PASSWORD)

    found = check_password(session=session, name="maria", password=PASSWORD)
    assert found is not None
    assert found.id == user.id
    assert found.last_login_at is not None
    stored = new_session().get(StaffUser, user.id)
    assert stored is not None
    assert stored.last_login_at == found.last_login_at
    assert stored.last_login_at is not None and stored.last_login_at.tzinfo is UTC


def test_wrong_password_is_refused(session: Session, new_session: Callable[[], Session]) -> None:
    create_user(session=session, name="maria", role="dispatcher")
    set_password(session=session, name="maria", password=PASSWORD)
    for wrong in ("", PASSWORD.upper(), PASSWORD + " ", PASSWORD[:-1], "x" * 5000):
        assert check_password(session=session, name="maria", password=wrong) is None
    assert new_session().exec(select(StaffUser.last_login_at)).one() is None


def test_password_replaced(session: Session) -> None:
    create_user(session=session, name="maria", role="dispatcher")
    set_password(session=session, name="maria", password=PASSWORD)
    set_password(session=session, name="maria", password="another long password")
    assert check_password(session=session, name="maria", password=PASSWORD) is None
    assert check_password(session=session, name="maria", password="another long password")


def test_short_password_is_refused(session: Session, new_session: Callable[[], Session]) -> None:
    create_user(session=session, name="maria", role="dispatcher")
    with pytest.raises(ValueError, match="at least 10"):
        set_password(session=session, name="maria", password="x" * (PASSWORD_MIN_LENGTH - 1))
    with pytest.raises(ValueError, match="at least 10"):
        set_password(session=session, name="maria", password="")
    set_password(session=session, name="maria", password="x" * PASSWORD_MIN_LENGTH)
    actions = new_session().exec(select(AuditLog.action).order_by(col(AuditLog.at))).all()
    assert actions == ["user.created", "user.password_set"]


def test_set_password_of_unknown_user(session: Session, new_session: Callable[[], Session]) -> None:
    with pytest.raises(UserNotFound):
        set_password(session=session, name="nobody", password=PASSWORD)
    assert count(new_session(), AuditLog) == 0


def test_unknown_names_cost_a_verification_too(
    session: Session, counting_hasher: CountingHasher
) -> None:
    create_user(session=session, name="maria", role="dispatcher")
    create_user(session=session, name="joan", role="admin")  # no password set
    set_password(session=session, name="maria", password=PASSWORD)

    for name in ("nobody", "joan", "maria"):
        before = counting_hasher.verified
        assert check_password(session=session, name=name, password="wrong password") is None
        assert counting_hasher.verified == before + 1, name


def test_user_without_password_cannot_log_in(session: Session) -> None:
    create_user(session=session, name="maria", role="dispatcher")
    assert check_password(session=session, name="maria", password=PASSWORD) is None


def test_corrupt_hash_is_refused_without_error(session: Session) -> None:
    user, _ = create_user(session=session, name="maria", role="dispatcher")
    for broken in ("not a hash", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$bm90LWEtaGFzaA"):
        user.password_hash = broken
        session.add(user)
        session.commit()
        assert check_password(session=session, name="maria", password=PASSWORD) is None


def test_outdated_hash_is_rehashed_on_login(
    session: Session, new_session: Callable[[], Session]
) -> None:
    user, _ = create_user(session=session, name="maria", role="dispatcher")
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    user.password_hash = weak
    session.add(user)
    session.commit()

    assert check_password(session=session, name="maria", password=PASSWORD) is not None
    stored = new_session().get(StaffUser, user.id)
    assert stored is not None and stored.password_hash is not None
    assert stored.password_hash != weak
    assert stored.password_hash.startswith("$argon2id$")
    assert not PasswordHasher().check_needs_rehash(stored.password_hash)
    assert check_password(session=session, name="maria", password=PASSWORD) is not None


# --------------------------------------------------------------------------- deactivation


def test_inactive_user_is_refused(session: Session, new_session: Callable[[], Session]) -> None:
    create_user(session=session, name="joan", role="admin")
    _, token = create_user(session=session, name="maria", role="dispatcher")
    set_password(session=session, name="maria", password=PASSWORD)
    assert user_for_token(session=session, token=token) is not None

    deactivate_user(session=session, name="maria")
    assert user_for_token(session=session, token=token) is None
    assert check_password(session=session, name="maria", password=PASSWORD) is None
    assert [(u.name, u.active) for u in list_users(session=session)] == [
        ("joan", True),
        ("maria", False),
    ]

    # A new token does not bring an inactive user back.
    new = rotate_token(session=session, name="maria")
    assert user_for_token(session=session, token=new) is None

    deactivate_user(session=session, name="maria")  # already inactive: nothing happens
    actions = new_session().exec(select(AuditLog.action).order_by(col(AuditLog.at))).all()
    assert actions.count("user.deactivated") == 1


def test_deactivate_unknown_user(session: Session) -> None:
    with pytest.raises(UserNotFound):
        deactivate_user(session=session, name="nobody")


def test_list_users_empty(session: Session) -> None:
    assert list_users(session=session) == []


def test_audit_never_holds_secrets(session: Session, new_session: Callable[[], Session]) -> None:
    _, first = create_user(session=session, name="maria", role="dispatcher")
    second = rotate_token(session=session, name="maria")
    set_password(session=session, name="maria", password=PASSWORD)
    check_password(session=session, name="maria", password=PASSWORD)
    deactivate_user(session=session, name="maria")

    other = new_session()
    stored = other.exec(select(StaffUser)).one()
    secrets_ = (first, second, PASSWORD, stored.token_hash, stored.password_hash or "?")
    for entry in other.exec(select(AuditLog)).all():
        for secret in secrets_:
            assert secret not in (entry.detail or ""), entry.action
            assert secret not in entry.subject_id
    assert find_in_database(other, first, second, PASSWORD) == []
