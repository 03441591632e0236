"""Fixtures and helpers shared by the scheduler and retention tests (tests/test_scheduler.py,
tests/test_retention.py), loaded with ``pytest_plugins``: a migrated database on SQLite and on
PostgreSQL (a schema of its own), settings with second-scale delays, the jobs' context."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Float, Integer, MetaData, String, Table, Text, insert, text, update
from sqlalchemy import select as core_select
from sqlmodel import col, select

from bot import jobs
from bot.scheduler import JOBSTORE_TABLE
from common.i18n import Catalogs
from common.settings import Settings
from storage import cases as case_store
from storage.db import create_db_engine, session_scope
from storage.migrate import upgrade_database
from storage.models import Case, CaseCreate, CaseEvent, OutboxMessage, utcnow
from tests.conftest import free_port, make_settings
from tests.postgres import admin_engine, schema_url

TOKEN = "123456:TEST-scheduler-token"

# Rasa 3.6's SQLTrackerStore table (rasa/core/tracker_store.py, SQLEvent), for the tests that
# do not start the engine; the engine tests below use the engine's own tracker store.
TRACKER_METADATA = MetaData()
TRACKER_EVENTS = Table(
    "events", TRACKER_METADATA,
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255), nullable=False, index=True),
    Column("type_name", String(255), nullable=False),
    Column("timestamp", Float),
    Column("intent_name", String(255)),
    Column("action_name", String(255)),
    Column("data", Text),
)


def say_in_tracker(tracker: Engine, sender_id: str, words: str, *, ago: timedelta = timedelta(days=3)) -> None:
    TRACKER_METADATA.create_all(tracker)
    with tracker.begin() as connection:
        connection.execute(insert(TRACKER_EVENTS).values(
            sender_id=sender_id, type_name="user", timestamp=(utcnow() - ago).timestamp(), intent_name="inform",
            data=json.dumps({"event": "user", "text": words}),
        ))


def tracker_senders(tracker: Engine) -> set[str]:
    with tracker.connect() as connection:
        return set(connection.execute(core_select(TRACKER_EVENTS.c.sender_id)).scalars())

# --------------------------------------------------------------------------- databases


@pytest.fixture(scope="module")
def postgres_admin() -> Iterator[Engine]:
    engine = admin_engine()
    yield engine
    engine.dispose()


def postgres_schema_url(admin: Engine) -> Iterator[str]:
    """A fresh schema of its own (dropped afterwards), selected by the URL's search_path."""
    return schema_url(admin, "barri_sched")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'barri.db'}"
        upgrade_database(url)
        yield url
    else:
        for url in postgres_schema_url(request.getfixturevalue("postgres_admin")):
            upgrade_database(url)
            yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path, database_url=database_url, rasa_port=free_port(), actions_port=free_port(),
        leader_lease_seconds=2, leader_renew_seconds=0.2, sweep_interval_seconds=3600,
        escalate_after_seconds=60, escalate_urgent_after_seconds=5, follow_up_after_seconds=30,
        survey_delay_seconds=10, retention_days=1,
    )


@pytest.fixture(scope="module")
def catalogs() -> Catalogs:
    s = make_settings(Path("/tmp"))
    return Catalogs.load(s.locales_dir, s.default_locale)


@pytest.fixture
def context(settings: Settings, db: Engine, catalogs: Catalogs, tmp_path: Path) -> Iterator[jobs.JobContext]:
    tracker = create_db_engine(f"sqlite:///{tmp_path / 'tracker.db'}")
    ctx = jobs.JobContext(settings=settings, db=db, tracker_db=tracker, catalogs=catalogs)
    jobs.install(ctx)
    yield ctx
    jobs.uninstall(ctx)
    tracker.dispose()


def new_case(db: Engine, *, sender: str | None = None, age: timedelta = timedelta(0), locale: str = "en",
             contact_mode: str = "chat", priority: str = "normal", channel: str = "web") -> Case:
    with session_scope(db) as session:
        case = case_store.create_case(session=session, case_in=CaseCreate(
            sender_id=sender or f"{channel}:{uuid.uuid4().hex}", channel=channel, locale=locale, category="theft",
            description="they took my bike", neighbourhood_code="018", neighbourhood_name="Sants",
            contact_mode=contact_mode, priority=priority,
        ))
        if age:
            session.execute(update(Case).where(col(Case.id) == case.id).values(created_at=utcnow() - age))
            session.commit()
        return case


def events(db: Engine, case: Case, kind: str) -> list[CaseEvent]:
    with session_scope(db) as session:
        return list(session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.kind == kind)).all())


def fresh(db: Engine, case: Case) -> Case:
    with session_scope(db) as session:
        found = session.get(Case, case.id)
        assert found is not None
        return found


def outbox(db: Engine) -> list[OutboxMessage]:
    with session_scope(db) as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))).all())


async def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


def stored_jobs(db: Engine) -> dict[str, float]:
    with db.connect() as connection:
        rows = connection.execute(text(f"SELECT id, next_run_time FROM {JOBSTORE_TABLE}")).all()
    return {row[0]: row[1] for row in rows}
