"""The incident report: free recall, the form that asks for what is missing, the summary,
corrections, saving the case with its receipt, and cancelling."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from datetime import datetime
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

from common.i18n import format_when
from common.places import CORNER, NEIGHBOURHOOD, NOT_LOCATED, SHARED_LOCATION, Gazetteer, Place
from common.responses import CATEGORY_LABELS, CONTACT_LABELS, FIELD_LABELS, INCIDENT_TYPES, render
from common.when import UnknownTime, parse_when
from dialogues.actions.base import (
    INTERRUPTIONS,
    BarriAction,
    channel_of,
    latest_entities,
    latest_intent,
    latest_text,
    recalled_message,
)
from dialogues.actions.context import Services
from dialogues.actions.saying import describe_place, describe_when, place_fields, place_slot
from storage import attachments as attachment_store
from storage import cases as case_store
from storage.errors import StorageError
from storage.models import CaseCreate, is_channel, is_contact_mode, is_locale, is_location_source

log = logging.getLogger(__name__)

REPORT_SLOTS = (
    "incident_type", "description", "place", "latitude", "longitude", "neighbourhood",
    "incident_time", "photos", "photos_done", "contact_mode", "contact_name", "contact_phone",
    "report_confirmed", "failed_attempts",
)
# A first message this long is already the citizen's own account of what happened.
MIN_DESCRIPTION_WORDS = 4
FREE_RECALL_WORDS = 7
MAX_FAILURES_BEFORE_OFFERING_TO_STOP = 3

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]{2,}$")
_PHONE = re.compile(r"^\+?[\d\s().-]{9,20}$")
# Typed answers to "how do you want to file it?": anonymity first, because "no name" and
# "sin mis datos" name the contact words they refuse.
_ANONYMOUS = re.compile(
    r"\b(anon\w*|an[oò]n[iy]m\w*|no contact\w*|sin contacto|sense contacte"
    r"|(no|without|sin|sense|don'?t|not|leave)\b.{0,24}\b(name|names|nombre|nom|details|datos|dades|data|contact)\b"
    r"|(name|nombre|nom)\b.{0,6}\bout\b)",
    re.I,
)
_CHAT = re.compile(
    r"\b(chat|xat|aqu[ií]|here|updates|actualizaciones|novedades|novetats|avisos|avisad\w*|aviseu\w*)\b", re.I
)
_CONTACT = re.compile(
    r"\b(name|phone|e-?mail|mail|call|nombre|tel[eè]fono?|m[oò]vil|m[oò]bil|n[uú]mero|number|nom|correu|correo"
    r"|contact\w*|details|datos|dades|ll[aá]m\w*|truc\w*)\b",
    re.I,
)

# "the first one", "la segona", "3": the buttons' order (anonymous, chat, contact)
_ORDINALS = (
    ("anonymous", re.compile(r"^\W*(1|one|first|primer[oa]?)\b", re.I)),
    ("chat", re.compile(r"^\W*(2|two|second|segund[oa]|segona?)\b", re.I)),
    ("contact", re.compile(r"^\W*(3|three|third|tercer[oa]?)\b", re.I)),
)


def contact_mode_of(answer: str) -> str | None:
    """The contact mode a typed answer chooses, or None when it names none."""
    for mode, pattern in (("anonymous", _ANONYMOUS), ("contact", _CONTACT), ("chat", _CHAT)):
        if pattern.search(answer):
            return mode
    text = re.sub(r"^(the|el|la|lo)\s+", "", answer.strip(), flags=re.I)
    for mode, pattern in _ORDINALS:
        if pattern.search(text):
            return mode
    return None


def place_slots(place: Place) -> dict[str, Any]:
    """The report's place slots for a resolved place."""
    latitude, longitude = place.point if place.point is not None else (None, None)
    return {"place": place_slot(place), "neighbourhood": place.neighbourhood.code if place.neighbourhood else None,
            "latitude": latitude, "longitude": longitude}


def place_prefill(gazetteer: Gazetteer, words: str) -> dict[str, Any]:
    """Slots from a place named in the citizen's account; nothing when it needs a question
    (the form then asks it) or names no place we know."""
    place = gazetteer.resolve(words)
    if place.located:
        return place_slots(place)
    return {}


def reset_report_slots() -> list[EventType]:
    return [SlotSet(name, [] if name == "photos" else None) for name in REPORT_SLOTS] + [
        SlotSet("failed_attempts", 0.0)
    ]


# Buttons for at most this many neighbourhoods; a longer street asks for a corner or a number.
MAX_NEIGHBOURHOOD_BUTTONS = 8
# After this many answers that still leave the place in several neighbourhoods, the words are
# kept as they are (not located) rather than asking again.
MAX_PLACE_QUESTIONS = 2


def _user_texts(events: list[dict[str, Any]]) -> list[str]:
    return [str(e.get("text") or "").strip() for e in events if e.get("event") == "user"]


def understand_place(gazetteer: Gazetteer, text: str, events: list[dict[str, Any]]) -> Place:
    """The place in the citizen's latest answer, read with the question it may answer: after a
    street that crosses several neighbourhoods ("Mallorca"), a neighbourhood's name, a number
    ("200") or the other street of a corner ("Pau Claris") completes it."""
    texts = _user_texts(events)
    if not texts or texts[-1] != text.strip():
        texts.append(text.strip())
    return _understood(gazetteer, texts, len(texts) - 1, depth=0)


def pending_place(gazetteer: Gazetteer, events: list[dict[str, Any]]) -> Place | None:
    """The place the latest question was about: the citizen's last typed words before the
    latest message (a button's payload is not words), read in their own context."""
    texts = _user_texts(events)
    earlier = [i for i in range(len(texts) - 1) if texts[i] and not texts[i].startswith("/")]
    return _understood(gazetteer, texts, earlier[-1], depth=1) if earlier else None


def _understood(gazetteer: Gazetteer, texts: list[str], index: int, depth: int) -> Place:
    text = texts[index]
    earlier = [i for i in range(index) if texts[i] and not texts[i].startswith("/")]
    pending = _understood(gazetteer, texts, earlier[-1], depth + 1) if earlier and depth < 3 else None
    if pending is None or not pending.needs_question or not pending.street:
        return gazetteer.resolve(text)
    named = gazetteer.neighbourhoods.exactly_named(text)
    if named is not None and named in pending.candidates:
        return gazetteer.street_in(pending.street, named.code, f"{pending.text}, {text}")
    if re.fullmatch(r"\s*(?:n[ºo°]?\.?\s*|num\.?\s*|numero\s*|number\s*)?\d{1,4}\s*", text, re.I):
        return gazetteer.resolve(f"{pending.street} {text.strip()}")
    corner = gazetteer.resolve(f"{pending.street} amb {text}")
    if corner.source == CORNER and (corner.located or corner.needs_question):
        return corner
    return gazetteer.resolve(text)


def place_question(services: Services, tracker: dict[str, Any], locale: str) -> dict[str, Any] | None:
    """``utter_ask_place`` after an answer that left the place in several neighbourhoods: which
    one (buttons), or a corner or a number, or the phone's location. None: the usual question."""
    latest = tracker.get("latest_message") or {}
    text = str(latest.get("text") or "").strip()
    entities = {e.get("entity"): e.get("value") for e in latest.get("entities") or []}
    settings = services.settings
    if entities.get("correct") == "place":
        return render("utter_ask_place_precisely", services.catalogs, locale, city=settings.city_name)
    if not text or text.startswith("/"):
        return None
    slots = tracker.get("slots") or {}
    events = list(tracker.get("events") or [])
    if slots.get("requested_slot") == "place":
        place = understand_place(services.gazetteer, text, events)
    else:  # the first message or the account named the street
        place = services.gazetteer.resolve(str(entities.get("place") or text))
    if not place.needs_question or not place.street:
        return None
    if len(place.candidates) > MAX_NEIGHBOURHOOD_BUTTONS:
        return render("utter_ask_place_long_street", services.catalogs, locale, street=place.label)
    message = render("utter_ask_place_neighbourhood", services.catalogs, locale, street=place.label)
    # the payload names only the neighbourhood (Telegram allows 64 bytes): the street is the
    # one the citizen just typed, read again from the conversation (pending_place)
    message["buttons"] = [
        {"title": item.name, "payload": f'/inform{{"neighbourhood_code":"{item.code}"}}'}
        for item in place.candidates
    ] + message.get("buttons", [])
    return message


def time_slot(parsed_moment: datetime | None, phrase: str, approximate: bool = False) -> dict[str, Any]:
    if parsed_moment is None:
        return {"unknown": True, "text": phrase}
    return {"iso": parsed_moment.isoformat(), "text": phrase, "approximate": approximate}


class ActionStartReport(BarriAction):
    """Take from the citizen's first message whatever it already says."""

    def name(self) -> str:
        return "action_start_report"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events = reset_report_slots()
        text, entities = recalled_message(tracker)
        if text.startswith("/"):
            return events  # a button: nothing to read
        prefill: dict[str, Any] = {}
        if entities.get("incident_type") in INCIDENT_TYPES:
            prefill["incident_type"] = entities["incident_type"]
        if len(text.split()) >= FREE_RECALL_WORDS:
            prefill["description"] = text
        if entities.get("place"):
            prefill.update(place_prefill(self.services.gazetteer, str(entities["place"])))
        settings = self.services.settings
        try:
            when = await asyncio.to_thread(
                parse_when, text, now=self.now(tracker), zone=settings.zone, locale=self.locale(tracker)
            )
        except UnknownTime:
            when = None
        if when is not None and when.moment <= self.now(tracker):  # a time to come is asked again
            prefill["incident_time"] = time_slot(when.moment, text, when.approximate)
        return events + [SlotSet(name, value) for name, value in prefill.items()]


class ValidateReportForm(FormValidationAction):
    """Extraction and validation of each answer, one method per slot."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._speaker = BarriAction(services)

    def name(self) -> str:
        return "validate_report_form"

    def say(self, dispatcher: CollectingDispatcher, tracker: Tracker, name: str, **args: Any) -> None:
        self._speaker.say(dispatcher, tracker, name, **args)

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        slots = ["description", "incident_type", "place", "incident_time", "photos_done", "contact_mode"]
        if tracker.get_slot("contact_mode") == "contact":
            slots += ["contact_name", "contact_phone"]
        return slots + ["report_confirmed"]

    def _answer(self, tracker: Tracker, slot: str) -> str | None:
        """The latest message as the answer to ``slot``, if it was asked and is not an interruption."""
        if tracker.get_slot("requested_slot") != slot or latest_intent(tracker) in INTERRUPTIONS:
            return None
        text = latest_text(tracker)
        return None if not text or text.startswith("/") else text

    def _failed(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, slot: str, message: str, **args: Any
    ) -> dict[str, Any]:
        self.say(dispatcher, tracker, message, **args)
        failures = (tracker.get_slot("failed_attempts") or 0) + 1
        if failures >= MAX_FAILURES_BEFORE_OFFERING_TO_STOP:
            self.say(dispatcher, tracker, "utter_offer_stop")
        return {slot: None, "failed_attempts": float(failures)}

    # description -----------------------------------------------------------------------
    async def validate_description(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = str(value or "").strip()
        if text.startswith("/") or len(text.split()) < MIN_DESCRIPTION_WORDS and len(text) < 15:
            return self._failed(dispatcher, tracker, "description", "utter_description_too_short")
        limit = self.services.settings.max_message_chars
        result: dict[str, Any] = {"description": text[:limit], "failed_attempts": 0.0}
        # the account may already say where and when
        if tracker.get_slot("incident_time") is None:
            now = self._speaker.now(tracker)
            try:
                when = await asyncio.to_thread(parse_when, text, now=now, zone=self.services.settings.zone)
            except UnknownTime:
                when = None
            if when is not None and when.moment <= now:
                result["incident_time"] = time_slot(when.moment, text, when.approximate)
        place = latest_entities(tracker).get("place")
        if tracker.get_slot("place") is None and place:
            result.update(place_prefill(self.services.gazetteer, str(place)))
        return result

    # incident type ---------------------------------------------------------------------
    async def extract_incident_type(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        found = latest_entities(tracker).get("incident_type")
        asked = tracker.get_slot("requested_slot") == "incident_type"
        if found in INCIDENT_TYPES and (asked or tracker.get_slot("incident_type") is None):
            return {"incident_type": found}
        answer = self._answer(tracker, "incident_type")
        return {"incident_type": answer} if answer else {}

    def validate_incident_type(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if value in INCIDENT_TYPES:
            return {"incident_type": value, "failed_attempts": 0.0}
        return self._failed(dispatcher, tracker, "incident_type", "utter_invalid_choice")

    # place -----------------------------------------------------------------------------
    async def extract_place(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        entities = latest_entities(tracker)
        if entities.get("latitude") is not None and entities.get("longitude") is not None:
            try:
                latitude, longitude = float(entities["latitude"]), float(entities["longitude"])
            except (TypeError, ValueError):
                return {}
            # only the place here: rasa-sdk drops extracted slots the form does not require
            # (latitude, longitude); validate_place sets them, and those are kept
            return {"place": f"{latitude:.5f}, {longitude:.5f}"}
        if tracker.get_slot("requested_slot") == "place" and entities.get("neighbourhood_code"):
            # a neighbourhood button of the question about a street
            return {"place": {"choose": str(entities["neighbourhood_code"])[:16]}}
        answer = self._answer(tracker, "place")
        return {"place": answer} if answer else {}

    def validate_place(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        gazetteer = self.services.gazetteer
        entities = latest_entities(tracker)
        if entities.get("latitude") is not None:
            latitude, longitude = float(entities["latitude"]), float(entities["longitude"])
            shared = gazetteer.at(latitude, longitude, text=str(value))
            if shared.neighbourhood is None:
                result = self._failed(
                    dispatcher, tracker, "place", "utter_location_outside",
                    city=self.services.settings.city_name,
                )
                return {**result, "latitude": None, "longitude": None}
            self.say(dispatcher, tracker, "utter_location_received", place=shared.neighbourhood.name)
            return {**place_slots(shared), "failed_attempts": 0.0}
        if isinstance(value, dict) and "choose" in value:
            pending = pending_place(gazetteer, list(tracker.events))
            code = str(value["choose"])
            if pending is None or not pending.street or code not in {c.code for c in pending.candidates}:
                return {"place": None}  # a button of an older question: asked again
            return self._place_understood(dispatcher, tracker, gazetteer.street_in(pending.street, code, pending.text))
        if isinstance(value, dict):
            return {"place": value}  # already understood from the citizen's account
        text = str(value or "").strip()
        if len(text) < 3:
            return self._failed(dispatcher, tracker, "place", "utter_place_too_short")
        place = understand_place(gazetteer, text, list(tracker.events))
        if place.needs_question:
            failures = (tracker.get_slot("failed_attempts") or 0) + 1
            if failures <= MAX_PLACE_QUESTIONS:
                # utter_ask_place asks which neighbourhood (place_question): nothing said here
                return {"place": None, "failed_attempts": float(failures)}
            place = Place(text=text[:300], source=NOT_LOCATED, label=text[:300])
        return self._place_understood(dispatcher, tracker, place)

    def _place_understood(self, dispatcher: CollectingDispatcher, tracker: Tracker, place: Place) -> dict[str, Any]:
        """Say back what was understood, or that the words are kept as they are."""
        if place.neighbourhood is None and place.source != SHARED_LOCATION:
            self.say(dispatcher, tracker, "utter_place_not_located", place=place.text)
        else:
            t = lambda message, **args: self._speaker.t(tracker, message, **args)  # noqa: E731
            self.say(dispatcher, tracker, "utter_place_understood",
                     place=describe_place(place_slot(place), place.neighbourhood, t))
        return {**place_slots(place), "failed_attempts": 0.0}

    # time ------------------------------------------------------------------------------
    async def extract_incident_time(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if tracker.get_slot("requested_slot") != "incident_time":
            return {}
        button = latest_entities(tracker).get("incident_time")
        if button in ("now", "unknown"):
            return {"incident_time": button}
        answer = self._answer(tracker, "incident_time")
        return {"incident_time": answer} if answer else {}

    async def validate_incident_time(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if isinstance(value, dict):
            return {"incident_time": value}  # already read from the citizen's account
        now = self._speaker.now(tracker)
        if value == "now":
            return {"incident_time": time_slot(now, "now"), "failed_attempts": 0.0}
        if value == "unknown":
            return {"incident_time": time_slot(None, "unknown"), "failed_attempts": 0.0}
        text = str(value or "")
        try:
            # off the loop: the action server serves every citizen from one event loop
            when = await asyncio.to_thread(parse_when, text, now=now, zone=self.services.settings.zone,
                                           locale=self._speaker.locale(tracker))
        except UnknownTime:
            return {"incident_time": time_slot(None, text), "failed_attempts": 0.0}
        if when is None:
            return self._failed(dispatcher, tracker, "incident_time", "utter_invalid_time")
        if when.moment > now:
            return self._failed(dispatcher, tracker, "incident_time", "utter_time_in_future")
        return {"incident_time": time_slot(when.moment, text, when.approximate), "failed_attempts": 0.0}

    # photos ----------------------------------------------------------------------------
    async def extract_photos_done(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """A photo may arrive at any step of the report; it is added by validate_photos_done."""
        photo = latest_entities(tracker).get("photo")
        if photo:
            return {"photos_done": {"photo": str(photo)}}
        if tracker.get_slot("requested_slot") != "photos_done" or latest_intent(tracker) in INTERRUPTIONS:
            return {}
        return {"photos_done": True}  # "no", "continue", "skip", the button: go on

    def validate_photos_done(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            return {"photos_done": bool(value) or None}
        limit = self.services.settings.max_photos_per_report
        photos = list(tracker.get_slot("photos") or [])
        try:
            photo_id = str(uuid.UUID(value.get("photo", "")))
        except ValueError:
            return {"photos_done": None}
        if len(photos) >= limit:
            self.say(dispatcher, tracker, "utter_too_many_photos", max_photos=limit)
            return {"photos_done": True}
        photos.append(photo_id)
        # asked again ("send another or continue") unless the limit is reached
        return {"photos": photos, "photos_done": True if len(photos) >= limit else None}

    # contact ---------------------------------------------------------------------------
    async def extract_contact_mode(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if tracker.get_slot("requested_slot") != "contact_mode":
            return {}
        chosen = latest_entities(tracker).get("contact_mode")
        if chosen:
            return {"contact_mode": chosen}
        answer = self._answer(tracker, "contact_mode")
        if not answer:
            return {}
        return {"contact_mode": contact_mode_of(answer) or answer}

    def validate_contact_mode(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if value in CONTACT_LABELS:
            return {"contact_mode": value, "failed_attempts": 0.0}
        return self._failed(dispatcher, tracker, "contact_mode", "utter_invalid_choice")

    def validate_contact_name(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        name = " ".join(str(value or "").split())[:120]
        if len(name) < 2:
            return self._failed(dispatcher, tracker, "contact_name", "utter_ask_contact_name")
        return {"contact_name": name, "failed_attempts": 0.0}

    async def extract_contact_phone(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        answer = self._answer(tracker, "contact_phone")
        return {"contact_phone": answer} if answer else {}

    def validate_contact_phone(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = str(value or "").strip()
        if _EMAIL.match(text) or (_PHONE.match(text) and sum(ch.isdigit() for ch in text) >= 9):
            return {"contact_phone": text, "failed_attempts": 0.0}
        return self._failed(dispatcher, tracker, "contact_phone", "utter_invalid_contact")

    # summary and corrections -----------------------------------------------------------
    async def extract_report_confirmed(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if tracker.get_slot("requested_slot") != "report_confirmed":
            return {}
        field = latest_entities(tracker).get("correct")
        if field in FIELD_LABELS:
            cleared: dict[str, Any] = {field: None, "report_confirmed": None}
            if field == "place":
                cleared.update(latitude=None, longitude=None, neighbourhood=None)
            elif field == "photos":
                cleared = {"photos": [], "photos_done": None, "report_confirmed": None}
            elif field == "contact_mode":
                cleared.update(contact_name=None, contact_phone=None)
            return cleared
        intent = latest_intent(tracker)
        if intent == "affirm":
            return {"report_confirmed": True}
        if intent in INTERRUPTIONS:
            return {}
        # "deny" turns the question into "what to change?"; anything else shows the summary again
        return {"report_confirmed": None}


class ActionAskPhotosDone(BarriAction):
    def name(self) -> str:
        return "action_ask_photos_done"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        count = len(tracker.get_slot("photos") or [])
        if count:
            self.say(dispatcher, tracker, "utter_photo_received", count=count)
        else:
            self.say(dispatcher, tracker, "utter_ask_photos_done")
        return []


class ReportAction(BarriAction):
    """Where and when of the report in progress, said in the citizen's language."""

    def where(self, tracker: Tracker) -> str:
        neighbourhood = self.services.neighbourhoods.by_code(tracker.get_slot("neighbourhood"))
        return describe_place(tracker.get_slot("place"), neighbourhood,
                              lambda message, **args: self.t(tracker, message, **args))

    def when(self, tracker: Tracker) -> str:
        return describe_when(tracker.get_slot("incident_time"), locale=self.locale(tracker),
                             zone=self.services.settings.zone, now=self.now(tracker),
                             t=lambda message, **args: self.t(tracker, message, **args))


class ActionAskReportConfirmed(ReportAction):
    """The summary with its buttons, or, after "change something", which field to change."""

    def name(self) -> str:
        return "action_ask_report_confirmed"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if latest_intent(tracker) == "deny" and tracker.get_slot("requested_slot") == "report_confirmed":
            self.say(dispatcher, tracker, "utter_ask_which_field")
            return []
        self.say(dispatcher, tracker, "utter_report_summary", summary=self.summary(tracker))
        return []

    def summary(self, tracker: Tracker) -> str:
        t = lambda message, **args: self.t(tracker, message, **args)  # noqa: E731
        category = CATEGORY_LABELS.get(tracker.get_slot("incident_type") or "other", "Other")
        lines = [f"• {t(FIELD_LABELS['incident_type'])}: {t(category)}"]
        lines.append(f"• {t(FIELD_LABELS['description'])}: {tracker.get_slot('description') or ''}")
        lines.append(f"• {t(FIELD_LABELS['place'])}: {self.where(tracker)}")
        lines.append(f"• {t(FIELD_LABELS['incident_time'])}: {self.when(tracker)}")
        lines.append(f"• {t(FIELD_LABELS['photos'])}: {len(tracker.get_slot('photos') or [])}")
        mode = tracker.get_slot("contact_mode") or "anonymous"
        contact = t(CONTACT_LABELS[mode])
        if mode == "contact":
            contact = f"{contact}: {tracker.get_slot('contact_name')}, {tracker.get_slot('contact_phone')}"
        lines.append(f"• {t(FIELD_LABELS['contact_mode'])}: {contact}")
        return "\n".join(lines)


class ActionSaveCase(ReportAction):
    """Save the confirmed report as a case and give the citizen its reference and receipt."""

    def name(self) -> str:
        return "action_save_case"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if tracker.get_slot("report_confirmed") is not True:
            return []
        locale = self.locale(tracker)
        case_in = self.case_from_slots(tracker, locale)
        try:
            case = await self.in_db(case_store.create_case, case_in=case_in)
            attachments = await self.in_db(attachment_store.get_attachments, case_id=case.id)
        except StorageError:
            log.exception("could not save a case")
            self.say(dispatcher, tracker, "utter_case_not_saved")
            # back to the summary, with everything the citizen said still there; then wait for
            # the citizen (without the listen the form would re-read the same "yes" and loop)
            return [SlotSet("report_confirmed", None), SlotSet("requested_slot", "report_confirmed"),
                    ActiveLoop("report_form"), FollowupAction("action_listen")]
        received = format_when(case.created_at, locale, self.services.settings.zone)
        self.say(dispatcher, tracker, "utter_case_saved", ref=case.ref, received=received,
                 place=self.where(tracker), when=self.when(tracker))
        if case.priority == "urgent":
            self.say(dispatcher, tracker, "utter_case_saved_urgent")
        for number, attachment in enumerate(attachments, start=1):
            self.say(dispatcher, tracker, "utter_photo_receipt", number=number, sha256=attachment.sha256)
        return reset_report_slots() + [SlotSet("urgent", None)]

    def case_from_slots(self, tracker: Tracker, locale: str) -> CaseCreate:
        slot = tracker.get_slot
        when = slot("incident_time") or {}
        neighbourhood = self.services.neighbourhoods.by_code(slot("neighbourhood"))
        place = place_fields(slot("place"))
        source = place.get("source") or (NEIGHBOURHOOD if neighbourhood else None)
        if slot("latitude") is not None and source is None:
            source = SHARED_LOCATION
        mode = slot("contact_mode") or "anonymous"
        channel = channel_of(tracker.sender_id)
        # CaseCreate would refuse these too (pydantic's ValidationError is a ValueError)
        if not (is_channel(channel) and is_locale(locale) and is_contact_mode(mode)):
            raise ValueError(f"no case from channel {channel!r}, locale {locale!r}, contact mode {mode!r}")
        contact = (slot("contact_phone") or "") if mode == "contact" else ""
        is_email = "@" in contact
        return CaseCreate(
            sender_id=tracker.sender_id,
            channel=channel,
            locale=locale,
            category=slot("incident_type") or "other",
            description=slot("description"),
            address=None if source == SHARED_LOCATION else (place.get("text") or None),
            latitude=slot("latitude"),
            longitude=slot("longitude"),
            location_source=source if is_location_source(source) else None,
            location_radius=place.get("radius") if slot("latitude") is not None else None,
            neighbourhood_code=neighbourhood.code if neighbourhood else None,
            neighbourhood_name=neighbourhood.name if neighbourhood else None,
            district_name=neighbourhood.district if neighbourhood else None,
            occurred_at=datetime.fromisoformat(when["iso"]) if when.get("iso") else None,
            occurred_text=(when.get("text") or "")[:200] or None,
            contact_mode=mode,
            contact_name=slot("contact_name") if mode == "contact" else None,
            contact_phone=contact if contact and not is_email else None,
            contact_email=contact if is_email else None,
            priority="urgent" if slot("urgent") else "normal",
            attachment_ids=[uuid.UUID(p) for p in slot("photos") or []],
        )


class ActionCancelReport(BarriAction):
    def name(self) -> str:
        return "action_cancel_report"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if not tracker.active_loop_name:
            self.say(dispatcher, tracker, "utter_nothing_to_cancel")
            return []
        try:
            await self.in_db(attachment_store.discard_pending_attachments, sender_id=tracker.sender_id)
        except StorageError:
            log.warning("could not discard pending photos; the retention job will")
        self.say(dispatcher, tracker, "utter_report_cancelled")
        return [ActiveLoop(None), SlotSet("requested_slot", None)] + reset_report_slots() + [
            SlotSet("urgent", None)
        ]
