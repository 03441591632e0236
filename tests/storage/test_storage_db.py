"""Engines, sessions and ping."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from storage.db import (
    create_db_engine,
    normalise_database_url,
    ping,
    session_scope,
)
from storage.errors import DatabaseUnavailable
from storage.models import AuditLog


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@db:5432/barri", "postgresql+psycopg://u:p@db:5432/barri"),
        ("postgresql://u:p@db/barri", "postgresql+psycopg://u:p@db/barri"),
        ("postgresql+psycopg://u@db/barri", "postgresql+psycopg://u@db/barri"),
        ("sqlite:///var/barri.db", "sqlite:///var/barri.db"),
    ],
)
def test_normalise_database_url(url: str, expected: str) -> None:
    assert normalise_database_url(url).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_create_db_engine_uses_psycopg3_for_postgres(scheme: str) -> None:
    engine = create_db_engine(f"{scheme}://someone@127.0.0.1:1/none")
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        assert engine.dialect.driver == "psycopg"
        assert engine.pool._pre_ping is True  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_create_db_engine_rejects_other_backends() -> None:
    with pytest.raises(ValueError, match="unsupported database backend 'mysql'"):
        create_db_engine("mysql://u@h/db")


def test_sqlite_engine_makes_folder_and_sets_pragmas(tmp_path: Path) -> None:
    db_file = tmp_path / "a" / "b" / "barri.db"
    engine = create_db_engine(f"sqlite:///{db_file}")
    try:
        assert db_file.parent.is_dir()
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
            assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert connection.execute(text("PRAGMA busy_timeout")).scalar_one() == 30000
        assert db_file.is_file()
    finally:
        engine.dispose()


def test_ping_ok(engine: Engine) -> None:
    ping(engine)


def test_ping_unreachable_postgres() -> None:
    engine = create_db_engine("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        with pytest.raises(DatabaseUnavailable, match="unavailable: OperationalError"):
            ping(engine)
    finally:
        engine.dispose()


def test_ping_unopenable_sqlite(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    engine = create_db_engine(f"sqlite:///{tmp_path / 'dir.db'}")
    try:
        with pytest.raises(DatabaseUnavailable):
            ping(engine)
    finally:
        engine.dispose()


def _audit(action: str) -> AuditLog:
    return AuditLog(actor="system", action=action, subject_type="test", subject_id="1")


def test_session_scope_commits_on_success(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(_audit("test.committed"))
    with session_scope(engine) as session:
        rows = session.exec(select(AuditLog)).all()
        assert [row.action for row in rows] == ["test.committed"]
        assert rows[0].at.tzinfo is not None


def _flush_then_fail(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(_audit("test.rolled_back"))
        session.flush()
        raise RuntimeError("boom")


def test_session_scope_rolls_back_on_exception(engine: Engine) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        _flush_then_fail(engine)
    with session_scope(engine) as session:
        assert session.exec(select(func.count()).select_from(AuditLog)).one() == 0


def test_session_scope_does_not_expire_on_commit(engine: Engine) -> None:
    with session_scope(engine) as session:
        entry = _audit("test.kept")
        session.add(entry)
        session.commit()
    # Attributes stay readable after the session is closed.
    assert entry.action == "test.kept"
    assert entry.id is not None


def test_session_scope_translates_connection_errors(engine: Engine) -> None:
    with pytest.raises(DatabaseUnavailable) as excinfo, session_scope(engine):
        raise OperationalError("SELECT 1", {}, ConnectionError("gone"))
    assert isinstance(excinfo.value.__cause__, OperationalError)
