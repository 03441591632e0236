"""The scheduler's leader lock, its persistent job store, two bot-service instances on one
PostgreSQL database, and the sweeps (escalation, follow-up, survey) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text, update
from sqlmodel import Session, col, select
from telegram import Bot

from bot import jobs
from bot.app import create_app
from bot.dispatch import DispatchDesk
from bot.keys import LEADERSHIP
from bot.notify import Notifier
from bot.scheduler import JOBSTORE_TABLE, LEADER_LEASE, Leadership
from common.i18n import Catalogs
from common.settings import Settings
from storage import reporters as reporter_store
from storage import users
from storage.db import create_db_engine, session_scope
from storage.followups import EVENT_ESCALATION_DISPATCHED
from storage.leases import acquire_lease, release_lease
from storage.migrate import alembic_config, upgrade_database
from storage.models import (
    EVENT_ESCALATED,
    EVENT_FOLLOW_UP_SENT,
    EVENT_SURVEY_SENT,
    Case,
    Lease,
    SurveyResponse,
    utcnow,
)
from storage.outbox import decode_payload
from tests.cases import move_case
from tests.conftest import free_port, make_settings
from tests.telegram_server import FakeTelegram
from tests.threads import at_once

# tests.scheduling holds shared fixtures (a plugin) and helpers: rewrite its asserts like a conftest's
pytest.register_assert_rewrite("tests.scheduling")
pytest_plugins = ("tests.scheduling",)
from tests.scheduling import TOKEN, events, fresh, new_case, outbox, postgres_schema_url, stored_jobs, wait_for  # noqa: E402

# --------------------------------------------------------------------------- the lease


def current_holder(*, session: Session, name: str, now: datetime | None = None) -> str | None:
    """Who holds ``name`` at ``now`` (``None`` when nobody or when the lease has expired), read
    straight from the table."""
    lease = session.exec(select(Lease).where(Lease.name == name)).first()
    if lease is None or lease.expires_at <= (now or utcnow()):
        return None
    return lease.holder


def test_lease_is_exclusive_and_taken_over_after_expiry(db: Engine) -> None:
    ttl = timedelta(seconds=10)
    t0 = utcnow()
    with Session(db) as session:
        assert acquire_lease(session=session, name="scheduler", holder="a", ttl=ttl, now=t0)
        assert not acquire_lease(session=session, name="scheduler", holder="b", ttl=ttl, now=t0 + timedelta(seconds=1))
        # renewing extends a's lease: b still fails after a's first expiry
        assert acquire_lease(session=session, name="scheduler", holder="a", ttl=ttl, now=t0 + timedelta(seconds=5))
        assert not acquire_lease(session=session, name="scheduler", holder="b", ttl=ttl, now=t0 + timedelta(seconds=11))
        assert current_holder(session=session, name="scheduler", now=t0 + timedelta(seconds=11)) == "a"
        # a stops renewing (crashed): after expiry b takes over, and a cannot come back
        assert acquire_lease(session=session, name="scheduler", holder="b", ttl=ttl, now=t0 + timedelta(seconds=16))
        assert not acquire_lease(session=session, name="scheduler", holder="a", ttl=ttl, now=t0 + timedelta(seconds=17))
        assert current_holder(session=session, name="scheduler", now=t0 + timedelta(seconds=17)) == "b"
        # releasing only works for the holder; then the lease is free at once
        assert not release_lease(session=session, name="scheduler", holder="a")
        assert release_lease(session=session, name="scheduler", holder="b")
        assert current_holder(session=session, name="scheduler") is None
        assert acquire_lease(session=session, name="scheduler", holder="a", ttl=ttl)
        # other names are independent locks
        assert acquire_lease(session=session, name="other", holder="b", ttl=ttl)


def test_only_one_of_many_simultaneous_claims_wins(db: Engine) -> None:
    holders = [f"holder-{n}" for n in range(8)]

    def claim(n: int) -> bool:
        with Session(db) as session:
            return acquire_lease(session=session, name="race", holder=holders[n], ttl=timedelta(seconds=30))

    results = at_once(claim, len(holders))
    assert [r for r in results if not isinstance(r, bool)] == []
    winners = [holder for holder, won in zip(holders, results, strict=True) if won is True]
    assert len(winners) == 1
    with Session(db) as session:
        assert current_holder(session=session, name="race") == winners[0]


# --------------------------------------------------------------------------- persistent jobs


async def test_jobs_persist_in_the_database_across_a_restart(settings: Settings, db: Engine,
                                                             context: jobs.JobContext) -> None:
    first = Leadership(settings, db, context)
    first.start()
    await wait_for(lambda: first.is_leader)
    sweeps = stored_jobs(db)
    assert set(sweeps) == set(jobs.SWEEPS)
    assert all(next_run > time.time() + 3000 for next_run in sweeps.values())  # every hour
    # a one-off job, due in a moment: the instance stops (as in a crash) before it runs
    assert first.scheduler is not None
    first.scheduler.add_job("bot.jobs:escalate_cases", "date", run_date=utcnow() + timedelta(seconds=1.5),
                            id="escalate-once")
    await first.stop()
    assert not first.is_leader
    assert "escalate-once" in stored_jobs(db)
    overdue = new_case(db, age=timedelta(minutes=5))

    await asyncio.sleep(1.6)  # the one-off job's time passes while nobody runs the scheduler
    second = Leadership(settings, db, context)  # another process, as after a restart
    second.start()
    try:
        await wait_for(lambda: second.is_leader)
        await wait_for(lambda: fresh(db, overdue).escalated_at is not None)  # the late job ran
        await wait_for(lambda: "escalate-once" not in stored_jobs(db))
        # the sweeps kept their schedule (not reset by the restart)
        assert {k: v for k, v in stored_jobs(db).items()} == sweeps
    finally:
        await second.stop()
    # a changed interval replaces the stored schedule
    faster = settings.model_copy(update={"sweep_interval_seconds": 60})
    third = Leadership(faster, db, context)
    third.start()
    try:
        await wait_for(lambda: third.is_leader)
        assert all(next_run < time.time() + 61 for next_run in stored_jobs(db).values())
    finally:
        await third.stop()


async def test_alembic_ignores_the_job_store_table(settings: Settings, db: Engine) -> None:
    from alembic import command

    from bot.scheduler import create_scheduler

    scheduler = create_scheduler(settings)
    scheduler.start(paused=True)  # creates its table
    try:
        with db.connect() as connection:
            assert connection.execute(text(f"SELECT count(*) FROM {JOBSTORE_TABLE}")).scalar() == 0
    finally:
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)
    command.check(alembic_config(settings.database_url))  # autogenerate sees no difference


async def test_a_stalled_leader_is_replaced_and_steps_down(settings: Settings, db: Engine,
                                                           context: jobs.JobContext) -> None:
    a = Leadership(settings, db, context)
    b = Leadership(settings, db, context)
    elected: list[str] = []
    deposed: list[str] = []
    for leadership in (a, b):
        leadership.on_elected.append(lambda holder=leadership.holder: _note(elected, holder))
        leadership.on_deposed.append(lambda holder=leadership.holder: _note(deposed, holder))
    a.start()
    await wait_for(lambda: a.is_leader)
    b.start()
    await asyncio.sleep(0.6)
    assert not b.is_leader and elected == [a.holder]
    # a freezes: its loop stops renewing, but it still believes it leads
    assert a._task is not None
    a._task.cancel()
    await wait_for(lambda: b.is_leader, timeout=settings.leader_lease_seconds + 3)
    assert a.is_leader  # not yet told
    await a.tick()  # a wakes up, finds the lease gone, stops its scheduler
    assert not a.is_leader and a.scheduler is None
    assert elected == [a.holder, b.holder] and deposed == [a.holder]
    a._task = None
    await a.stop()
    await b.stop()
    assert deposed == [a.holder, b.holder]
    with Session(db) as session:
        assert current_holder(session=session, name=LEADER_LEASE) is None  # b released it


async def _note(into: list[str], holder: str) -> None:
    into.append(holder)


# --------------------------------------------------------------------------- two instances


@pytest.fixture
def postgres_url(postgres_admin: Engine) -> Iterator[str]:
    for url in postgres_schema_url(postgres_admin):
        upgrade_database(url)
        yield url


@pytest.mark.postgres
async def test_two_bot_services_on_one_postgres_run_one_scheduler(tmp_path: Path, aiohttp_client: Any,
                                                                   postgres_url: str) -> None:
    db = create_db_engine(postgres_url)
    common = {
        "database_url": postgres_url, "leader_lease_seconds": 6, "leader_renew_seconds": 0.2,
        "sweep_interval_seconds": 1, "escalate_after_seconds": 30,
    }
    apps = []
    try:
        for name in ("one", "two"):
            folder = tmp_path / name
            folder.mkdir()
            settings = make_settings(folder, rasa_port=free_port(), actions_port=free_port(), **common)
            apps.append(await aiohttp_client(create_app(settings)))
        leaderships = [client.app[LEADERSHIP] for client in apps]
        await wait_for(lambda: any(ls.is_leader for ls in leaderships))
        await asyncio.sleep(1.0)  # several renewals later, still exactly one
        leaders = [ls for ls in leaderships if ls.is_leader]
        assert len(leaders) == 1
        leader = leaders[0]
        follower = next(ls for ls in leaderships if ls is not leader)
        assert follower.scheduler is None
        with Session(db) as session:
            assert current_holder(session=session, name=LEADER_LEASE) == leader.holder
        assert set(stored_jobs(db)) == set(jobs.SWEEPS)

        # the leader's sweeps run: an overdue case is escalated, once
        overdue = new_case(db, age=timedelta(minutes=2))
        await wait_for(lambda: fresh(db, overdue).escalated_at is not None, timeout=10)
        await asyncio.sleep(1.5)  # more sweeps
        assert len(events(db, overdue, EVENT_ESCALATED)) == 1

        # the leader's instance stops: the other one takes over (the lease was released)
        started = time.monotonic()
        await apps[leaderships.index(leader)].close()
        await wait_for(lambda: follower.is_leader, timeout=10)
        assert time.monotonic() - started < 4  # released: no need to wait 6 s for it to expire
        with Session(db) as session:
            assert current_holder(session=session, name=LEADER_LEASE) == follower.holder
        second = new_case(db, age=timedelta(minutes=2))
        await wait_for(lambda: fresh(db, second).escalated_at is not None, timeout=10)
        assert len(events(db, second, EVENT_ESCALATED)) == 1
        assert len(events(db, overdue, EVENT_ESCALATED)) == 1
    finally:
        for client in apps:
            await client.close()
        db.dispose()


# --------------------------------------------------------------------------- escalation


async def test_escalation_marks_overdue_new_cases_once(db: Engine, context: jobs.JobContext) -> None:
    normal_overdue = new_case(db, age=timedelta(seconds=61))
    normal_recent = new_case(db, age=timedelta(seconds=30))
    urgent_overdue = new_case(db, age=timedelta(seconds=6), priority="urgent")
    urgent_recent = new_case(db, priority="urgent")
    acknowledged = new_case(db, age=timedelta(seconds=61))
    with session_scope(db) as session:
        move_case(session, acknowledged, "acknowledged", actor="ana")

    assert await jobs.escalate_cases() == 2
    assert await jobs.escalate_cases() == 0  # a second run changes nothing
    for case in (normal_overdue, urgent_overdue):
        assert fresh(db, case).escalated_at is not None
        assert len(events(db, case, EVENT_ESCALATED)) == 1
    for case in (normal_recent, urgent_recent, acknowledged):
        assert fresh(db, case).escalated_at is None
        assert events(db, case, EVENT_ESCALATED) == []
    assert events(db, normal_overdue, EVENT_ESCALATION_DISPATCHED) == []  # no dispatch chat: mark only


async def test_escalated_cases_are_sent_again_to_the_dispatch_chat(db: Engine, context: jobs.JobContext,
                                                                    catalogs: Catalogs) -> None:
    group = -100_555
    async with FakeTelegram(strict_chats=False) as fake, \
            Bot(TOKEN, base_url=fake.base_url, base_file_url=fake.base_file_url) as bot:
        desk = DispatchDesk(bot, group, db, catalogs, context.settings, Notifier(db, catalogs, {}))
        jobs.install(jobs.JobContext(settings=context.settings, db=db, tracker_db=context.tracker_db,
                                     catalogs=catalogs, desk=desk))
        overdue = new_case(db, age=timedelta(seconds=90), priority="high")
        new_case(db, age=timedelta(seconds=10))
        assert await jobs.escalate_cases() == 1
        assert await jobs.escalate_cases() == 0
        sent = fake.sent_messages(group)
        assert len(sent) == 1
        assert sent[0]["text"].startswith("⏰ ESCALATED") and overdue.ref in sent[0]["text"]
        buttons = [b["callback_data"] for row in sent[0]["reply_markup"]["inline_keyboard"] for b in row]
        assert buttons == [f"desk:ack:{overdue.ref}", f"desk:take:{overdue.ref}"]
        [dispatched] = events(db, overdue, EVENT_ESCALATION_DISPATCHED)
        assert dispatched.text == f"telegram message {sent[0]['message_id']}"
        with session_scope(db) as session:  # the re-sent message's buttons act on its case too
            users.create_user(session=session, name="ana", role="dispatcher")
            users.link_telegram(session=session, name="ana", telegram_id=555)
        answer = await desk.on_button(f"desk:ack:{overdue.ref}", 555, sent[0]["message_id"])
        assert answer == f"{overdue.ref}: acknowledged by ana" and fresh(db, overdue).status == "acknowledged"

        # Telegram down: the case is marked, the re-announcement waits for the next sweep
        later = new_case(db, age=timedelta(seconds=90))
        await fake.stop()
        assert await jobs.escalate_cases() == 1
        assert fresh(db, later).escalated_at is not None
        assert events(db, later, EVENT_ESCALATION_DISPATCHED) == []


# --------------------------------------------------------------------------- follow-ups


async def test_follow_up_is_queued_once_in_the_reporters_language(db: Engine, context: jobs.JobContext) -> None:
    due = new_case(db, age=timedelta(seconds=31), locale="es")
    anonymous = new_case(db, age=timedelta(seconds=31), contact_mode="anonymous")
    recent = new_case(db, age=timedelta(seconds=5))
    resolved = new_case(db, age=timedelta(seconds=31))
    unreachable = new_case(db, age=timedelta(seconds=31), sender="telegram:42", channel="telegram")
    open311 = new_case(db, age=timedelta(seconds=31), channel="open311")
    with session_scope(db) as session:
        move_case(session, resolved, "resolved", actor="ana")
        reporter_store.set_reporter_unreachable(session=session, sender_id="telegram:42")

    assert await jobs.send_follow_ups() == 1
    assert await jobs.send_follow_ups() == 0
    [message] = outbox(db)
    assert message.kind == "follow_up" and message.dedupe_key == f"follow_up:{due.id}"
    assert message.case_id == due.id and message.reporter_id == due.reporter_id and message.channel == "web"
    text_, buttons = decode_payload(message.payload)
    assert due.ref in text_ and "nuevo" in text_.lower()  # status "new", in Spanish
    assert [payload for _, payload in buttons][0] == f'/add_case_info{{"case_ref":"{due.ref}"}}'
    assert len(events(db, due, EVENT_FOLLOW_UP_SENT)) == 1
    for case in (anonymous, recent, resolved, unreachable, open311):
        assert events(db, case, EVENT_FOLLOW_UP_SENT) == []


# --------------------------------------------------------------------------- surveys


async def test_survey_after_resolution_is_queued_once(db: Engine, context: jobs.JobContext) -> None:
    resolved_long_ago = new_case(db, locale="ca")
    resolved_now = new_case(db)
    anonymous = new_case(db, contact_mode="anonymous")
    still_open = new_case(db)
    with session_scope(db) as session:
        for case in (resolved_long_ago, resolved_now, anonymous):
            move_case(session, case, "resolved", actor="ana")
        session.execute(update(Case).where(col(Case.id).in_([resolved_long_ago.id, anonymous.id]))
                        .values(resolved_at=utcnow() - timedelta(seconds=11)))
        session.commit()

    assert await jobs.send_surveys() == 1
    assert await jobs.send_surveys() == 0
    [message] = outbox(db)
    assert message.kind == "survey" and message.dedupe_key == f"survey:{resolved_long_ago.id}"
    text_, buttons = decode_payload(message.payload)
    assert resolved_long_ago.ref in text_
    assert [title for title, _ in buttons] == ["Sí", "No"]  # Catalan
    with session_scope(db) as session:
        [survey] = session.exec(select(SurveyResponse)).all()
    assert survey.case_id == resolved_long_ago.id and survey.neighbourhood_code == "018"
    assert survey.answered_at is None and survey.satisfaction is None
    assert len(events(db, resolved_long_ago, EVENT_SURVEY_SENT)) == 1
    for case in (resolved_now, anonymous, still_open):
        assert events(db, case, EVENT_SURVEY_SENT) == []


def test_settings_delays_are_seconds_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", "x" * 32)
    monkeypatch.setenv("ESCALATE_AFTER_SECONDS", "2.5")
    monkeypatch.setenv("RETENTION_DAYS", "0.0001")
    settings = Settings()
    assert settings.escalate_after_seconds == 2.5
    assert settings.retention_days == 0.0001
    assert settings.escalate_urgent_after_seconds == 300 and settings.follow_up_after_seconds == 7 * 86400
    assert Settings(secret_key="x" * 32).leader_renew_seconds < Settings(secret_key="x" * 32).leader_lease_seconds
