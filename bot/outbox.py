"""The outbox worker: sends the rows of ``storage.outbox`` one channel at a time.

One ``OutboxWorker`` per channel and process:

* **Telegram** runs on one instance (the scheduler leader; the app starts and stops it). It
  keeps under Telegram's limits with a sliding window of sends (``OUTBOX_RATE_PER_SECOND`` in any
  second, no burst; see ``SendPacer``) and a next-allowed time per chat
  (``OUTBOX_PER_CHAT_INTERVAL_SECONDS``); a 429 pauses every send for its ``retry_after``,
  slows the rate down by a tenth (it recovers slowly), and the row waits
  ``retry_after`` without losing an attempt. 5xx and network errors back off exponentially, up
  to ``OUTBOX_MAX_ATTEMPTS``; a citizen who blocked the bot (403) makes the row and every other
  row waiting for them ``unreachable``; a refused request (400, "chat not found") is ``failed``.
* **WhatsApp** runs like Telegram, on the leader, with its own limits
  (``WHATSAPP_RATE_PER_SECOND``, ``WHATSAPP_PER_USER_INTERVAL_SECONDS``); its pair rate limit
  holds back only that citizen (``DeliveryOutcome.recipient_only``), and the platform's message
  id is recorded on the row for its delivery reports (``bot.channels.whatsapp``).
* **Web chat** runs on every instance and only claims rows of the citizens whose socket is open
  on this instance; the rest wait, and ``flush`` delivers them when the citizen connects again.

Quiet hours (``QUIET_HOURS_START``-``QUIET_HOURS_END`` in ``TIME_ZONE``): no non-urgent row is
sent. Telegram rows are deferred (``not_before`` moves to the end of the quiet hours, never
dropped); a web-chat citizen who has the chat open gets only urgent rows live, but one who opens
the chat at night gets what waited for them: they came to read it, nothing wakes them.

Crash safety: a row is claimed with a lease (the claim counts as an attempt; a row held so
long that its lease nears its end, waiting out flood control, is renewed first, which also
checks it is still this worker's), and it is marked sent right after the platform took it. If
the process dies, rows left ``sending`` are claimable again once their lease expires, so nobody
is skipped, and rows only claimed, not yet tried, are never sent twice. The one window left: a
request the platform accepted while the process died before recording it is sent again after
the restart (Telegram has no idempotency key). It holds the sends in flight at the moment of the
kill: at most ``OUTBOX_CONCURRENCY``, in practice rate x (latency + one UPDATE), well under one
message against a local server and about one against api.telegram.org.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.channels.base import Button, DeliveryOutcome, OutgoingMessage
from bot.observability import Metrics
from bot.tasks import cancel_and_wait
from common.logs import configure_logging
from common.settings import Settings
from storage import outbox as store
from storage.db import create_db_engine, run_storage
from storage.errors import StorageError
from storage.models import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

DB_ERRORS = (SQLAlchemyError, StorageError)
# the metric's result label of a delivery outcome (status, whether Telegram asked to wait)
SEND_RESULTS = {("sent", False): "sent", ("retry", True): "429", ("unreachable", False): "403",
                ("retry", False): "retry", ("failed", False): "failed", ("offline", False): "offline"}


class Pusher(Protocol):
    async def push(self, sender_id: str, message: OutgoingMessage) -> DeliveryOutcome: ...


# -- quiet hours --------------------------------------------------------------------------------


def quiet_until(now: datetime, *, start: str, end: str, zone: ZoneInfo) -> datetime | None:
    """The end (aware UTC) of the quiet hours ``now`` falls in, or None outside them.

    ``start``/``end`` are local times of day ("22:00", "08:00"); equal values mean none.
    """
    begin, finish = dt_time.fromisoformat(start), dt_time.fromisoformat(end)
    if begin == finish:
        return None
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if begin < finish:  # e.g. 01:00-06:00, within one day
        if not begin <= clock < finish:
            return None
        day = local.date()
    elif clock >= begin:  # e.g. 22:00-08:00 and it is 23:10: ends tomorrow
        day = local.date() + timedelta(days=1)
    elif clock < finish:  # ... and it is 03:00: ends today
        day = local.date()
    else:
        return None
    return datetime.combine(day, finish, tzinfo=zone).astimezone(UTC)


# -- pacing -------------------------------------------------------------------------------------


class SendPacer:
    """Telegram's limits, kept from this side: at most ``rate`` sends in any second, and one
    send per ``per_chat_interval`` per chat.

    The rate is a sliding window like the one Telegram counts: a send waits until the one
    ``rate`` sends before it is a full window (plus ``MARGIN`` for jitter on the way) in the
    past. On top of that, sends are never closer than ``SPACING``/rate (no burst). A plain
    token bucket that schedules each send from the previous one loses every millisecond the
    event loop wakes late (about 4% of 30/s on a busy machine, and it never catches up); here
    a late send is made up by the next ones, a little each, while no window ever holds more
    than ``rate`` sends. A 429 pauses everything for ``retry_after``, lowers the rate by a
    tenth (down to a quarter) and widens the margin (the jitter was larger than thought); each
    second without one gives back 2% of the configured rate and narrows the margin again."""

    MARGIN = 0.02  # seconds added to each window: what arrives a little late must not crowd the next
    MARGIN_STEP, MARGIN_MAX = 0.025, 0.2  # a 429 widens the margin (jitter was larger than thought) ...
    MARGIN_DECAY = 0.002  # ... and each second without one narrows it again by this much
    SPACING = 0.8  # of 1/rate: the closest two sends may be while catching up

    def __init__(self, rate: float, per_chat_interval: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.configured = rate
        self.rate = rate
        self.per_chat_interval = per_chat_interval
        self._monotonic = monotonic
        self._window_sends = max(1, int(rate))
        # the last sends, oldest first: when each was sent, then answered (``answered``)
        self._recent: deque[list[float]] = deque(maxlen=self._window_sends)
        self._paused_until = 0.0
        self._next_for_chat: dict[str, float] = {}
        self._last_flood = 0.0
        self._last_recovery = 0.0
        self.margin = self.MARGIN
        self._lock = asyncio.Lock()

    def _recover(self, now: float) -> None:
        elapsed = now - max(self._last_flood, self._last_recovery)
        if elapsed >= 1.0 and (self.rate < self.configured or self.margin > self.MARGIN):
            self.rate = min(self.configured, self.rate + self.configured * 0.02 * elapsed)
            self.margin = max(self.MARGIN, self.margin - self.MARGIN_DECAY * elapsed)
            self._last_recovery = now

    def _earliest(self, chat: str) -> float:
        earliest = max(self._paused_until, self._next_for_chat.get(chat, 0.0))
        if self._recent:
            earliest = max(earliest, self._recent[-1][0] + self.SPACING / self.rate)
        if len(self._recent) == self._window_sends:  # the window is full: wait for its oldest to leave
            earliest = max(earliest, self._recent[0][0] + self._window_sends / self.rate + self.margin)
        return earliest

    async def acquire(self, chat: str) -> list[float]:
        """Wait until both the rate and ``chat`` allow one more send, and take it; the send's
        slot is for ``answered``."""
        while True:
            async with self._lock:
                now = self._monotonic()
                self._recover(now)
                wait = self._earliest(chat) - now
                if wait <= 0:
                    slot = [now]
                    self._recent.append(slot)
                    self._next_for_chat[chat] = now + self.per_chat_interval
                    if len(self._next_for_chat) > 10_000:
                        self._next_for_chat = {k: v for k, v in self._next_for_chat.items() if v > now}
                    return slot
            await asyncio.sleep(wait)

    def answered(self, slot: list[float]) -> None:
        """The platform answered the last send: its window counts from now. The platform stamped
        it on arrival, somewhere between taking it and answering, so a window counted from the
        answer can never hold more than ``rate`` of its stamps however late a request travels
        (counted from the send, one slow request drew a 429 that cost a whole second)."""
        slot[0] = max(slot[0], self._monotonic())

    def hold(self, chat: str, seconds: float) -> None:
        """Nothing more to ``chat`` for ``seconds`` (a per-recipient limit); the rest goes on."""
        now = self._monotonic()
        self._next_for_chat[chat] = max(self._next_for_chat.get(chat, 0.0), now + seconds)

    def flood(self, chat: str, retry_after: float) -> None:
        now = self._monotonic()
        self._paused_until = max(self._paused_until, now + retry_after)
        self._next_for_chat[chat] = max(self._next_for_chat.get(chat, 0.0), now + retry_after)
        self.rate = max(self.configured / 4, self.rate * 0.9)
        self.margin = min(self.MARGIN_MAX, self.margin + self.MARGIN_STEP)
        self._last_flood = now


# -- the worker ---------------------------------------------------------------------------------


class OutboxWorker:
    """Claims due rows of one channel in small batches and sends them (see the module docstring).

    ``recipients`` (web chat) limits the claims to the citizens connected here. ``clock`` is
    the wall clock (quiet hours, ``not_before``); tests inject one.
    """

    def __init__(
        self,
        *,
        db: Engine,
        settings: Settings,
        channel: str,
        pusher: Pusher,
        clock: Clock = utcnow,
        recipients: Callable[[], Collection[str]] | None = None,
        pace: bool = True,
        metrics: Metrics | None = None,
        rate_per_second: float | None = None,
        per_chat_interval: float | None = None,
    ) -> None:
        self.metrics = metrics
        self.db = db
        self.settings = settings
        self.channel = channel
        self.pusher = pusher
        self.clock = clock
        self.recipients = recipients
        # the channel's own limits where given (WhatsApp's differ from Telegram's)
        self.pacer = (SendPacer(rate_per_second or settings.outbox_rate_per_second,
                                settings.outbox_per_chat_interval_seconds if per_chat_interval is None
                                else per_chat_interval)
                      if pace else None)
        self.owner = f"{socket.gethostname()[:24]}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease = settings.outbox_lease_seconds
        self._queue: asyncio.Queue[store.ClaimedMessage] = asyncio.Queue()
        self._held: set[uuid.UUID] = set()  # claimed by this worker, not finished
        self._lease_ends: dict[uuid.UUID, float] = {}  # monotonic time each held row's lease runs out
        self._kick = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._senders: list[asyncio.Task[None]] = []
        self._active = 0  # sends under way
        self._none_active = asyncio.Event()
        self._none_active.set()
        self._last_defer = 0.0
        self.stats = {"sent": 0, "retried": 0, "flood_waits": 0, "failed": 0, "unreachable": 0}

    # lifecycle ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._stopping = False
        self._senders = [asyncio.create_task(self._sender(), name=f"outbox-{self.channel}-send")
                         for _ in range(self.settings.outbox_concurrency)]
        self._task = asyncio.create_task(self._run(), name=f"outbox-{self.channel}")

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Stop claiming, let the sends in flight finish (up to ``timeout``), give back the rest."""
        if self._task is None:
            return
        self._stopping = True
        self._kick.set()
        # not cancelled mid-claim: rows claimed by a thread the loop no longer waits for would
        # stay claimed until their lease expires
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout)
        await cancel_and_wait(self._task)
        while not self._queue.empty():  # claimed, never tried: give them back at once
            self._queue.get_nowait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none_active.wait(), timeout=timeout)
        for task in self._senders:
            task.cancel()
        for task in self._senders:
            await cancel_and_wait(task)
        self._task, self._senders = None, []
        held, self._held = list(self._held), set()
        self._lease_ends.clear()
        if held:
            try:
                await run_storage(self.db, store.release, message_ids=held, owner=self.owner)
            except DB_ERRORS:
                log.warning("outbox %s: could not give back %d rows; their lease will expire", self.channel, len(held))
        log.info("outbox %s: stopped (%s); %d claimed rows given back", self.channel,
                 ", ".join(f"{key} {value}" for key, value in self.stats.items()), len(held))

    def wake(self) -> None:
        """Look for due rows now (something was just enqueued)."""
        self._kick.set()

    # the claim loop -----------------------------------------------------------------------------
    async def _run(self) -> None:
        batch = self.settings.outbox_batch_size
        while not self._stopping:
            self._kick.clear()
            room = batch - len(self._held)
            claimed = 0
            if room >= max(1, batch // 2):
                try:
                    claimed = await self._claim(room)
                except DB_ERRORS:
                    log.warning("outbox %s: database unavailable; retrying", self.channel)
            if claimed and claimed == room:
                continue  # probably more due: top up as soon as there is room
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout=self.settings.outbox_poll_seconds)

    async def _claim(self, limit: int) -> int:
        now = self.clock()
        until = quiet_until(now, start=self.settings.quiet_hours_start, end=self.settings.quiet_hours_end,
                            zone=self.settings.zone)
        sender_ids: list[str] | None = None
        if self.recipients is not None:
            sender_ids = [s for s in self.recipients() if s]
            if not sender_ids:
                return 0
        elif until is not None and time.monotonic() - self._last_defer >= self.settings.outbox_poll_seconds:
            moved = await run_storage(self.db, store.defer_non_urgent, channel=self.channel, until=until)
            self._last_defer = time.monotonic()
            if moved:
                log.info("outbox %s: quiet hours, %d messages wait until %s", self.channel, moved, until.isoformat())
        claiming = time.monotonic()
        rows = await run_storage(self.db, store.claim_due, channel=self.channel, owner=self.owner,
                                 lease_seconds=self.lease, limit=limit, now=now, sender_ids=sender_ids,
                                 urgent_only=until is not None)
        for row in rows:
            self._held.add(row.id)
            self._lease_ends[row.id] = claiming + self.lease
            self._queue.put_nowait(row)
        return len(rows)

    async def _sender(self) -> None:
        while True:
            row = await self._queue.get()
            self._active += 1
            self._none_active.clear()
            done = False
            try:
                done = await self._deliver(row) != "stopped"
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one row stop the worker; its lease will expire
                log.exception("outbox %s: unexpected error while sending a row", self.channel)
                done = True
            finally:
                self._active -= 1
                if not self._active:
                    self._none_active.set()
                if done:  # otherwise stop() gives it back
                    self._held.discard(row.id)
                    self._lease_ends.pop(row.id, None)
                self._kick.set()

    # one row ------------------------------------------------------------------------------------
    async def flush(self, sender_id: str) -> int:
        """Deliver now whatever is due for one citizen (web chat: they just connected)."""
        delivered = 0
        while True:
            claiming = time.monotonic()
            try:
                rows = await run_storage(self.db, store.claim_due, channel=self.channel, owner=self.owner,
                                         lease_seconds=self.lease, limit=20, now=self.clock(), sender_ids=[sender_id])
            except DB_ERRORS:
                log.warning("outbox %s: database unavailable; the live loop will retry", self.channel)
                return delivered
            if not rows:
                return delivered
            for row in rows:
                self._held.add(row.id)
                self._lease_ends[row.id] = claiming + self.lease
                outcome = await self._deliver(row)
                if outcome == "stopped":
                    return delivered  # stop() gives the rest back
                delivered += outcome == "sent"
                self._held.discard(row.id)
                self._lease_ends.pop(row.id, None)

    async def _deliver(self, row: store.ClaimedMessage) -> str:
        """Send one claimed row and record the outcome; returns the outcome's status."""
        slot = await self.pacer.acquire(row.sender_id) if self.pacer is not None else None
        if self._stopping:
            return "stopped"  # not tried: given back by stop()
        if time.monotonic() > self._lease_ends.get(row.id, 0.0) - self.lease / 3:  # held long (flood waits)
            renewing = time.monotonic()
            if not await run_storage(self.db, store.renew_lease, message_id=row.id, owner=self.owner,
                                     lease_seconds=self.lease, now=self.clock()):
                return "lost"  # the lease ran out meanwhile and another worker has the row
            self._lease_ends[row.id] = renewing + self.lease
        buttons = tuple(Button(title, payload) for title, payload in row.buttons)
        message = OutgoingMessage(text=row.text, buttons=buttons, custom={"kind": row.kind})
        outcome = await self.pusher.push(row.sender_id, message)
        if self.pacer is not None and slot is not None:
            self.pacer.answered(slot)
        attempts = row.attempts
        if self.metrics is not None:
            self.metrics.sends.labels(self.channel, SEND_RESULTS.get(
                (outcome.status, outcome.retry_after is not None), outcome.status)).inc()
        if outcome.status == "sent":
            await self._record_sent(row.id, outcome.platform_id or None)
            self.stats["sent"] += 1
        elif outcome.status == "retry" and outcome.retry_after is not None:
            self.stats["flood_waits"] += 1
            if self.pacer is not None and outcome.recipient_only:
                self.pacer.hold(row.sender_id, outcome.retry_after)
            elif self.pacer is not None:
                self.pacer.flood(row.sender_id, outcome.retry_after)
            await run_storage(self.db, store.retry_later, message_id=row.id, owner=self.owner, count_attempt=False,
                              not_before=self.clock() + timedelta(seconds=outcome.retry_after), error=outcome.error)
        elif outcome.status == "retry" and attempts < self.settings.outbox_max_attempts:
            self.stats["retried"] += 1
            delay = min(self.settings.outbox_retry_max_seconds,
                        self.settings.outbox_retry_base_seconds * 2 ** (attempts - 1))
            await run_storage(self.db, store.retry_later, message_id=row.id, owner=self.owner,
                              not_before=self.clock() + timedelta(seconds=delay), error=outcome.error)
        elif outcome.status == "retry" or outcome.status == "failed":
            self.stats["failed"] += 1
            log.warning("outbox %s: a %s message failed after %d attempts: %s", self.channel, row.kind, attempts,
                        outcome.error)
            await run_storage(self.db, store.mark_failed, message_id=row.id, owner=self.owner,
                              error=outcome.error or "failed")
        elif outcome.status == "unreachable":
            self.stats["unreachable"] += 1
            await run_storage(self.db, store.mark_unreachable, message_id=row.id, owner=self.owner,
                              error=outcome.error or "blocked")
        else:  # offline: nothing was tried; it waits for the citizen's next visit
            await run_storage(self.db, store.retry_later, message_id=row.id, owner=self.owner, not_before=self.clock(),
                              count_attempt=False)
        return outcome.status

    async def _record_sent(self, message_id: uuid.UUID, platform_id: str | None = None) -> None:
        """Mark sent, insisting: until this commits, a crash would send the row again."""
        delay = 0.2
        deadline = time.monotonic() + self.lease / 2
        while True:
            try:
                await run_storage(self.db, store.mark_sent, message_id=message_id, now=self.clock(),
                                  platform_message_id=platform_id)
                return
            except DB_ERRORS:
                if time.monotonic() > deadline:
                    log.error("outbox %s: a sent message could not be recorded; it may be sent again", self.channel)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


class Outboxes:
    """This process's workers by channel: the app's handle to wake them after an enqueue."""

    def __init__(self) -> None:
        self.workers: dict[str, OutboxWorker] = {}

    def wake(self, channel: str | None = None) -> None:
        for name, worker in self.workers.items():
            if channel is None or name == channel:
                worker.wake()

    async def stop(self) -> None:
        for worker in self.workers.values():
            await worker.stop()


# -- a standalone Telegram outbox worker (a dedicated process, and the benchmark) ---------------


async def run_telegram_worker(settings: Settings) -> None:
    """Send the Telegram outbox until SIGTERM/SIGINT (then stop cleanly)."""
    from bot.channels.telegram.channel import TelegramPusher

    db = create_db_engine(settings.database_url)
    pusher = TelegramPusher(settings)
    worker = OutboxWorker(db=db, settings=settings, channel="telegram", pusher=pusher)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    worker.start()
    log.info("outbox worker %s started", worker.owner)
    try:
        await stopped.wait()
    finally:
        await worker.stop()
        await pusher.stop()
        db.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the Telegram outbox worker (settings from the environment).")
    parser.parse_args(argv)
    settings = Settings()
    configure_logging("INFO", settings)  # secrets redacted, httpx quiet (its URLs carry the token)
    asyncio.run(run_telegram_worker(settings))


if __name__ == "__main__":
    main()
