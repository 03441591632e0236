"""Telling citizens what happened to their reports, on the channel they used, in their
language, and recording it on the case. Status changes and public notes go through the outbox
(``storage.outbox``, sent by ``bot.outbox``); a dispatcher's live chat goes at once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from sqlalchemy import Engine

from bot.channels.base import Channel, OutgoingMessage
from common.i18n import N_, Catalogs
from common.responses import STATUS_LABELS
from storage.db import run_storage
from storage.desk import reachable_reporter, record_citizen_notification
from storage.models import OUTBOX_STATUS, Case, utcnow
from storage.outbox import OutgoingItem, enqueue

log = logging.getLogger(__name__)

STATUS_UPDATE = N_("Your report {ref} is now {status}.")
FROM_DISPATCHER = N_("Dispatcher (report {ref}): {text}")
BACK_TO_ASSISTANT = N_("The dispatcher has closed the conversation about report {ref}. You are talking with the assistant again.")
PUBLIC_NOTE = N_("Message from the dispatchers about your report {ref}: {note}")


class Notifier:
    def __init__(self, db: Engine, catalogs: Catalogs, channels: Mapping[str, Channel],
                 wake: Callable[[str], None] | None = None) -> None:
        self._db = db
        self._catalogs = catalogs
        self._channels = channels
        self._wake = wake  # tells the channel's outbox worker that a row is waiting

    async def case_changed(self, case: Case, *, new_status: str | None, public_note: str | None) -> str:
        """Queue the news for the reporter in the outbox (quiet hours, rate limits and retries
        apply there); returns the outcome recorded on the case."""
        if new_status is None and not public_note:
            return "nothing to tell"
        if case.contact_mode == "anonymous":
            return "not sent: the citizen chose no contact"
        reporter = await run_storage(self._db, reachable_reporter, case=case)
        if reporter is None:
            return "not sent: the citizen's data was erased"
        locale = case.locale
        texts = []
        if new_status is not None:
            status = self._catalogs.gettext(STATUS_LABELS.get(new_status, new_status), locale)
            texts.append(self._catalogs.gettext(STATUS_UPDATE, locale, ref=case.ref, status=status))
        if public_note:
            texts.append(self._catalogs.gettext(PUBLIC_NOTE, locale, ref=case.ref, note=public_note))
        if case.channel not in self._channels:
            outcome = f"not sent: the {case.channel} channel is not running"
        else:
            # one row per change of the case: a repeated call for the same change adds nothing
            stamp = (case.updated_at or utcnow()).isoformat()
            item = OutgoingItem(
                reporter_id=reporter.id, channel=case.channel, kind=OUTBOX_STATUS, text="\n\n".join(texts),
                dedupe_key=f"status:{case.id}:{stamp}:{new_status or 'note'}", case_id=case.id,
            )
            await run_storage(self._db, enqueue, items=[item])
            if self._wake is not None:
                self._wake(case.channel)
            outcome = "queued"
        what = "status " + new_status if new_status else "public note"
        await run_storage(self._db, record_citizen_notification, case_id=case.id, channel=case.channel,
                          outcome=outcome, what=what)
        return outcome

    async def chat(self, case: Case, text: str | None) -> str:
        """A dispatcher's live message (or, with None, the hand-back notice) to the citizen."""
        reporter = await run_storage(self._db, reachable_reporter, case=case)
        channel = self._channels.get(case.channel)
        if reporter is None or channel is None:
            return "not sent: the citizen cannot be reached"
        message = (self._catalogs.gettext(FROM_DISPATCHER, case.locale, ref=case.ref, text=text) if text
                   else self._catalogs.gettext(BACK_TO_ASSISTANT, case.locale, ref=case.ref))
        delivered = await channel.respond(reporter.sender_id, [OutgoingMessage(text=message)])
        return "delivered" if delivered else "not delivered (citizen not reachable now)"
