"""Retention and erasure: personal data goes RETENTION_DAYS after a reporter's last case
closes (the retention sweep) or at once (``forget_me``), from the app database and from the
engine's tracker store, and a dump of both shows nothing of it afterwards."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    text,
    update,
)
from sqlalchemy import (
    select as core_select,
)
from sqlalchemy.engine import make_url
from sqlmodel import col, select

from bot import jobs
from bot.app import create_app
from common.i18n import Catalogs
from common.settings import Settings
from storage import cases as case_store
from storage.db import create_db_engine, session_scope
from storage.models import (
    EVENT_ERASED,
    AuditLog,
    Case,
    CaseCreate,
    CaseEvent,
    OutboxMessage,
    Reporter,
    Subscription,
    SurveyResponse,
    utcnow,
)
from storage.outbox import OutgoingItem, enqueue
from tests.cases import move_case
from tests.conftest import Stack
from tests.test_webchat import app_settings, hello, report_with_name_and_phone, say

# tests.scheduling holds shared fixtures (a plugin) and helpers: rewrite its asserts like a conftest's
pytest.register_assert_rewrite("tests.scheduling")
pytest_plugins = ("tests.scheduling",)
from tests.scheduling import new_case, postgres_schema_url  # noqa: E402

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

NAME = "Montserrat Ferrer"
PHONE_DIGITS = ("612 345 678", "612345678")


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


def finish(db: Engine, case: Case, *, status: str = "closed", ago: timedelta) -> None:
    """Close the case and pretend it happened ``ago`` (the reporter not seen since either)."""
    with session_scope(db) as session:
        move_case(session, case, status, actor="ana")
        when = utcnow() - ago
        session.execute(update(Case).where(col(Case.id) == case.id).values(
            closed_at=when if status == "closed" else None, resolved_at=when if status == "resolved" else None,
            updated_at=when))
        session.execute(update(CaseEvent).where(col(CaseEvent.case_id) == case.id).values(at=when))
        session.execute(update(Reporter).where(col(Reporter.id) == case.reporter_id).values(last_seen_at=when))
        session.commit()


def reporter_of(db: Engine, sender_id: str) -> Reporter | None:
    with session_scope(db) as session:
        return session.exec(select(Reporter).where(Reporter.sender_id == sender_id)).first()


async def test_retention_purge_erases_only_reporters_past_retention(db: Engine, context: jobs.JobContext) -> None:
    tracker = context.tracker_db
    old = new_case(db, sender="web:old", contact_mode="contact")
    with session_scope(db) as session:
        reporter = session.exec(select(Reporter).where(Reporter.sender_id == "web:old")).one()
        reporter.contact_name, reporter.contact_phone = NAME, "+34 612 345 678"
        session.add(reporter)
        session.add(Subscription(reporter_id=reporter.id, neighbourhood_code="018"))
        session.add(SurveyResponse(case_id=old.id, neighbourhood_code="018", satisfaction=4, safety=3,
                                   comment="ask for Montserrat at the bakery"))
        session.commit()
    with session_scope(db) as session:
        enqueue(session=session, items=[
            OutgoingItem(reporter_id=reporter.id, channel="web", dedupe_key=f"status:{old.id}", kind="status",
                         text=f"Your report {old.ref} is now closed, {NAME}.", case_id=old.id),
        ])
    finish(db, old, ago=timedelta(days=2))  # retention is 1 day in these settings
    recent = new_case(db, sender="web:recent")
    finish(db, recent, status="resolved", ago=timedelta(hours=12))
    one_still_open = new_case(db, sender="web:busy")
    finish(db, one_still_open, ago=timedelta(days=3))
    new_case(db, sender="web:busy")  # a second case, still new
    rejected = new_case(db, sender="web:rejected")
    finish(db, rejected, status="rejected", ago=timedelta(days=2))
    chatty = new_case(db, sender="web:chatty")
    finish(db, chatty, ago=timedelta(days=2))
    for sender in ("web:old", "web:recent", "web:busy", "web:rejected", "web:nocase", "web:chatty"):
        say_in_tracker(tracker, sender, f"{sender} says hello, I am {NAME}")
    say_in_tracker(tracker, "web:chatty", "and now I am back", ago=timedelta(hours=1))  # talking again

    assert await jobs.purge_expired_reporters() == 2
    assert await jobs.purge_expired_reporters() == 0
    assert reporter_of(db, "web:old") is None and reporter_of(db, "web:rejected") is None
    for kept_sender in ("web:recent", "web:busy", "web:chatty"):
        assert reporter_of(db, kept_sender) is not None
    assert tracker_senders(tracker) == {"web:recent", "web:busy", "web:nocase", "web:chatty"}
    with session_scope(db) as session:
        erased = session.get(Case, old.id)
        assert erased is not None and erased.erased_at is not None and erased.reporter_id is None
        assert erased.description is None and erased.category == "theft" and erased.neighbourhood_code == "018"
        assert erased.status == "closed"  # the anonymised facts stay
        survey = session.exec(select(SurveyResponse).where(SurveyResponse.case_id == old.id)).one()
        assert survey.comment is None and survey.satisfaction == 4 and survey.safety == 3
        assert session.exec(select(Subscription)).all() == []
        assert session.exec(select(OutboxMessage)).all() == []
        assert len(session.exec(select(CaseEvent).where(CaseEvent.case_id == old.id,
                                                        CaseEvent.kind == EVENT_ERASED)).all()) == 1
        audit = session.exec(select(AuditLog).where(AuditLog.action == "retention.purged")).one()
        assert json.loads(audit.detail or "{}") == {"reporters_erased": 2}
        kept = session.get(Case, recent.id)
        assert kept is not None and kept.description == "they took my bike"


async def test_idle_conversations_of_visitors_without_a_case_are_erased(db: Engine, context: jobs.JobContext) -> None:
    """Someone who typed their name and phone into a report they never finished, and never
    came back: RETENTION_DAYS later (1 day here) their conversation goes too."""
    tracker = context.tracker_db
    with session_scope(db) as session:
        subscriber = Reporter(channel="telegram", sender_id="telegram:1001", locale="ca")
        lurker = Reporter(channel="web", sender_id="web:lurker", locale="es")
        session.add_all([subscriber, lurker])
        session.flush()
        session.add(Subscription(reporter_id=subscriber.id, neighbourhood_code="018"))
        session.commit()
    reporter_case = new_case(db, sender="web:reporter")  # still open: not this sweep's business
    for sender in ("web:abandoned", "telegram:1001", "web:lurker", "web:reporter"):
        say_in_tracker(tracker, sender, f"em dic {NAME}, el meu telèfon és {PHONE_DIGITS[0]}", ago=timedelta(days=3))
    say_in_tracker(tracker, "web:recent", f"I am {NAME}", ago=timedelta(hours=2))
    say_in_tracker(tracker, "web:back", f"I am {NAME}", ago=timedelta(days=3))
    say_in_tracker(tracker, "web:back", "hello again", ago=timedelta(hours=1))

    assert await jobs.purge_idle_conversations() == 3
    assert await jobs.purge_idle_conversations() == 0
    assert tracker_senders(tracker) == {"web:reporter", "web:recent", "web:back"}
    assert reporter_of(db, "web:lurker") is None  # nothing left to keep for them
    kept = reporter_of(db, "telegram:1001")  # they asked for alerts: the subscription stays
    assert kept is not None
    with session_scope(db) as session:
        assert len(session.exec(select(Subscription).where(Subscription.reporter_id == kept.id)).all()) == 1
        assert session.get(Case, reporter_case.id).description == "they took my bike"
        audit = session.exec(select(AuditLog).where(AuditLog.action == "retention.conversations_purged")).one()
        assert json.loads(audit.detail or "{}") == {"conversations_erased": 3}
        assert "web:abandoned" not in (audit.subject_id + (audit.detail or ""))
    with tracker.connect() as connection:
        left = " ".join(str(row) for row in connection.execute(core_select(TRACKER_EVENTS)).all())
    assert left.count(NAME) == 3  # web:reporter, web:recent and web:back only


# --------------------------------------------------------------------------- through the engine


def sqlite_dump(url: str) -> str:
    with sqlite3.connect(make_url(url).database or "") as connection:
        return "\n".join(connection.iterdump())


def assert_no_trace(dump: str, *secrets: str) -> None:
    for secret in (NAME, "Montserrat", "Ferrer", *PHONE_DIGITS, *secrets):
        assert secret not in dump, f"{secret!r} is still stored"


def assert_stored(dump: str, *secrets: str) -> None:
    """The guard of the test: before erasure the dump does show them."""
    for secret in (NAME, *secrets):
        assert secret in dump, f"{secret!r} was never stored: the test would prove nothing"


@pytest.mark.engine
async def test_forget_me_leaves_no_trace_in_the_app_database_or_the_tracker_store(
    stack: Stack, aiohttp_client: Any
) -> None:
    settings = app_settings(stack)
    client = await aiohttp_client(create_app(settings))
    ws, welcome = await hello(client, locale="en-GB")
    sender = welcome["sender"]
    words = "a man called Pere Quintana sells stolen phones from the blue van"
    ref = await report_with_name_and_phone(ws, words)
    with session_scope(create_db_engine(settings.database_url)) as session:
        case = case_store.get_case_by_ref(session=session, ref=ref)
        assert case is not None
        session.add(SurveyResponse(case_id=case.id, satisfaction=2, comment="Quintana threatened me again"))
    both = sqlite_dump(settings.database_url) + sqlite_dump(settings.tracker_store_url)
    assert_stored(both, "Pere Quintana", "Quintana threatened me", sender)

    await say(ws, {"type": "text", "text": "please delete all my personal data"})
    replies = await say(ws, {"type": "button", "payload": "/affirm", "title": "Yes"})
    assert replies[-1]["type"] == "forget"
    await ws.close()

    app_dump, tracker_dump = sqlite_dump(settings.database_url), sqlite_dump(settings.tracker_store_url)
    assert_no_trace(app_dump + tracker_dump, "Pere Quintana", "stolen phones", "Quintana threatened", sender)
    assert ref in app_dump  # the anonymised case is still there for statistics


@pytest.mark.engine
async def test_retention_purge_leaves_no_trace_in_the_app_database_or_the_tracker_store(
    stack: Stack, aiohttp_client: Any, catalogs: Catalogs
) -> None:
    settings = app_settings(stack, retention_days=1)
    client = await aiohttp_client(create_app(settings))
    ws, welcome = await hello(client, locale="en-GB")
    sender = welcome["sender"]
    words = "somebody named Quim Sabater sprays graffiti on the school door every night"
    ref = await report_with_name_and_phone(ws, words)
    await ws.close()
    db = create_db_engine(settings.database_url)
    tracker = create_db_engine(settings.tracker_store_url)
    try:
        with session_scope(db) as session:
            case = case_store.get_case_by_ref(session=session, ref=ref)
            assert case is not None
        finish(db, case, ago=timedelta(days=2))
        with tracker.begin() as connection:  # the conversation, too, happened two days ago
            connection.execute(text("UPDATE events SET timestamp = timestamp - 2 * 86400 WHERE sender_id = :s"),
                               {"s": sender})
        assert_stored(sqlite_dump(settings.database_url) + sqlite_dump(settings.tracker_store_url),
                      "Quim Sabater", sender)

        ctx = jobs.JobContext(settings=settings, db=db, tracker_db=tracker, catalogs=catalogs)
        jobs.install(ctx)
        try:
            assert await jobs.purge_expired_reporters() >= 1
        finally:
            jobs.uninstall(ctx)
        app_dump, tracker_dump = sqlite_dump(settings.database_url), sqlite_dump(settings.tracker_store_url)
        assert_no_trace(app_dump + tracker_dump, "Quim Sabater", "sprays graffiti", sender)
        assert ref in app_dump
    finally:
        db.dispose()
        tracker.dispose()


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def postgres_pair(postgres_admin: Engine) -> Iterator[tuple[str, str]]:
    """Two fresh schemas: the app database (migrated) and the tracker store."""
    from storage.migrate import upgrade_database

    for app_url in postgres_schema_url(postgres_admin):
        upgrade_database(app_url)
        for tracker_url in postgres_schema_url(postgres_admin):
            yield app_url, tracker_url


def pg_dump(url: str) -> str:
    parsed = make_url(url)
    schema = str(parsed.query["options"]).removeprefix("-csearch_path=")
    result = subprocess.run(
        ["pg_dump", "-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432), "-U", parsed.username or "postgres",
         "--data-only", "--inserts", "-n", schema, parsed.database or "test"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    return result.stdout


@pytest.mark.postgres
async def test_retention_purge_on_postgres_leaves_no_trace_in_pg_dump(
    postgres_pair: tuple[str, str], catalogs: Catalogs, tmp_path: Path
) -> None:
    app_url, tracker_url = postgres_pair
    settings = Settings(secret_key="x" * 32, database_url=app_url, tracker_store_url=tracker_url, retention_days=1)
    db, tracker = create_db_engine(app_url), create_db_engine(tracker_url)
    try:
        sender = f"telegram:{uuid.uuid4().int % 10**9}"
        words = "my neighbour Roc Puigdomènech breaks into cars on Carrer de Sants"
        with session_scope(db) as session:
            case = case_store.create_case(session=session, case_in=CaseCreate(
                sender_id=sender, channel="telegram", locale="ca", category="theft", description=words,
                address="Carrer de Sants 100", latitude=41.37512, longitude=2.13755, contact_mode="contact",
                contact_name=NAME, contact_phone="+34 612 345 678", neighbourhood_code="018",
            ))
            case_store.add_citizen_info(session=session, case=case, text="Roc drives a red Seat")
        finish(db, case, ago=timedelta(days=2))
        for words_said in (words, NAME, "+34 612 345 678", "Roc drives a red Seat"):
            say_in_tracker(tracker, sender, words_said)
        assert_stored(pg_dump(app_url) + pg_dump(tracker_url), "Roc Puigdomènech", "red Seat", sender)

        ctx = jobs.JobContext(settings=settings, db=db, tracker_db=tracker, catalogs=catalogs)
        jobs.install(ctx)
        try:
            assert await jobs.purge_expired_reporters() == 1
        finally:
            jobs.uninstall(ctx)
        app_dump, tracker_dump = pg_dump(app_url), pg_dump(tracker_url)
        assert_no_trace(app_dump + tracker_dump, "Roc", "Puigdom", "red Seat", "Carrer de Sants 100", sender)
        assert case.ref in app_dump
        with tracker.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM events")).scalar() == 0
    finally:
        db.dispose()
        tracker.dispose()
