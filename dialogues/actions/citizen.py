"""Everything else a citizen can ask for: emergencies, the status of their own reports,
a person, another language, and erasing their data."""

from __future__ import annotations

import re

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from common.i18n import format_when
from common.responses import CATEGORY_LABELS, STATUS_LABELS
from dialogues.actions.base import BarriAction, latest_entities, latest_text
from storage import attachments as attachment_store
from storage import cases as case_store
from storage import erasure
from storage.desk import set_live
from storage.errors import StorageError
from storage.refs import normalise_ref

_DASHED_REF = re.compile(r"\b([0-9A-Za-z]{3})-([0-9A-Za-z]{3})\b")
_PLAIN_REF = re.compile(r"\b([0-9A-Za-z]{3})\s?([0-9A-Za-z]{3})\b")


def find_ref(text: str, entity: object) -> str | None:
    """A case reference from the entity, else from the text: "K7Q-4M2" as written, or six
    characters without the dash when they hold a digit (so ordinary words are not taken)."""
    if entity:
        ref = normalise_ref(str(entity))
        if ref:
            return ref
    for pattern, needs_digit in ((_DASHED_REF, False), (_PLAIN_REF, True)):
        for match in pattern.finditer(text):
            candidate = match.group(1) + match.group(2)
            if needs_digit and not any(ch.isdigit() for ch in candidate):
                continue
            ref = normalise_ref(candidate)
            if ref:
                return ref
    return None


class ActionEmergency(BarriAction):
    """112 first; the report, if the citizen wants one, will be marked urgent."""

    def name(self) -> str:
        return "action_emergency"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        self.say(dispatcher, tracker, "utter_emergency")
        return [SlotSet("urgent", True)]


class ActionCheckStatus(BarriAction):
    """The status of the citizen's own reports: never of someone else's."""

    def name(self) -> str:
        return "action_check_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        text = latest_text(tracker)
        ref = find_ref("" if text.startswith("/") else text, latest_entities(tracker).get("case_ref"))
        try:
            if ref:
                case = await self.in_db(case_store.get_case_for_sender, ref=ref, sender_id=tracker.sender_id)
                if case is None:
                    self.say(dispatcher, tracker, "utter_status_not_found", ref=ref)
                else:
                    await self._tell(dispatcher, tracker, case)
                return []
            cases = await self.in_db(case_store.list_cases_for_sender, sender_id=tracker.sender_id)
        except StorageError:
            return self.storage_failed(dispatcher, tracker, "read cases")
        if not cases:
            self.say(dispatcher, tracker, "utter_status_none")
        elif len(cases) == 1:
            await self._tell(dispatcher, tracker, cases[0])
        else:
            buttons = [
                {
                    "title": f"{case.ref} · {self.t(tracker, CATEGORY_LABELS.get(case.category, 'Other'))}",
                    "payload": f'/check_status{{"case_ref":"{case.ref}"}}',
                }
                for case in cases
            ]
            self.say(dispatcher, tracker, "utter_status_choose", buttons=buttons)
        return []

    async def _tell(self, dispatcher: CollectingDispatcher, tracker: Tracker, case) -> None:  # noqa: ANN001
        locale = self.locale(tracker)
        self.say(
            dispatcher,
            tracker,
            "utter_status",
            ref=case.ref,
            category=self.t(tracker, CATEGORY_LABELS.get(case.category, "Other")),
            created=format_when(case.created_at, locale, self.services.settings.zone),
            status=self.t(tracker, STATUS_LABELS.get(case.status, case.status)),
        )
        events = await self.in_db(case_store.get_case_events, case_id=case.id)
        notes = [e for e in events if e.kind == "note_public" and e.text]
        if notes:
            self.say(dispatcher, tracker, "utter_status_note", note=notes[-1].text)


class ActionChangeLanguage(BarriAction):
    def name(self) -> str:
        return "action_change_language"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        wanted = latest_entities(tracker).get("language")
        if wanted not in self.services.catalogs.translations:
            self.say(dispatcher, tracker, "utter_ask_language")
            return []
        self.say(dispatcher, tracker, "utter_language_changed", locale=wanted)
        return [SlotSet("language", wanted)]


class ActionRequestHandoff(BarriAction):
    """Record on the citizen's latest open case that they want a person."""

    def name(self) -> str:
        return "action_request_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if tracker.active_loop_name:
            self.say(dispatcher, tracker, "utter_handoff_during_report")
            return []
        try:
            cases = await self.in_db(case_store.list_cases_for_sender, sender_id=tracker.sender_id)
            open_cases = [c for c in cases if c.status not in ("closed", "rejected", "duplicate")]
            if not open_cases:
                self.say(dispatcher, tracker, "utter_handoff_no_case")
                return []
            case = await self.in_db(case_store.request_handoff, case=open_cases[0])
            # from now on the citizen's typed messages go to the dispatchers, not to the assistant
            await self.in_db(set_live, case=case, live=True, actor="citizen")
        except StorageError:
            return self.storage_failed(dispatcher, tracker, "record a hand-off request")
        self.say(dispatcher, tracker, "utter_handoff_recorded", ref=case.ref)
        return []


class ActionForgetMe(BarriAction):
    """Erase the citizen's personal data now; the bot service then erases the conversation."""

    def name(self) -> str:
        return "action_forget_me"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        locale = self.locale(tracker)  # before the conversation is gone
        try:
            result = await self.in_db(erasure.erase_reporter, sender_id=tracker.sender_id)
            await self.in_db(attachment_store.discard_pending_attachments, sender_id=tracker.sender_id)
        except StorageError:
            return self.storage_failed(dispatcher, tracker, "erase a reporter")
        self.say(dispatcher, tracker, "utter_forgotten", locale=locale, count=result.cases_anonymised)
        # The engine keeps the conversation until this turn ends: the bot service erases it
        # from the tracker store when it sees this control message.
        dispatcher.utter_message(json_message={"control": "erase_conversation"})
        return []
