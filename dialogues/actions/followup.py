"""Answers to what Barri sent first (see outreach.py): adding information to an open case
after its follow-up, and the after-resolution survey.

Both are short forms. Their buttons carry the case reference, so a press starts or resumes
the right one; inside the form the citizen may also type ("yes", "4", "cuatro", a comment).
Every answer is checked against the sender: only the citizen who filed a case can add to it
or answer its survey.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

from common.outreach import (
    SKIP,
    SURVEY_COMMENT,
    SURVEY_SAFETY,
    SURVEY_SATISFACTION,
    SURVEY_SOLVED,
    add_info_payload,
    parse_survey_value,
    survey_buttons,
)
from common.responses import CATEGORY_LABELS
from dialogues.actions.base import INTERRUPTIONS, BarriAction, latest_entities, latest_intent, latest_text
from dialogues.actions.citizen import find_ref
from dialogues.actions.context import Services
from storage import cases as case_store
from storage import surveys as survey_store
from storage.errors import StorageError
from storage.models import DESCRIPTION_MAX, SurveyResponse

CASE_INFO_SLOTS = ("case_info_ref", "case_info")
ADDED = "added"
# form slot -> (payload step, storage question)
SURVEY_SLOTS = {
    "survey_solved": (SURVEY_SOLVED, survey_store.SOLVED),
    "survey_satisfaction": (SURVEY_SATISFACTION, survey_store.SATISFACTION),
    "survey_safety": (SURVEY_SAFETY, survey_store.SAFETY),
    "survey_comment": (SURVEY_COMMENT, survey_store.COMMENT),
}
STEP_SLOT = {step: slot for slot, (step, _) in SURVEY_SLOTS.items()}
SURVEY_CASE = "survey_case"
DONE = "done"

_YES = re.compile(r"^\s*(yes|yeah|yep|sure|s[ií]|claro|i tant|s[ií],? ?(ho|lo) (va|ha)\w*)\b", re.I)
_NO = re.compile(r"^\s*(no|nope|not really|gens|para nada|en absoluto)\b", re.I)
_SKIP = re.compile(r"^\s*(skip|no|nothing|nada|res|omitir|saltar|ometre|salta)\W*$", re.I)
_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5,
    "quatre": 4, "cinc": 5,
}
_ONE_OR_ARTICLE = ("un", "una", "u")  # "un cuatro" is four; "un" alone is one
_DIGIT = re.compile(r"(?<![\d.,])([1-5])(?![\d.,])")


def parse_score(text: str) -> int | None:
    """A 1-5 score written by hand: "4", "un 4", "4/5", "cuatro"; None when unclear."""
    digits = _DIGIT.findall(text.split("/")[0])
    if len(set(digits)) == 1:
        return int(digits[0])
    tokens = re.findall(r"\w+", text.lower())
    words = {_NUMBER_WORDS[w] for w in tokens if w in _NUMBER_WORDS}
    if not words and len(tokens) == 1 and tokens[0] in _ONE_OR_ARTICLE:
        words = {1}
    return words.pop() if len(words) == 1 and not re.search(r"\d", text) else None


def survey_slots(survey: SurveyResponse) -> dict[str, Any]:
    """The form's slots from what is stored (so a resumed survey asks only what is missing)."""
    return {
        "survey_solved": None if survey.solved is None else ("yes" if survey.solved else "no"),
        "survey_satisfaction": None if survey.satisfaction is None else str(survey.satisfaction),
        "survey_safety": None if survey.safety is None else str(survey.safety),
        "survey_comment": DONE if survey.answered_at is not None else None,
    }


def stored_value(question: str, answer: str) -> bool | int | str | None:
    """A payload's or a typed answer's value as storage takes it; ValueError if it is not one."""
    if question == survey_store.SOLVED:
        if answer not in ("yes", "no"):
            raise ValueError(answer)
        return answer == "yes"
    if question in (survey_store.SATISFACTION, survey_store.SAFETY):
        return int(answer)  # storage checks the range
    return None if answer == SKIP else answer


# --- adding information to a case ------------------------------------------------------


class ActionStartCaseInfo(BarriAction):
    """Which case the citizen wants to add to: the button's reference, a typed one, or their
    only open case. Anything else ends the form at once (no reference slot)."""

    def name(self) -> str:
        return "action_start_case_info"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        reset = [SlotSet(slot, None) for slot in CASE_INFO_SLOTS]
        text = latest_text(tracker)
        ref = find_ref("" if text.startswith("/") else text, latest_entities(tracker).get("case_ref"))
        try:
            if ref:
                case = await self.in_db(case_store.get_case_for_sender, ref=ref, sender_id=tracker.sender_id)
                if case is None:
                    self.say(dispatcher, tracker, "utter_status_not_found", ref=ref)
                    return reset
                return reset[1:] + [SlotSet("case_info_ref", case.ref)]
            cases = await self.in_db(case_store.list_cases_for_sender, sender_id=tracker.sender_id)
        except StorageError:
            self.storage_failed(dispatcher, tracker, "read cases")
            return reset
        open_cases = [c for c in cases if c.status not in ("resolved", "closed", "rejected", "duplicate")]
        if len(open_cases) == 1:
            return reset[1:] + [SlotSet("case_info_ref", open_cases[0].ref)]
        if not open_cases:
            self.say(dispatcher, tracker, "utter_status_none")
            return reset
        buttons = [
            {
                "title": f"{case.ref} · {self.t(tracker, CATEGORY_LABELS.get(case.category, 'Other'))}",
                "payload": add_info_payload(case.ref),
            }
            for case in open_cases
        ]
        self.say(dispatcher, tracker, "utter_status_choose", buttons=buttons)
        return reset


class ValidateCaseInfoForm(FormValidationAction):
    """The citizen's next message is what they add; it is stored on their case at once."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._speaker = BarriAction(services)

    def name(self) -> str:
        return "validate_case_info_form"

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[str]:
        return ["case_info"] if tracker.get_slot("case_info_ref") else []

    async def extract_case_info(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if tracker.get_slot("requested_slot") != "case_info" or latest_intent(tracker) in INTERRUPTIONS:
            return {}
        text = latest_text(tracker)
        if not text or text.startswith("/"):  # a button, a photo or a location: not a text to add
            self._speaker.say(dispatcher, tracker, "utter_case_info_empty")
            return {"case_info": None}
        return {"case_info": text}

    async def validate_case_info(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if not value or value == ADDED:
            return {"case_info": value}
        ref = tracker.get_slot("case_info_ref")
        text = str(value)[: min(DESCRIPTION_MAX, self.services.settings.max_message_chars)]
        try:
            case = await self._speaker.in_db(case_store.get_case_for_sender, ref=ref, sender_id=tracker.sender_id)
            if case is None:  # erased meanwhile
                self._speaker.say(dispatcher, tracker, "utter_status_not_found", ref=ref)
                return {"case_info": None, "case_info_ref": None, "requested_slot": None}
            await self._speaker.in_db(case_store.add_citizen_info, case=case, text=text)
        except StorageError:
            self._speaker.storage_failed(dispatcher, tracker, "add information to a case")
            return {"case_info": None}
        return {"case_info": ADDED}


class ActionAskCaseInfo(BarriAction):
    def name(self) -> str:
        return "action_ask_case_info"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        self.say(dispatcher, tracker, "utter_ask_case_info", ref=tracker.get_slot("case_info_ref"))
        return []


class ActionFinishCaseInfo(BarriAction):
    def name(self) -> str:
        return "action_finish_case_info"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if tracker.get_slot("case_info") == ADDED:
            self.say(dispatcher, tracker, "utter_case_info_added", ref=tracker.get_slot("case_info_ref"))
        return [SlotSet(slot, None) for slot in CASE_INFO_SLOTS]


# --- the survey --------------------------------------------------------------------------


class ActionStartSurvey(BarriAction):
    """A survey button pressed: store that answer and load what is stored already, so the form
    asks only what is missing. A case that is not the sender's, or a survey answered
    before, gets a clear answer and ends the form at once (no ``survey_case``)."""

    # what the citizen hears when there is nothing to answer
    nothing_to_answer = "utter_invalid_choice"

    def name(self) -> str:
        return "action_start_survey"

    async def answer_given(self, tracker: Tracker) -> tuple[str, str, str] | None:
        """(case reference, payload step, answer) of the latest message, if it answers a survey."""
        return parse_survey_value(latest_entities(tracker).get("survey"))

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        reset = [SlotSet(slot, None) for slot in (SURVEY_CASE, *SURVEY_SLOTS)]
        try:
            parsed = await self.answer_given(tracker)
            if parsed is None:
                self.say(dispatcher, tracker, self.nothing_to_answer)
                return reset
            ref, step, answer = parsed
            question = SURVEY_SLOTS[STEP_SLOT[step]][1]
            value = stored_value(question, answer)
            survey = await self.in_db(
                survey_store.record_survey_answer, ref=ref, sender_id=tracker.sender_id, question=question, value=value
            )
        except (ValueError, survey_store.SurveyNotFound):
            self.say(dispatcher, tracker, "utter_survey_not_found", ref=ref)
            return reset
        except survey_store.SurveyAlreadyAnswered:
            self.say(dispatcher, tracker, "utter_survey_already_answered", ref=ref)
            return reset
        except StorageError:
            self.storage_failed(dispatcher, tracker, "store a survey answer")
            return reset
        return [SlotSet(SURVEY_CASE, ref)] + [SlotSet(k, v) for k, v in survey_slots(survey).items()]


class ActionYesOrNo(ActionStartSurvey):
    """A yes or a no typed outside any conversation. The survey's first question ("was it
    solved?") goes out through the outbox, so the engine has no record of asking it: a survey
    sent to this citizen lately and not answered yet is what the yes or no answers, and the
    survey goes on as if its button had been pressed. Otherwise: what Barri can do."""

    nothing_to_answer = "utter_default"

    def name(self) -> str:
        return "action_yes_or_no"

    async def answer_given(self, tracker: Tracker) -> tuple[str, str, str] | None:
        window = timedelta(seconds=self.services.settings.survey_answer_window_seconds)
        ref = await self.in_db(
            survey_store.awaiting_first_answer, sender_id=tracker.sender_id, sent_after=self.services.clock() - window
        )
        if ref is None:
            return None
        return ref, SURVEY_SOLVED, "yes" if latest_intent(tracker) == "affirm" else "no"


class ValidateSurveyForm(FormValidationAction):
    """Each answer by button or typed, checked, then stored at once."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._speaker = BarriAction(services)

    def name(self) -> str:
        return "validate_survey_form"

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[str]:
        return list(SURVEY_SLOTS) if tracker.get_slot(SURVEY_CASE) else []

    def _typed_or_pressed(self, tracker: Tracker, slot: str) -> tuple[bool, str | None]:
        """(asked, answer): whether ``slot`` was the question, and the answer's raw value."""
        if tracker.get_slot("requested_slot") != slot:
            return False, None
        parsed = parse_survey_value(latest_entities(tracker).get("survey"))
        if parsed is not None:
            ref, step, answer = parsed
            if ref == tracker.get_slot(SURVEY_CASE) and STEP_SLOT[step] == slot:
                return True, answer
            return True, None  # an old button of another question
        text = latest_text(tracker)
        intent = latest_intent(tracker)
        if (text.startswith("/") and intent not in ("affirm", "deny")) or intent in INTERRUPTIONS:
            return True, None
        if slot == "survey_solved":
            if intent == "affirm" or _YES.match(text):
                return True, "yes"
            if intent == "deny" or _NO.match(text):
                return True, "no"
            return True, None
        if slot in ("survey_satisfaction", "survey_safety"):
            score = parse_score(text)
            return True, None if score is None else str(score)
        if _SKIP.match(text) or (intent == "deny" and len(text.split()) <= 2):
            return True, SKIP
        return True, text

    async def _extract(self, slot: str, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        asked, answer = self._typed_or_pressed(tracker, slot)
        if not asked:
            return {}
        if answer is None:
            if latest_intent(tracker) in INTERRUPTIONS:
                return {}  # a question, an emergency, cancel...: handled by the rules
            message = "utter_survey_invalid_yes_no" if slot == "survey_solved" else "utter_survey_invalid_score"
            self._speaker.say(dispatcher, tracker, message)
            return {slot: None}
        return {slot: answer}

    async def extract_survey_solved(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> dict[str, Any]:  # noqa: E501
        return await self._extract("survey_solved", dispatcher, tracker)

    async def extract_survey_satisfaction(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> dict[str, Any]:  # noqa: E501
        return await self._extract("survey_satisfaction", dispatcher, tracker)

    async def extract_survey_safety(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> dict[str, Any]:  # noqa: E501
        return await self._extract("survey_safety", dispatcher, tracker)

    async def extract_survey_comment(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> dict[str, Any]:  # noqa: E501
        return await self._extract("survey_comment", dispatcher, tracker)

    async def _store(self, slot: str, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        if value is None or tracker.get_slot("requested_slot") != slot:
            return {slot: value}
        ref = tracker.get_slot(SURVEY_CASE)
        question = SURVEY_SLOTS[slot][1]
        if question == survey_store.COMMENT and value != SKIP:
            value = str(value)[: min(DESCRIPTION_MAX, self.services.settings.max_message_chars)]
        try:
            survey = await self._speaker.in_db(
                survey_store.record_survey_answer,
                ref=ref, sender_id=tracker.sender_id, question=question, value=stored_value(question, str(value)),
            )
        except ValueError:
            self._speaker.say(dispatcher, tracker, "utter_survey_invalid_score")
            return {slot: None}
        except survey_store.SurveyAlreadyAnswered:
            self._speaker.say(dispatcher, tracker, "utter_survey_already_answered", ref=ref)
            return {SURVEY_CASE: None, "requested_slot": None}
        except survey_store.SurveyNotFound:
            self._speaker.say(dispatcher, tracker, "utter_survey_not_found", ref=ref)
            return {SURVEY_CASE: None, "requested_slot": None}
        except StorageError:
            self._speaker.storage_failed(dispatcher, tracker, "store a survey answer")
            return {slot: None}
        return survey_slots(survey)

    async def validate_survey_solved(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> dict[str, Any]:  # noqa: E501
        return await self._store("survey_solved", value, dispatcher, tracker)

    async def validate_survey_satisfaction(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> dict[str, Any]:  # noqa: E501
        return await self._store("survey_satisfaction", value, dispatcher, tracker)

    async def validate_survey_safety(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> dict[str, Any]:  # noqa: E501
        return await self._store("survey_safety", value, dispatcher, tracker)

    async def validate_survey_comment(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> dict[str, Any]:  # noqa: E501
        return await self._store("survey_comment", value, dispatcher, tracker)


class ActionAskSurvey(BarriAction):
    """Asks one survey question, with buttons that carry the case reference."""

    def __init__(self, services: Services, slot: str) -> None:
        super().__init__(services)
        self.slot = slot

    def name(self) -> str:
        return f"action_ask_{self.slot}"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        ref = str(tracker.get_slot(SURVEY_CASE) or "")
        step = SURVEY_SLOTS[self.slot][0]
        buttons = [
            {"title": title, "payload": payload}
            for title, payload in survey_buttons(self.services.catalogs, self.locale(tracker), ref, step)
        ]
        self.say(dispatcher, tracker, f"utter_ask_{self.slot}", ref=ref, buttons=buttons)
        return []


class ActionFinishSurvey(BarriAction):
    def name(self) -> str:
        return "action_finish_survey"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if tracker.get_slot(SURVEY_CASE) and tracker.get_slot("survey_comment") == DONE:
            self.say(dispatcher, tracker, "utter_survey_thanks")
        return [SlotSet(slot, None) for slot in (SURVEY_CASE, *SURVEY_SLOTS)]


class ActionStopFollowUp(BarriAction):
    """"Cancel" while adding information or answering the survey: nothing more is stored."""

    def name(self) -> str:
        return "action_stop_follow_up"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if tracker.active_loop_name == "case_info_form":
            self.say(dispatcher, tracker, "utter_case_info_cancelled", ref=tracker.get_slot("case_info_ref"))
        else:
            self.say(dispatcher, tracker, "utter_survey_stopped")
        return [ActiveLoop(None), SlotSet("requested_slot", None)] + [
            SlotSet(slot, None) for slot in (*CASE_INFO_SLOTS, SURVEY_CASE, *SURVEY_SLOTS)
        ]


def follow_up_actions(services: Services) -> list[BarriAction | FormValidationAction]:
    """Every action of this module, for the action server."""
    return [
        ActionStartCaseInfo(services),
        ValidateCaseInfoForm(services),
        ActionAskCaseInfo(services),
        ActionFinishCaseInfo(services),
        ActionStartSurvey(services),
        ActionYesOrNo(services),
        ValidateSurveyForm(services),
        *(ActionAskSurvey(services, slot) for slot in SURVEY_SLOTS),
        ActionFinishSurvey(services),
        ActionStopFollowUp(services),
    ]
