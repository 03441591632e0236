"""The scheduler's jobs: periodic sweeps over the database.

Jobs are kept in a persistent job store (``bot.scheduler``), which stores a job as a
reference to a module-level function ("bot.jobs:escalate_cases"), never as a pickled object.
So the jobs take no arguments: they find what they need (settings, database engines,
catalogs, the dispatch desk) in the ``JobContext`` installed here when this instance becomes
the leader, and removed when it stops being one.

Each sweep is idempotent (see ``storage.followups``): running it twice, or again after a
crash part-way, sends nobody anything twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from telegram.error import TelegramError

from bot.dispatch import LOOK_BACK, DispatchDesk
from common import outreach
from common.i18n import Catalogs
from common.settings import Settings
from storage import alerts, erasure, followups, whatsapp
from storage import attachments as attachment_store
from storage.db import run_storage
from storage.errors import StorageError
from storage.models import OUTBOX_FOLLOW_UP, OUTBOX_SURVEY, Case, Reporter, utcnow
from storage.outbox import OutgoingItem
from storage.tracker import conversation_last_active, erase_conversation, idle_conversations

log = logging.getLogger(__name__)


class JobsNotReady(RuntimeError):
    """A job ran in a process that has no job context (it is not the leader)."""


@dataclass(frozen=True)
class JobContext:
    """What the jobs need, set once by the bot service when it becomes the leader."""

    settings: Settings
    db: Engine
    tracker_db: Engine  # the engine's tracker store (settings.tracker_store_url)
    catalogs: Catalogs
    desk: DispatchDesk | None = None  # None when no dispatch chat is configured


_context: JobContext | None = None


def install(context: JobContext) -> None:
    global _context
    _context = context


def uninstall(context: JobContext | None = None) -> None:
    """Remove the context (only ``context`` if given, so a stale leader cannot remove a new one's)."""
    global _context
    if context is None or _context is context:
        _context = None


def current() -> JobContext:
    if _context is None:
        raise JobsNotReady("the job context is not installed (this instance is not the leader)")
    return _context


# --------------------------------------------------------------------------- escalation


async def escalate_cases() -> int:
    """Mark cases still ``new`` past their deadline as escalated (the dashboard highlights them)
    and send them to the dispatch chat again. Returns how many were escalated now."""
    ctx = current()
    s = ctx.settings

    escalated = await run_storage(ctx.db, followups.escalate_overdue, now=utcnow(),
                                  after=timedelta(seconds=s.escalate_after_seconds),
                                  urgent_after=timedelta(seconds=s.escalate_urgent_after_seconds))
    if escalated:
        log.info("escalated %d case(s)", escalated)
    if ctx.desk is not None:
        await _dispatch_escalations(ctx, ctx.desk)
    return escalated


async def _dispatch_escalations(ctx: JobContext, desk: DispatchDesk) -> None:
    for case in await run_storage(ctx.db, followups.escalations_to_dispatch, since=utcnow() - LOOK_BACK):
        waited = int((utcnow() - case.created_at).total_seconds() // 60)
        try:
            message_id = await desk.announce_escalated(case, waited)
        except TelegramError as error:
            log.warning("escalation not sent to the dispatch chat, next sweep retries: %s", type(error).__name__)
            return
        await run_storage(ctx.db, followups.mark_escalation_dispatched, case_id=case.id, message_id=message_id,
                          now=utcnow())


# --------------------------------------------------------------------------- follow-ups


def _follow_up_item(ctx: JobContext, case: Case, reporter: Reporter) -> OutgoingItem:
    text, buttons = outreach.follow_up_message(ctx.catalogs, reporter.locale, case_ref=case.ref, status=case.status)
    return OutgoingItem.to(reporter, dedupe_key=f"follow_up:{case.id}", kind=OUTBOX_FOLLOW_UP, text=text,
                           buttons=buttons, case_id=case.id)


async def send_follow_ups() -> int:
    """Queue, for each open case filed ``follow_up_after_seconds`` ago, its status and an
    "Add information" button to its reporter (not anonymous, reachable). Returns how many."""
    ctx = current()
    after = timedelta(seconds=ctx.settings.follow_up_after_seconds)

    now = utcnow()
    sent = 0
    for case, reporter in await run_storage(ctx.db, followups.follow_ups_due, now=now, after=after):
        item = _follow_up_item(ctx, case, reporter)
        sent += await run_storage(ctx.db, followups.record_follow_up, case_id=case.id, item=item, now=now)
    if sent:
        log.info("queued %d follow-up(s)", sent)
    return sent


# --------------------------------------------------------------------------- surveys


def _survey_item(ctx: JobContext, case: Case, reporter: Reporter) -> OutgoingItem:
    text, buttons = outreach.survey_opening(ctx.catalogs, reporter.locale, case_ref=case.ref)
    return OutgoingItem.to(reporter, dedupe_key=f"survey:{case.id}", kind=OUTBOX_SURVEY, text=text,
                           buttons=buttons, case_id=case.id)


async def send_surveys() -> int:
    """Queue the satisfaction survey of cases resolved ``survey_delay_seconds`` ago."""
    ctx = current()
    s = ctx.settings

    now = utcnow()
    sent = 0
    due = await run_storage(ctx.db, followups.surveys_due, now=now, delay=timedelta(seconds=s.survey_delay_seconds),
                            window=timedelta(seconds=s.survey_window_seconds))
    for case, reporter in due:
        item = _survey_item(ctx, case, reporter)
        sent += await run_storage(ctx.db, followups.record_survey, case=case, item=item, now=now)
    if sent:
        log.info("queued %d survey(s)", sent)
    return sent


# --------------------------------------------------------------------------- retention


async def _erase_quiet(ctx: JobContext, senders: list[tuple[str, bool]], cutoff: datetime) -> int:
    """Erase each sender's engine conversation and, unless kept (``True``: they follow alerts),
    their personal data; skip whoever spoke to the assistant after ``cutoff`` (the clock
    restarts). How many were erased. The conversation goes first: if the second step fails,
    the reporter row (and so the sender id) is still there for the next sweep to retry both."""
    erased = 0
    for sender_id, keep_reporter in senders:
        try:
            last_active = await asyncio.to_thread(conversation_last_active, tracker=ctx.tracker_db,
                                                  sender_id=sender_id)
            if last_active is not None and last_active > cutoff:
                continue
            await asyncio.to_thread(erase_conversation, engine=ctx.tracker_db, sender_id=sender_id)
            if not keep_reporter:
                await run_storage(ctx.db, erasure.erase_reporter, sender_id=sender_id)
        except (StorageError, SQLAlchemyError) as error:
            log.warning("retention: could not erase, next sweep retries: %s", type(error).__name__)
            continue
        erased += 1
    return erased


async def purge_expired_reporters() -> int:
    """Erase the personal data of reporters whose last case closed ``retention_days`` ago:
    contact details, photos, their words on the cases, live-chat transcripts, queued messages
    and their conversation in the engine's tracker store. Anonymised case facts stay."""
    ctx = current()
    retention = timedelta(days=ctx.settings.retention_days)

    now = utcnow()
    due = await run_storage(ctx.db, followups.reporters_past_retention, now=now, retention=retention)
    erased = await _erase_quiet(ctx, [(sender_id, False) for sender_id in due], now - retention)
    if erased:
        await run_storage(ctx.db, followups.record_retention_purge, erased=erased)
        log.info("retention: erased %d reporter(s)", erased)
    return erased


async def purge_stale_attachments() -> int:
    """Delete photos sent for reports that were never filed, ``pending_photos_max_age_seconds``
    after they arrived (a photo that waits longer is not coming into a case any more)."""
    ctx = current()
    older_than = timedelta(seconds=ctx.settings.pending_photos_max_age_seconds)

    purged = await run_storage(ctx.db, attachment_store.purge_stale_pending_attachments, older_than=older_than)
    if purged:
        log.info("retention: deleted %d photo(s) of reports never filed", purged)
    return purged


async def purge_idle_conversations() -> int:
    """Erase the engine conversations of visitors who never filed a case and have said nothing
    for ``retention_days``: what they typed into an abandoned report (names, phones, addresses)
    must not stay forever. Their reporter row goes too, unless they follow neighbourhood
    alerts (the subscription is what they asked to keep). Reporters with cases are left to
    ``purge_expired_reporters``."""
    ctx = current()
    retention = timedelta(days=ctx.settings.retention_days)

    cutoff = utcnow() - retention
    idle = await asyncio.to_thread(idle_conversations, tracker=ctx.tracker_db, before=cutoff)
    visitors = await run_storage(ctx.db, followups.visitors_without_cases, sender_ids=idle)
    erased = await _erase_quiet(ctx, visitors[:followups.BATCH], cutoff)
    if erased:
        await run_storage(ctx.db, followups.record_conversations_purge, erased=erased)
        log.info("retention: erased %d idle conversation(s) without a case", erased)
    return erased


async def purge_idle_whatsapp_numbers() -> int:
    """Delete the phone numbers of WhatsApp citizens who are no reporter (or no longer one)
    and have not written for ``retention_days`` (reporters' numbers go with their data)."""
    ctx = current()
    before = utcnow() - timedelta(days=ctx.settings.retention_days)

    purged = await run_storage(ctx.db, whatsapp.purge_idle_contacts, before=before)
    if purged:
        log.info("retention: deleted %d idle WhatsApp number(s)", purged)
    return purged


# --------------------------------------------------------------------------- alerts


async def expire_alerts() -> int:
    """Withdraw what is still unsent of alerts past their expiry (the outbox worker also skips
    them when it claims rows; this keeps the delivery reports right)."""
    ctx = current()

    withdrawn = await run_storage(ctx.db, alerts.expire_due_alerts)
    if withdrawn:
        log.info("alerts: %d unsent message(s) of expired alerts withdrawn", withdrawn)
    return withdrawn


# job id -> function; bot.scheduler runs each every ``sweep_interval_seconds``
SWEEPS = {
    "escalate_cases": escalate_cases,
    "send_follow_ups": send_follow_ups,
    "send_surveys": send_surveys,
    "purge_expired_reporters": purge_expired_reporters,
    "purge_stale_attachments": purge_stale_attachments,
    "purge_idle_conversations": purge_idle_conversations,
    "purge_idle_whatsapp_numbers": purge_idle_whatsapp_numbers,
    "expire_alerts": expire_alerts,
}
