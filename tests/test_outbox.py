"""The outbox worker (bot.outbox) for real: python-telegram-bot against the local Bot API server
(tests/telegram_server.py) enforcing Telegram's limits, the web chat through the real bot
service and WebSocket, and a worker process killed with SIGKILL in the middle of a fan-out on
PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.app import create_app
from bot.channels.telegram.channel import TelegramPusher
from bot.keys import CHANNELS, OUTBOXES
from bot.outbox import OutboxWorker, SendPacer, quiet_until
from common.settings import PROJECT_ROOT, Settings
from storage import outbox as store
from storage.alerts import delivery_report
from storage.db import create_db_engine, session_scope
from storage.migrate import upgrade_database
from storage.models import Alert, OutboxMessage, Reporter, utcnow
from tests.conftest import TEST_SECRET, free_port, make_settings
from tests.postgres import admin_engine, schema_url
from tests.telegram_server import FakeTelegram

MADRID = ZoneInfo("Europe/Madrid")
TOKEN = "123456:outbox-test-token"
NO_QUIET = {"quiet_hours_start": "00:00", "quiet_hours_end": "00:00"}


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Outbox:
    settings: Settings
    db: Engine
    fake: FakeTelegram

    def reporters(self, chats: list[int]) -> list[Reporter]:
        with session_scope(self.db) as session:
            reporters = [Reporter(channel="telegram", sender_id=f"telegram:{chat}", locale="es") for chat in chats]
            session.add_all(reporters)
        return reporters

    def alert(self, reporters: list[Reporter], text: str = "Corte de agua en el Raval", urgent: bool = False,
              not_before: datetime | None = None) -> uuid.UUID:
        with session_scope(self.db) as session:
            alert = Alert(created_by="community1", neighbourhood_codes='["01-01"]', texts='{"es": "x"}')
            session.add(alert)
            session.flush()
            alert_id = alert.id
        with session_scope(self.db) as session:
            store.enqueue(session=session, items=[
                store.OutgoingItem.to(r, dedupe_key=f"alert:{alert_id}:{r.id}", kind="alert", text=text,
                                      alert_id=alert_id, urgent=urgent, not_before=not_before)
                for r in reporters
            ])
        return alert_id

    def rows(self) -> list[OutboxMessage]:
        with session_scope(self.db) as session:
            return list(session.exec(select(OutboxMessage)).all())

    def counts(self) -> dict[str, int]:
        with session_scope(self.db) as session:
            return store.counts_by_status(session=session)

    def worker(self, clock: Callable[[], datetime] = utcnow, **overrides: Any) -> OutboxWorker:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        return OutboxWorker(db=self.db, settings=settings, channel="telegram", pusher=TelegramPusher(settings),
                            clock=clock)

    async def until_done(self, timeout: float = 60) -> dict[str, int]:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while True:
            counts = await asyncio.to_thread(self.counts)
            if counts["pending"] == counts["sending"] == 0:
                return counts
            if time.monotonic() > deadline:
                raise TimeoutError(f"outbox not drained: {counts}")
            await asyncio.sleep(0.2)


def outbox_settings(tmp: Path, fake: FakeTelegram, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"telegram_token": TOKEN, "telegram_api_url": fake.base_url, "outbox_poll_seconds": 0.2,
                              "outbox_retry_base_seconds": 0.5, **NO_QUIET, **overrides}
    return make_settings(tmp, **values)


@pytest.fixture
async def limited() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram(enforce_limits=True, strict_chats=False)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def outbox(tmp_path: Path, limited: FakeTelegram) -> Iterator[Outbox]:
    settings = outbox_settings(tmp_path, limited)
    upgrade_database(settings.database_url)
    db = create_db_engine(settings.database_url)
    yield Outbox(settings, db, limited)
    db.dispose()


async def stopped(worker: OutboxWorker, pusher_of: OutboxWorker | None = None) -> None:
    await worker.stop()
    pusher = worker.pusher
    assert isinstance(pusher, TelegramPusher)
    await pusher.stop()


# -- quiet hours and pacing, as plain functions -------------------------------------------------


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=MADRID)


def test_quiet_hours_span_midnight_in_the_deployment_zone() -> None:
    window = {"start": "22:00", "end": "08:00", "zone": MADRID}
    assert quiet_until(local(29, 23, 10), **window) == local(30, 8)
    assert quiet_until(local(29, 3, 0), **window) == local(29, 8)
    assert quiet_until(local(29, 22, 0), **window) == local(30, 8)
    assert quiet_until(local(29, 8, 0), **window) is None
    assert quiet_until(local(29, 21, 59), **window) is None
    assert quiet_until(local(29, 12, 0).astimezone(UTC), **window) is None
    assert quiet_until(local(29, 2, 0), start="01:00", end="06:00", zone=MADRID) == local(29, 6)
    assert quiet_until(local(29, 23, 0), start="00:00", end="00:00", zone=MADRID) is None
    # across the change to summer time (29 March 2026, 02:00 -> 03:00): still 08:00 local
    assert quiet_until(datetime(2026, 3, 28, 23, 0, tzinfo=MADRID), **window) == datetime(
        2026, 3, 29, 8, 0, tzinfo=MADRID)


async def test_pacer_spaces_sends_and_waits_per_chat() -> None:
    pacer = SendPacer(rate=50, per_chat_interval=0.3)
    started = time.monotonic()
    stamps: list[tuple[str, float]] = []
    for chat in ["a", "b", "c", "a", "d"]:
        await pacer.acquire(chat)
        stamps.append((chat, time.monotonic() - started))
    gaps = [b - a for (_, a), (_, b) in zip(stamps, stamps[1:], strict=False)]
    assert all(gap >= SendPacer.SPACING / 50 - 0.0005 for gap in gaps)  # no burst
    first_a, second_a = [t for chat, t in stamps if chat == "a"]
    assert second_a - first_a >= 0.29
    pacer.flood("d", 0.5)
    assert pacer.rate == pytest.approx(45) and pacer.margin == pytest.approx(SendPacer.MARGIN + SendPacer.MARGIN_STEP)
    before = time.monotonic()
    await pacer.acquire("e")
    assert time.monotonic() - before >= 0.45  # everybody waits out a 429


async def test_pacer_makes_up_for_late_wake_ups_without_ever_exceeding_the_rate() -> None:
    """A busy machine wakes every send a little late; the pacer still reaches 97% of the rate,
    and no sliding one-second window (what Telegram counts) holds more than 30 sends."""
    now = [1000.0]
    pacer = SendPacer(rate=30, per_chat_interval=1.0, monotonic=lambda: now[0])
    late = random.Random(15)
    stamps: list[float] = []
    for chat in range(3000):
        now[0] = max(now[0], pacer._earliest(str(chat))) + late.uniform(0, 0.004)  # woken 0-4 ms late
        await pacer.acquire(str(chat))
        stamps.append(now[0])
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert 0.97 * 30 <= rate <= 30
    start = 0
    for end, moment in enumerate(stamps):
        while moment - stamps[start] >= 1.0:
            start += 1
        assert end - start + 1 <= 30
    assert min(b - a for a, b in zip(stamps, stamps[1:], strict=False)) >= SendPacer.SPACING / 30  # no burst


async def test_a_slow_request_never_crowds_the_platforms_window() -> None:
    """The platform stamps a send when it arrives, anywhere between our sending it and its
    answer: with one request in ten taking up to 60 ms (far more than the margin), the window
    counted from the answers still never lets the platform count more than 30 in a second."""
    now = [1000.0]
    pacer = SendPacer(rate=30, per_chat_interval=1.0, monotonic=lambda: now[0])
    travel = random.Random(7)
    arrivals: list[float] = []
    for chat in range(600):
        now[0] = max(now[0], pacer._earliest(str(chat)))
        slot = await pacer.acquire(str(chat))
        took = travel.uniform(0, 0.06) if chat % 10 == 0 else 0.002
        arrivals.append(now[0] + took * travel.random())  # stamped somewhere on the way
        now[0] += took  # the answer
        pacer.answered(slot)
    ordered = sorted(arrivals)
    start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= 1.0:
            start += 1
        assert end - start + 1 <= 30
    # each slow request costs its own travel time, never a 429's whole second
    assert (len(ordered) - 1) / (ordered[-1] - ordered[0]) >= 0.94 * 30


# -- Telegram ------------------------------------------------------------------------------------


async def test_fan_out_reaches_every_chat_exactly_once_within_the_limits(outbox: Outbox) -> None:
    fake = outbox.fake
    chats = list(range(7001, 7241))  # 240 citizens
    reporters = outbox.reporters(chats)
    alert_id = outbox.alert(reporters)
    # 40 of them also get a status change: two messages to one chat, at least a second apart
    with session_scope(outbox.db) as session:
        store.enqueue(session=session, items=[
            store.OutgoingItem.to(r, dedupe_key=f"status:{r.id}", kind="status", text="Tu aviso está en curso.")
            for r in reporters[:40]
        ])
    fake.fail_next("sendMessage", 429, retry_after=1, times=2)  # flood control, twice
    fake.fail_next("sendMessage", 502)  # then a Bad Gateway
    worker = outbox.worker()
    started = time.monotonic()
    worker.start()
    try:
        counts = await outbox.until_done(timeout=90)
    finally:
        await stopped(worker)
    elapsed = time.monotonic() - started
    assert counts["sent"] == 280 and counts["failed"] == counts["unreachable"] == 0
    per_chat = fake.sends_per_chat()
    assert set(per_chat) == set(chats)
    assert all(per_chat[chat] == (2 if chat <= 7040 else 1) for chat in chats)
    assert fake.duplicates() == {}
    with session_scope(outbox.db) as session:
        assert delivery_report(session=session, alert_id=alert_id).as_dict() == {
            "sent": 240, "pending": 0, "failed": 0, "unreachable": 0, "cancelled": 0,
            "total": 240}
    # both injected 429s were waited out: in the retry_after second that follows, only the sends
    # already under way (at most OUTBOX_CONCURRENCY) went out, and that chat was not retried
    attempts = fake.calls_to("sendMessage")
    floods = [call for call in attempts if call.status == 429]
    assert len(floods) >= 2
    for flood in floods:
        within = [c for c in attempts if flood.time < c.time < flood.time + 0.95]
        assert len(within) <= outbox.settings.outbox_concurrency
        retry = [c.time for c in attempts if c.time > flood.time and c.params["chat_id"] == flood.params["chat_id"]]
        assert retry and retry[0] - flood.time >= 0.95
    # within Telegram's limits: 280 sends at 30/s take 9 s or more (plus the 429 pauses)
    assert elapsed >= 280 / 30 - 1
    assert fake.rate_limited <= 5, f"{fake.rate_limited} sends refused by the rate limits"
    for chat in chats[:40]:
        first, second = (m["time"] for m in fake.sent_messages(chat, "sendMessage"))
        assert second - first >= 0.99
    assert worker.stats["flood_waits"] >= 2 and worker.stats["retried"] >= 1


async def test_a_clean_stop_gives_back_what_was_claimed_and_not_tried(outbox: Outbox) -> None:
    chats = list(range(7501, 7601))
    outbox.alert(outbox.reporters(chats))
    worker = outbox.worker()
    worker.start()
    await outbox.fake.wait_until(lambda: len(outbox.fake.sent_messages()) >= 20, timeout=30)
    await stopped(worker)
    rows = outbox.rows()
    sent = len(outbox.fake.sent_messages())
    assert sum(row.status == "sent" for row in rows) == sent
    assert {row.status for row in rows} == {"sent", "pending"}  # nothing left claimed
    assert {row.attempts for row in rows if row.status == "pending"} == {0}
    successor = outbox.worker()
    successor.start()  # another instance takes over at once, no lease to wait for
    try:
        await outbox.until_done(timeout=30)
    finally:
        await stopped(successor)
    assert outbox.fake.sends_per_chat() == dict.fromkeys(chats, 1)


async def test_a_citizen_who_blocked_the_bot_is_tried_once_then_unreachable(outbox: Outbox) -> None:
    fake = outbox.fake
    reporters = outbox.reporters([8001, 8002, 8003])
    fake.block_user(8002)
    alert_id = outbox.alert(reporters)
    with session_scope(outbox.db) as session:  # a status change for the one who blocked the bot, later
        store.enqueue(session=session, items=[store.OutgoingItem.to(
            reporters[1], dedupe_key="status:8002", kind="status", text="Tu aviso está resuelto.",
            not_before=utcnow() + timedelta(seconds=2))])
    worker = outbox.worker()
    worker.start()
    try:
        await asyncio.sleep(3)
        await outbox.until_done()
    finally:
        await stopped(worker)
    assert [c.status for c in fake.calls_to("sendMessage") if c.params["chat_id"] == 8002] == [403]
    assert fake.sends_per_chat() == {8001: 1, 8003: 1}
    with session_scope(outbox.db) as session:
        assert session.get(Reporter, reporters[1].id).unreachable  # type: ignore[union-attr]
        assert delivery_report(session=session, alert_id=alert_id).as_dict() == {
            "sent": 2, "pending": 0, "failed": 0, "unreachable": 1, "cancelled": 0,
            "total": 3}
        blocked_rows = session.exec(select(OutboxMessage).where(OutboxMessage.reporter_id == reporters[1].id)).all()
        assert {(row.kind, row.status) for row in blocked_rows} == {("alert", "unreachable"), ("status", "unreachable")}


async def test_unknown_chat_fails_and_server_errors_give_up_after_max_attempts(tmp_path: Path) -> None:
    async with FakeTelegram(strict_chats=True) as fake:
        fake.add_user(9001)
        settings = outbox_settings(tmp_path, fake, outbox_max_attempts=3, outbox_retry_base_seconds=0.2)
        upgrade_database(settings.database_url)
        box = Outbox(settings, create_db_engine(settings.database_url), fake)
        reporters = box.reporters([9001, 9999])  # 9999 never talked to the bot
        fake.fail_next("sendMessage", 500, times=3)
        box.alert(reporters[:1])
        worker = box.worker()
        worker.start()
        try:
            await box.until_done(timeout=30)
            box.alert(reporters[1:], text="Otra alerta")
            await box.until_done(timeout=30)
        finally:
            await stopped(worker)
        rows = {row.reporter_id: row for row in box.rows()}
        assert (rows[reporters[0].id].status, rows[reporters[0].id].attempts) == ("failed", 3)
        assert "500" in (rows[reporters[0].id].last_error or "") or "Internal" in (rows[reporters[0].id].last_error or "")
        assert (rows[reporters[1].id].status, rows[reporters[1].id].attempts) == ("failed", 1)
        assert "chat not found" in (rows[reporters[1].id].last_error or "").lower()
        box.db.dispose()


async def test_quiet_hours_defer_until_morning_and_urgent_goes_at_once(outbox: Outbox) -> None:
    fake = outbox.fake
    clock = Clock(local(29, 23, 30).astimezone(UTC))
    calm, alarm = outbox.reporters([6001]), outbox.reporters([6002])
    outbox.alert(calm, text="Corte de agua mañana", not_before=clock.now)
    outbox.alert(alarm, text="Incendio: no salgáis de casa", urgent=True, not_before=clock.now)
    worker = outbox.worker(clock=clock, quiet_hours_start="22:00", quiet_hours_end="08:00")
    worker.start()
    try:
        await fake.wait_for_messages(6002, 1, timeout=10)
        await asyncio.sleep(1.0)  # several claim rounds
        assert fake.sends_per_chat() == {6002: 1}
        deferred = next(row for row in outbox.rows() if row.kind == "alert" and not row.urgent)
        assert deferred.status == "pending" and deferred.not_before == local(30, 8).astimezone(UTC)
        clock.now = local(30, 7, 59).astimezone(UTC)
        worker.wake()
        await asyncio.sleep(0.8)
        assert fake.sends_per_chat() == {6002: 1}  # still night
        clock.now = local(30, 8, 0).astimezone(UTC)
        worker.wake()
        await fake.wait_for_messages(6001, 1, timeout=10)
    finally:
        await stopped(worker)
    assert fake.sends_per_chat() == {6001: 1, 6002: 1}


# -- web chat ------------------------------------------------------------------------------------


async def test_web_chat_alerts_arrive_live_and_on_the_next_visit(tmp_path: Path, aiohttp_client: Any) -> None:
    settings = make_settings(tmp_path, rasa_port=free_port(), actions_port=free_port(), **NO_QUIET)
    upgrade_database(settings.database_url)
    db = create_db_engine(settings.database_url)
    client = await aiohttp_client(create_app(settings))
    app = client.server.app
    webchat = app[CHANNELS]["web"]
    box = Outbox(settings, db, None)  # type: ignore[arg-type]

    def web_reporter(sender_id: str) -> Reporter:
        with session_scope(db) as session:
            reporter = Reporter(channel="web", sender_id=sender_id, locale="ca")
            session.add(reporter)
        return reporter

    def web_alert(reporter: Reporter, text: str) -> None:
        with session_scope(db) as session:
            store.enqueue(session=session, items=[store.OutgoingItem.to(
                reporter, dedupe_key=f"alert:{text}:{reporter.id}", kind="alert", text=text,
                buttons=[("Deixar de rebre alertes", "/unsubscribe_alerts")])])

    # connected: the alert is pushed live
    ws = await client.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello", "session": None, "locale": "ca-ES"})
    online = (await ws.receive_json(timeout=5))["sender"]
    here = web_reporter(online)
    web_alert(here, "Tall d'aigua al Raval")
    app[OUTBOXES].wake("web")
    frame = await ws.receive_json(timeout=5)
    assert frame == {"type": "message", "text": "Tall d'aigua al Raval", "kind": "alert", "request": None,
                     "buttons": [{"title": "Deixar de rebre alertes", "payload": "/unsubscribe_alerts"}]}

    # away: it waits, and arrives right after the welcome of the next visit
    away_sender, away_token = webchat.tokens.issue()
    away = web_reporter(away_sender)
    web_alert(away, "Tall de llum a Gràcia")
    app[OUTBOXES].wake("web")
    await asyncio.sleep(1.0)
    assert {row.reporter_id: row.status for row in box.rows()}[away.id] == "pending"
    visit = await client.ws_connect("/webchat/ws")
    await visit.send_json({"type": "hello", "session": away_token, "locale": "ca-ES"})
    assert (await visit.receive_json(timeout=5))["type"] == "welcome"
    frame = await visit.receive_json(timeout=5)
    assert (frame["type"], frame["text"], frame["kind"]) == ("message", "Tall de llum a Gràcia", "alert")
    for _ in range(50):  # recorded right after the frame went out
        statuses = {row.reporter_id: row.status for row in box.rows()}
        if statuses[away.id] == "sent":
            break
        await asyncio.sleep(0.1)
    assert statuses == {here.id: "sent", away.id: "sent"}
    # nothing twice: a reconnection brings nothing new
    await visit.close()
    again = await client.ws_connect("/webchat/ws")
    await again.send_json({"type": "hello", "session": away_token, "locale": "ca-ES"})
    assert (await again.receive_json(timeout=5))["type"] == "welcome"
    with pytest.raises(asyncio.TimeoutError):
        await again.receive_json(timeout=1.5)
    for socket in (ws, again):
        await socket.close()
    db.dispose()


# -- a worker killed in the middle of a fan-out (PostgreSQL) -----------------------------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    admin = admin_engine()
    try:
        yield from schema_url(admin, "barri_outbox")
    finally:
        admin.dispose()


def start_worker_process(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SECRET_KEY": TEST_SECRET,
        "DATABASE_URL": settings.database_url,
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": settings.telegram_api_url,
        "OUTBOX_LEASE_SECONDS": str(settings.outbox_lease_seconds),
        "OUTBOX_POLL_SECONDS": "0.2",
        "QUIET_HOURS_START": "00:00",
        "QUIET_HOURS_END": "00:00",
    }
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bot.outbox"], env=env, cwd=PROJECT_ROOT, stdout=out,
                                stderr=subprocess.STDOUT)


@pytest.mark.postgres
async def test_worker_killed_mid_fan_out_resumes_without_duplicates_or_losses(
    tmp_path: Path, limited: FakeTelegram, postgres_url: str
) -> None:
    fake = limited
    settings = outbox_settings(tmp_path, fake, database_url=postgres_url, outbox_lease_seconds=3)
    upgrade_database(postgres_url)
    db = create_db_engine(postgres_url)
    box = Outbox(settings, db, fake)
    chats = list(range(5001, 5151))  # 150 citizens
    alert_id = box.alert(box.reporters(chats))
    log = tmp_path / "worker.log"
    first = start_worker_process(settings, log)
    try:
        await fake.wait_until(lambda: sum(fake.sends_per_chat().values()) >= 60, timeout=60, what="60 sends")
        # freeze Telegram with one send in flight, then kill -9 the worker
        fake.hold("sendMessage")
        await fake.wait_until(lambda: fake.parked >= 1, timeout=10, what="a send in flight")
        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, 10)
        in_flight = [row for row in box.rows() if row.status == "sending"]
        assert in_flight, "the worker died holding claimed rows"
        await asyncio.sleep(0.3)
        fake.release()
        await fake.wait_until(lambda: fake.dropped_requests >= 1, timeout=10, what="the orphan request dropped")
        before_restart = sum(fake.sends_per_chat().values())
        assert 60 <= before_restart < 150
        second = start_worker_process(settings, log)
        try:
            counts = await box.until_done(timeout=60)
        finally:
            second.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(second.wait, 15) == 0
    finally:
        if first.poll() is None:
            first.kill()
    assert counts["sent"] == 150, log.read_text()[-3000:]
    assert fake.sends_per_chat() == dict.fromkeys(chats, 1)  # nobody twice, nobody skipped
    assert fake.duplicates() == {}
    with session_scope(db) as session:
        assert delivery_report(session=session, alert_id=alert_id).sent == 150
    db.dispose()
