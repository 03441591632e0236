"""New cases reach the dispatchers' Telegram group at once, with buttons to acknowledge or take.

Cases are created by the action server, another process, so the bot service watches the
database for cases not yet announced; each announcement is recorded on the case, so a
restart never announces a case twice or skips one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import col, select
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import TelegramError

from bot.i18n import N_, Catalogs, format_when
from bot.notify import Notifier
from bot.settings import Settings
from dialogues.actions.responses import CATEGORY_LABELS
from storage import cases as case_store
from storage.cases import _add_event, _atomic
from storage.db import session_scope
from storage.desk import CaseChange, IllegalTransition, update_case
from storage.errors import StorageError
from storage.models import Attachment, Case, CaseEvent, utcnow

log = logging.getLogger(__name__)

EVENT_DISPATCHED = "dispatched"
DESK_PREFIX = "desk:"
LOOK_BACK = timedelta(days=2)
MAX_DESCRIPTION = 600


def undispatched_cases(db: Engine) -> list[Case]:
    with session_scope(db) as session:
        announced = select(CaseEvent.case_id).where(CaseEvent.kind == EVENT_DISPATCHED)
        query = (
            select(Case)
            .where(col(Case.created_at) >= utcnow() - LOOK_BACK, col(Case.id).not_in(announced))
            .order_by((col(Case.priority) == "urgent").desc(), col(Case.created_at))
        )
        return list(session.exec(query).all())


def mark_dispatched(db: Engine, case: Case, message_id: int) -> None:
    with session_scope(db) as session, _atomic(session):
        _add_event(session, case_id=case.id, kind=EVENT_DISPATCHED, actor="system", at=utcnow(),
                   text=f"telegram message {message_id}")


def dispatch_text(case: Case, photos: int, catalogs: Catalogs, settings: Settings) -> str:
    """The structured announcement (plain text: Telegram shows citizen text inert)."""
    locale = settings.dispatch_language
    place = case.address or (f"{case.latitude:.5f}, {case.longitude:.5f}" if case.latitude is not None else "?")
    if case.neighbourhood_name:
        place = f"{place} ({case.neighbourhood_name})"
    when = format_when(case.occurred_at, locale, settings.zone) if case.occurred_at else "?"
    description = (case.description or "")[:MAX_DESCRIPTION]
    mark = "🚨 " + catalogs.gettext(N_("URGENT"), locale) + " · " if case.priority == "urgent" else "🆕 "
    head = f"{mark}{case.ref} · {catalogs.gettext(CATEGORY_LABELS.get(case.category, 'Other'), locale)}"
    return "\n".join([head, f"📍 {place}", f"🕒 {when}", f"📷 {photos}", "", description])


def dispatch_buttons(ref: str, catalogs: Catalogs, locale: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[
        InlineKeyboardButton("✅ " + catalogs.gettext(N_("Acknowledge"), locale),
                             callback_data=f"{DESK_PREFIX}ack:{ref}"),
        InlineKeyboardButton("🙋 " + catalogs.gettext(N_("Take"), locale), callback_data=f"{DESK_PREFIX}take:{ref}"),
    ]])


class DispatchDesk:
    """Announces new cases to the dispatch group and acts on its buttons."""

    def __init__(self, bot: Bot, chat_id: int, db: Engine, catalogs: Catalogs, settings: Settings,
                 notifier: Notifier, interval: float = 2.0) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.db = db
        self.catalogs = catalogs
        self.settings = settings
        self.notifier = notifier
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def _(self, message: str, **values: object) -> str:
        return self.catalogs.gettext(message, self.settings.dispatch_language, **values)

    def _buttons(self, ref: str) -> InlineKeyboardMarkup:
        return dispatch_buttons(ref, self.catalogs, self.settings.dispatch_language)

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="dispatch-desk")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            try:
                await self.announce_new_cases()
            except (StorageError, TelegramError) as error:
                log.warning("dispatch: will retry: %s", type(error).__name__)
            await asyncio.sleep(self.interval)

    async def announce_new_cases(self) -> int:
        sent = 0
        for case in await asyncio.to_thread(undispatched_cases, self.db):
            photos = await asyncio.to_thread(self._photo_count, case)
            message = await self.bot.send_message(
                self.chat_id, dispatch_text(case, photos, self.catalogs, self.settings),
                reply_markup=self._buttons(case.ref),
            )
            await asyncio.to_thread(mark_dispatched, self.db, case, message.message_id)
            sent += 1
        return sent

    async def announce_escalated(self, case: Case, waited_minutes: int) -> int:
        """Send a case nobody acknowledged in time again, marked as escalated; returns the
        Telegram message id (the caller records it on the case)."""
        photos = await asyncio.to_thread(self._photo_count, case)
        head = "⏰ " + self._("ESCALATED · still new after {minutes} min, nobody has acknowledged it",
                             minutes=waited_minutes)
        message = await self.bot.send_message(
            self.chat_id, head + "\n" + dispatch_text(case, photos, self.catalogs, self.settings),
            reply_markup=self._buttons(case.ref),
        )
        return message.message_id

    def _photo_count(self, case: Case) -> int:
        with session_scope(self.db) as session:
            return len(session.exec(select(Attachment.id).where(Attachment.case_id == case.id)).all())

    async def on_button(self, data: str, who: str) -> str:
        """Acknowledge or take a case from the group; returns the answer shown to the presser."""
        action, _, ref = data.removeprefix(DESK_PREFIX).partition(":")
        change = CaseChange(status="acknowledged") if action == "ack" else CaseChange(assignee=who)
        if action == "take":
            change.status = None

        def apply() -> Case | None:
            with session_scope(self.db) as session:
                case = case_store.get_case_by_ref(session=session, ref=ref)
                if case is None:
                    return None
                if action == "take" and case.status == "new":
                    change.status = "acknowledged"
                return update_case(session=session, case=case, change=change, actor=who)

        try:
            case = await asyncio.to_thread(apply)
        except IllegalTransition as problem:
            return str(problem)
        if case is None:
            return self._("no case {ref}", ref=ref)
        if change.status:
            await self.notifier.case_changed(case, new_status=change.status, public_note=None)
        if action == "ack":
            return self._("{ref}: acknowledged by {name}", ref=case.ref, name=who)
        return self._("{ref}: taken by {name}", ref=case.ref, name=who)
