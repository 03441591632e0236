"""The operators' commands of `barri`, run as an operator would (`barri ...` with the settings
in the environment), on SQLite and on PostgreSQL: staff accounts (list, role, language,
deactivate), retrying failed outbox messages, the retention dry run, and a backup that is
then restored."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text, update
from sqlalchemy.engine import make_url
from sqlmodel import col, select

from bot.cli import main
from storage import outbox, users
from storage.db import create_db_engine, session_scope
from storage.models import Alert, AuditLog, Case, CaseEvent, OutboxMessage, Reporter, StaffSession, utcnow
from tests.cases import move_case
from tests.conftest import TEST_SECRET
from tests.postgres import POSTGRES_URL

pytest_plugins = ("tests.scheduling",)
from tests.scheduling import new_case  # noqa: E402


@pytest.fixture
def barri(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run `barri ARGS...` against the test database; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("TRACKER_STORE_URL", f"sqlite:///{tmp_path / 'tracker.db'}")
    monkeypatch.setenv("RETENTION_DAYS", "30")

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(["--log-level", "WARNING", *args])
            code = 0
        except SystemExit as done:
            code = int(done.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def db(database_url: str) -> Engine:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


def test_staff_accounts_are_listed_given_roles_and_languages_and_deactivated(barri, db: Engine) -> None:
    code, out, _ = barri("user", "add", "marta", "--role", "dispatcher", "--lang", "ca")
    assert code == 0 and out.splitlines()[-1].startswith("barri_")
    token = out.splitlines()[-1]
    assert barri("user", "add", "joan", "--role", "community")[0] == 0
    assert barri("user", "add", "pau", "--role", "admin", "--lang", "fr")[0] == 2  # argparse refuses it

    code, out, _ = barri("user", "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["name", "role", "language", "state", "password", "last", "sign-in"]
    assert lines[1].split()[:5] == ["joan", "community", "(en)", "active", "none"]
    assert lines[2].split()[:5] == ["marta", "dispatcher", "ca", "active", "none"]
    assert "barri_" not in out and "$argon2" not in out  # no secret is ever shown

    assert barri("user", "role", "joan", "admin") == (0, "joan: community -> admin.\n", "")
    assert barri("user", "lang", "joan", "es")[0] == 0
    assert barri("user", "role", "nobody", "admin")[0] == 1

    with session_scope(db) as session:
        marta = session.exec(select(users.StaffUser).where(users.StaffUser.name == "marta")).one()
        joan = session.exec(select(users.StaffUser).where(users.StaffUser.name == "joan")).one()
        assert (joan.role, joan.locale) == ("admin", "es")
        now = utcnow()
        session.add(StaffSession(token_hash="a" * 64, user_id=marta.id, created_at=now, last_seen_at=now))
        session.add(StaffSession(token_hash="b" * 64, user_id=marta.id, created_at=now, last_seen_at=now))
        session.add(StaffSession(token_hash="c" * 64, user_id=joan.id, created_at=now, last_seen_at=now))
        session.commit()
        assert users.user_for_token(session=session, token=token) is not None

    code, out, _ = barri("user", "deactivate", "marta")
    assert code == 0 and "2 desk session(s) ended" in out
    with session_scope(db) as session:
        assert users.user_for_token(session=session, token=token) is None  # the token is refused at once
        left = session.exec(select(StaffSession)).all()
        assert [s.user_id for s in left] == [joan.id]  # only marta's sessions ended
        audit = session.exec(select(AuditLog).where(AuditLog.action == "user.deactivated")).one()
        assert json.loads(audit.detail)["sessions_ended"] == 2
        assert session.exec(select(AuditLog).where(AuditLog.action == "user.role_changed")).one()
    assert "deactivated" in barri("user", "list")[1].splitlines()[2]


def _failed_rows(db: Engine, alert: Alert | None, count: int) -> list[uuid.UUID]:
    with session_scope(db) as session:
        reporters = [Reporter(channel="telegram", sender_id=f"telegram:{uuid.uuid4().int % 10**9}", locale="ca")
                     for _ in range(count)]
        session.add_all(reporters)
        session.commit()
        outbox.enqueue(session=session, items=[outbox.OutgoingItem.to(
            r, dedupe_key=f"test:{uuid.uuid4()}", kind="alert" if alert else "status", text="Tall d'aigua",
            alert_id=alert.id if alert else None) for r in reporters])
        rows = session.exec(select(OutboxMessage).where(
            col(OutboxMessage.reporter_id).in_([r.id for r in reporters]))).all()
        session.execute(update(OutboxMessage).where(col(OutboxMessage.id).in_([r.id for r in rows])).values(
            status=outbox.FAILED, attempts=5, last_error="502 Bad Gateway"))
        session.commit()
        return [r.id for r in rows]


def _status_of(db: Engine, ids: list[uuid.UUID]) -> list[tuple[str, int]]:
    with session_scope(db) as session:
        return sorted({(r.status, r.attempts) for r in session.exec(
            select(OutboxMessage).where(col(OutboxMessage.id).in_(ids))).all()})


def test_failed_outbox_messages_are_queued_again_per_alert_or_all(barri, db: Engine) -> None:
    with session_scope(db) as session:
        first, second = (Alert(created_by="c1", neighbourhood_codes='["01-01"]', texts='{"ca": "Avís"}')
                         for _ in range(2))
        cancelled = Alert(created_by="c1", neighbourhood_codes='["01-01"]', texts='{"ca": "Avís"}',
                          cancelled_at=utcnow())
        session.add_all([first, second, cancelled])
        session.commit()
        first_id, second_id, cancelled_id = first.id, second.id, cancelled.id
        first, second, cancelled = (session.get(Alert, i) for i in (first_id, second_id, cancelled_id))
    of_first, of_second = _failed_rows(db, first, 3), _failed_rows(db, second, 2)
    of_cancelled, status_rows = _failed_rows(db, cancelled, 1), _failed_rows(db, None, 1)

    code, out, _ = barri("outbox", "retry-failed", "--alert", str(first_id))
    assert code == 0 and out.startswith("3 failed message(s) queued again")
    assert _status_of(db, of_first) == [("pending", 0)]
    assert _status_of(db, of_second) == [("failed", 5)]

    code, out, _ = barri("outbox", "retry-failed")
    assert code == 0 and out.startswith("3 failed message(s) queued again")  # the second alert's and the status one
    assert _status_of(db, of_second + status_rows) == [("pending", 0)]
    assert _status_of(db, of_cancelled) == [("failed", 5)]  # a cancelled alert stays withdrawn
    assert barri("outbox", "retry-failed", "--alert", "not-an-id")[0] == 2


def _finish(db: Engine, case: Case, ago: timedelta) -> None:
    when = utcnow() - ago
    with session_scope(db) as session:
        current = session.get(Case, case.id)
        assert current is not None
        move_case(session, current, "closed", actor="ana")
        session.execute(update(Case).where(col(Case.id) == case.id).values(closed_at=when, resolved_at=when, updated_at=when))
        session.execute(update(CaseEvent).where(col(CaseEvent.case_id) == case.id).values(at=when))
        session.execute(update(Reporter).where(col(Reporter.id) == case.reporter_id).values(last_seen_at=when))
        session.commit()


def test_retention_dry_run_names_cases_not_people_and_erases_nothing(barri, db: Engine) -> None:
    old = new_case(db, sender="telegram:611222333")
    _finish(db, old, timedelta(days=45))
    recent = new_case(db, sender="telegram:699888777")
    _finish(db, recent, timedelta(days=3))
    still_open = new_case(db, sender="web:abc")
    with session_scope(db) as session:
        session.execute(update(Reporter).values(contact_name="Montserrat Ferrer"))
        session.execute(update(Reporter).where(col(Reporter.id) == still_open.reporter_id).values(
            last_seen_at=utcnow() - timedelta(days=90)))
        session.commit()

    code, out, _ = barri("retention", "--dry-run")
    assert code == 0
    assert "1 reporter(s) would be erased" in out
    assert f"cases {old.ref}: every case finished" in out and "(45 days ago)" in out
    assert recent.ref not in out and still_open.ref not in out
    assert "Montserrat" not in out and "611222333" not in out and "telegram:" not in out
    with session_scope(db) as session:  # nothing was erased
        assert session.exec(select(Reporter).where(Reporter.sender_id == "telegram:611222333")).one().contact_name
    assert barri("retention")[0] == 2  # only the dry run exists: the scheduler does the erasing


def test_backup_while_running_and_restore(barri, db: Engine, database_url: str, tmp_path: Path) -> None:
    case = new_case(db, sender="web:backup")
    assert barri("user", "add", "marta", "--role", "dispatcher")[0] == 0
    target = tmp_path / "barri.backup"
    code, out, _ = barri("db", "backup", str(target))
    assert code == 0 and out.startswith(f"Backed up to {target}")
    assert barri("db", "backup", str(target))[0] == 1  # never overwrites
    assert barri("db", "backup")[0] == 2

    if database_url.startswith("sqlite"):
        # restore: stop Barri, put the copy in place of the database file, start Barri
        with sqlite3.connect(target) as copy:
            assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert copy.execute("SELECT ref FROM cases").fetchall() == [(case.ref,)]
            assert copy.execute("SELECT name FROM staff_users").fetchall() == [("marta",)]
        return
    # PostgreSQL: restore into a new database with pg_restore, as the README says
    url = make_url(POSTGRES_URL)
    name = f"barri_restore_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        restored = subprocess.run(
            ["pg_restore", "--no-owner", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
             "-U", url.username or "postgres", "-d", name, str(target)],
            capture_output=True, text=True, timeout=120, check=False)
        assert restored.returncode == 0, restored.stderr
        schema = str(make_url(database_url).query["options"]).removeprefix("-csearch_path=")
        copy = create_engine(url.set(database=name))
        with copy.connect() as connection:
            assert connection.execute(text(f'SELECT ref FROM "{schema}".cases')).all() == [(case.ref,)]
            assert connection.execute(text(f'SELECT name FROM "{schema}".staff_users')).all() == [("marta",)]
        copy.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
