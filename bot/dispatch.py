"""New cases reach the dispatchers' Telegram group at once, with buttons to acknowledge or take.

Cases are created by the action server, another process, so the bot service watches the
database for cases not yet announced; each announcement is recorded on the case, so a
restart never announces a case twice or skips one.

An announcement holds only the reference, the category, the neighbourhood, urgency and a link
to the case in the desk: never the citizen's words, address, time or photos. A group message
cannot be taken back reliably (Telegram lets a bot delete it only for 48 hours; members may
have forwarded or copied it, and phones showed it in notifications), so erasure and retention
could not reach what it said: the details stay in the desk, behind sign-in and audit.

The buttons act only for group members linked to a dispatcher's or admin's account (``barri
user link-telegram NAME TELEGRAM_ID``), only with the two known actions, and only on the case
of the message they are under; the change is recorded, and audited, in that staff account's name.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import TelegramError

from bot.notify import Notifier
from bot.tasks import cancel_and_wait
from common.i18n import N_, Catalogs
from common.responses import CATEGORY_LABELS
from common.settings import Settings
from storage import followups, users
from storage.db import run_storage
from storage.desk import CaseChange, IllegalTransition, update_case
from storage.errors import StorageError
from storage.models import Case, utcnow

log = logging.getLogger(__name__)

DESK_PREFIX = "desk:"
LOOK_BACK = timedelta(days=2)
DESK_CASE_PATH = "/desk/cases/"  # the case's page in the dispatcher desk (bot.dashboard)
ACTIONS = ("ack", "take")
ACTORS = ("dispatcher", "admin")  # staff roles that may change cases


def dispatch_text(case: Case, catalogs: Catalogs, settings: Settings) -> str:
    """The announcement: what a dispatcher needs to pick the case up, nothing about the citizen
    (plain text: Telegram shows it inert), in DISPATCH_LOCALE."""
    locale = settings.dispatch_language
    mark = "🚨 " + catalogs.gettext(N_("URGENT"), locale) + " · " if case.priority == "urgent" else "🆕 "
    lines = [f"{mark}{case.ref} · {catalogs.gettext(CATEGORY_LABELS.get(case.category, 'Other'), locale)}",
             f"📍 {case.neighbourhood_name or '?'}"]
    if settings.public_url:
        lines.append(f"{settings.public_url.rstrip('/')}{DESK_CASE_PATH}{case.ref}")
    return "\n".join(lines)


def dispatch_buttons(ref: str, catalogs: Catalogs, locale: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[
        InlineKeyboardButton("✅ " + catalogs.gettext(N_("Acknowledge"), locale),
                             callback_data=f"{DESK_PREFIX}ack:{ref}"),
        InlineKeyboardButton("🙋 " + catalogs.gettext(N_("Take"), locale), callback_data=f"{DESK_PREFIX}take:{ref}"),
    ]])


class ButtonRefused(Exception):
    """A dispatch-group button press that changes nothing; the message says why."""


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
        await cancel_and_wait(self._task)

    async def _watch(self) -> None:
        while True:
            try:
                await self.announce_new_cases()
            except (StorageError, TelegramError) as error:
                log.warning("dispatch: will retry: %s", type(error).__name__)
            await asyncio.sleep(self.interval)

    async def announce_new_cases(self) -> int:
        sent = 0
        for case in await run_storage(self.db, followups.cases_to_announce, since=utcnow() - LOOK_BACK):
            message = await self.bot.send_message(
                self.chat_id, dispatch_text(case, self.catalogs, self.settings),
                reply_markup=self._buttons(case.ref),
            )
            await run_storage(self.db, followups.mark_dispatched, case_id=case.id, message_id=message.message_id,
                              now=utcnow())
            sent += 1
        return sent

    async def announce_escalated(self, case: Case, waited_minutes: int) -> int:
        """Send a case nobody acknowledged in time again, marked as escalated; returns the
        Telegram message id (the caller records it on the case)."""
        head = "⏰ " + self._("ESCALATED · still new after {minutes} min, nobody has acknowledged it",
                             minutes=waited_minutes)
        message = await self.bot.send_message(
            self.chat_id, head + "\n" + dispatch_text(case, self.catalogs, self.settings),
            reply_markup=self._buttons(case.ref),
        )
        return message.message_id

    async def on_button(self, data: str, telegram_id: int, message_id: int) -> str:
        """Acknowledge or take a case from the group; returns the answer shown to the presser.

        Refused: a member not linked to a dispatcher's or admin's account, an unknown action,
        and a reference other than the case announced in the message ``message_id`` (the
        callback data comes from the member's app and can be forged)."""
        action, _, ref = data.removeprefix(DESK_PREFIX).partition(":")

        def apply(*, session: Session) -> tuple[Case, str | None, str]:
            if action not in ACTIONS:
                raise ButtonRefused(self._("Unknown action: nothing was changed."))
            staff = users.user_for_telegram(session=session, telegram_id=telegram_id)
            if staff is None or staff.role not in ACTORS:
                raise ButtonRefused(self._("Only dispatchers may use these buttons. An admin can link your "
                                           "Telegram account (id {id}) to yours with: "
                                           "barri user link-telegram NAME {id}", id=telegram_id))
            case = followups.case_of_dispatch_message(session=session, message_id=message_id)
            if case is None or case.ref != ref:
                raise ButtonRefused(self._("This button does not belong to that case: nothing was changed."))
            change = CaseChange(status="acknowledged") if action == "ack" else CaseChange(assignee=staff.name)
            if action == "take" and case.status == "new":
                change.status = "acknowledged"
            return update_case(session=session, case=case, change=change, actor=staff.name), change.status, \
                staff.name

        try:
            case, new_status, who = await run_storage(self.db, apply)
        except ButtonRefused as refused:
            log.warning("dispatch: a button was refused (%s)", "unknown action" if action not in ACTIONS
                        else "not a linked dispatcher or not this message's case")
            return str(refused)
        except IllegalTransition as problem:
            return str(problem)
        if new_status:
            await self.notifier.case_changed(case, new_status=new_status, public_note=None)
        if action == "ack":
            return self._("{ref}: acknowledged by {name}", ref=case.ref, name=who)
        return self._("{ref}: taken by {name}", ref=case.ref, name=who)
