"""The scheduler, run by exactly one bot-service instance: the leader.

Design: every bot-service instance runs a ``Leadership`` loop that tries to take or renew a
lease named "scheduler" in the app's database (``storage.leases``: one atomic statement on
SQLite and PostgreSQL). The instance holding it starts an APScheduler ``AsyncIOScheduler``
whose jobs live in a persistent ``SQLAlchemyJobStore`` in the same database (table
``apscheduler_jobs``, not one of ours: Alembic ignores it), so they survive restarts and
crashes. An instance that stops renewing (stopped, crashed, cut off from the database) is
replaced by another within ``leader_lease_seconds``; one that finds it has lost the lease
shuts its scheduler down at once.

Why a leader lock in the database rather than a separate ``barri scheduler`` process: the
database is already the one thing every instance shares, so no new service, deployment unit
or health check is needed, and the scheduler cannot be forgotten or run twice by mistake;
failover is automatic. The jobs are idempotent sweeps (``bot.jobs``), so the short overlap
possible while a stalled leader notices it lost the lease sends nobody anything twice.

Other parts that must run on one instance only (the outbox's Telegram sender) register
``on_elected`` / ``on_deposed`` hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot import jobs
from bot.tasks import cancel_and_wait
from common.settings import Settings
from storage.db import create_db_engine, run_storage
from storage.errors import StorageError
from storage.leases import acquire_lease, new_holder_id, release_lease

log = logging.getLogger(__name__)

LEADER_LEASE = "scheduler"
JOBSTORE_TABLE = "apscheduler_jobs"

Hook = Callable[[], Awaitable[None]]


def create_scheduler(settings: Settings) -> AsyncIOScheduler:
    """A scheduler on the persistent job store (its own engine: the store disposes it on shutdown)."""
    store = SQLAlchemyJobStore(engine=create_db_engine(settings.database_url), tablename=JOBSTORE_TABLE)
    return AsyncIOScheduler(
        jobstores={"default": store},
        # after downtime a sweep runs once, however late (the sweeps catch up by themselves)
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=UTC,
    )


def sync_sweeps(scheduler: AsyncIOScheduler, settings: Settings) -> None:
    """Make the stored sweep jobs match the settings, keeping their schedule when unchanged."""
    interval = timedelta(seconds=settings.sweep_interval_seconds)
    for job_id, function in jobs.SWEEPS.items():
        stored = scheduler.get_job(job_id)
        trigger = stored.trigger if stored is not None else None
        if isinstance(trigger, IntervalTrigger) and trigger.interval == interval:
            continue  # keep its next run time across restarts
        scheduler.add_job(
            f"{function.__module__}:{function.__name__}",
            IntervalTrigger(seconds=interval.total_seconds(), timezone=UTC),
            id=job_id, name=job_id, replace_existing=True,
        )


class Leadership:
    """Keeps trying to be the leader; runs the scheduler (and the hooks) while it is."""

    def __init__(
        self,
        settings: Settings,
        db: Engine,
        context: jobs.JobContext,
        *,
        holder: str | None = None,
        on_elected: list[Hook] | None = None,
        on_deposed: list[Hook] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.context = context
        self.holder = holder or new_holder_id()
        self.on_elected: list[Hook] = list(on_elected or [])
        self.on_deposed: list[Hook] = list(on_deposed or [])
        self.scheduler: AsyncIOScheduler | None = None
        self._task: asyncio.Task[None] | None = None
        self._renewed_at = 0.0  # monotonic time of the last successful renewal

    @property
    def is_leader(self) -> bool:
        return self.scheduler is not None

    @property
    def _ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.leader_lease_seconds)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scheduler-leadership")

    async def stop(self) -> None:
        """Stop trying; if leader, stop the scheduler and give the lease up for a successor."""
        await cancel_and_wait(self._task)
        self._task = None
        if self.is_leader:
            await self._step_down()
            try:
                await self._release()
            except (StorageError, SQLAlchemyError) as error:
                log.warning("could not release the scheduler lease (it will expire): %s", type(error).__name__)

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # keep the loop alive: a leader that stops renewing is replaced
                log.exception("scheduler leadership round failed")
            await asyncio.sleep(self.settings.leader_renew_seconds)

    async def tick(self) -> None:
        """One round: take or renew the lease, then start or stop the scheduler to match."""
        try:
            won = await run_storage(self.db, acquire_lease, name=LEADER_LEASE, holder=self.holder, ttl=self._ttl)
        except (StorageError, SQLAlchemyError) as error:
            log.warning("scheduler lease: database error: %s", type(error).__name__)
            # without news from the database, the lease is ours only until it would expire
            # (minus one renewal interval of margin); after that someone else may hold it
            margin = self.settings.leader_lease_seconds - self.settings.leader_renew_seconds
            won = self.is_leader and time.monotonic() - self._renewed_at < margin
        else:
            if won:
                self._renewed_at = time.monotonic()
        if won and not self.is_leader:
            await self._take_over()
        elif not won and self.is_leader:
            log.warning("lost the scheduler lease: stopping the scheduler")
            await self._step_down()

    async def _release(self) -> None:
        await run_storage(self.db, release_lease, name=LEADER_LEASE, holder=self.holder)

    async def _take_over(self) -> None:
        log.info("this instance is now the scheduler leader")
        jobs.install(self.context)
        scheduler = create_scheduler(self.settings)
        try:
            scheduler.start(paused=True)  # the store is open; nothing runs before the sync
            sync_sweeps(scheduler, self.settings)
            scheduler.resume()
        except SQLAlchemyError as error:
            log.warning("scheduler could not start, will retry: %s", type(error).__name__)
            if scheduler.running:
                scheduler.shutdown(wait=False)
                await asyncio.sleep(0)
            jobs.uninstall(self.context)
            with contextlib.suppress(StorageError, SQLAlchemyError):
                await self._release()
            return
        self.scheduler = scheduler
        for hook in self.on_elected:
            await self._call(hook)

    async def _step_down(self) -> None:
        for hook in self.on_deposed:
            await self._call(hook)
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down on the loop's next turn
        jobs.uninstall(self.context)

    @staticmethod
    async def _call(hook: Hook) -> None:
        try:
            await hook()
        except Exception:  # a broken hook must not stop the scheduler or the lease loop
            log.exception("scheduler leadership hook failed")
