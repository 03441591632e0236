"""Custom actions on real rasa-sdk objects (Tracker, CollectingDispatcher) and a real
SQLite database: exact events and exact responses."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from common.settings import PROJECT_ROOT
from dialogues.actions.citizen import ActionChangeLanguage, ActionCheckStatus, ActionForgetMe, ActionRequestHandoff
from dialogues.actions.context import Services
from dialogues.actions.report import ActionSaveCase, ActionStartReport, ValidateReportForm
from storage import attachments as attachment_store
from storage import cases as case_store
from storage.db import session_scope
from storage.desk import is_live, live_case_for_sender

REF = re.compile(r"\b(?!SHA-256)[2-9A-Z]{3}-[2-9A-Z]{3}\b")



def make_tracker(
    sender: str = "web:abc",
    text: str = "",
    intent: str = "inform",
    entities: list[dict[str, Any]] | None = None,
    slots: dict[str, Any] | None = None,
    active_loop: str | None = None,
    history: tuple[str, ...] = (),
) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": entities or []}
    earlier = [{"event": "user", "text": said, "parse_data": {}, "metadata": {}} for said in history]
    return Tracker.from_dict(
        {
            "sender_id": sender,
            "slots": {"photos": [], **(slots or {})},
            "latest_message": latest,
            "events": [*earlier, {"event": "user", "text": text, "parse_data": latest, "metadata": {}}],
            "active_loop": {"name": active_loop} if active_loop else {},
            "latest_action_name": "action_listen",
        }
    )


async def test_start_report_takes_type_place_and_time_from_the_first_message(services: Services) -> None:
    text = "ayer por la noche me robaron la bici en la calle Verdi de Gracia"
    tracker = make_tracker(
        text=text,
        intent="report_incident",
        entities=[
            {"entity": "incident_type", "value": "theft"},
            {"entity": "place", "value": "calle Verdi de Gracia"},
        ],
    )
    dispatcher = CollectingDispatcher()
    events = await ActionStartReport(services).run(dispatcher, tracker, {})
    set_values = {e["name"]: e["value"] for e in events if e["event"] == "slot" and e["value"] not in (None, [], 0.0)}
    assert set_values["incident_type"] == "theft"
    assert set_values["description"] == text
    assert set_values["place"]["text"] == "calle Verdi de Gracia"
    assert set_values["place"]["source"] == "street"  # Verdi, in the part of it in Gràcia
    assert set_values["neighbourhood"] == "06-31"
    assert 41.39 < set_values["latitude"] < 41.42 and 2.14 < set_values["longitude"] < 2.17
    assert set_values["incident_time"]["iso"] == "2026-11-24T22:00:00+01:00"
    assert dispatcher.messages == []


async def test_no_danger_button_starts_the_report_from_the_message_that_raised_the_question(
    services: Services,
) -> None:
    text = "dos tios estan forzando la persiana de la farmacia de Mallorca con Pau Claris"
    first = {"text": text, "intent": {"name": "danger_check", "confidence": 0.8},
             "entities": [{"entity": "place", "value": "Mallorca con Pau Claris"},
                          {"entity": "danger_sign", "value": "in_progress"}]}
    latest = {"text": "/report_incident", "intent": {"name": "report_incident", "confidence": 1.0}, "entities": []}
    tracker = Tracker.from_dict({
        "sender_id": "web:abc", "slots": {"photos": []}, "latest_message": latest,
        "events": [{"event": "user", "text": text, "parse_data": first, "metadata": {}},
                   {"event": "bot", "text": "Is anyone in danger right now?"},
                   {"event": "user", "text": "/report_incident", "parse_data": latest, "metadata": {}}],
        "active_loop": {}, "latest_action_name": "action_listen",
    })
    events = await ActionStartReport(services).run(CollectingDispatcher(), tracker, {})
    set_values = {e["name"]: e["value"] for e in events if e["event"] == "slot" and e["value"] not in (None, [], 0.0)}
    assert set_values["description"] == text
    assert set_values["neighbourhood"] == "02-07"  # la Dreta de l'Eixample, from that first message


async def test_a_button_alone_starts_an_empty_report(services: Services) -> None:
    tracker = make_tracker(text="/report_incident", intent="report_incident", history=("hola",))
    events = await ActionStartReport(services).run(CollectingDispatcher(), tracker, {})
    assert not any(e["value"] for e in events if e["event"] == "slot" and e["name"] in ("description", "place"))


async def test_a_short_request_leaves_the_description_to_the_form(services: Services) -> None:
    tracker = make_tracker(text="vull denunciar un robatori", intent="report_incident",
                           entities=[{"entity": "incident_type", "value": "theft"}])
    events = await ActionStartReport(services).run(CollectingDispatcher(), tracker, {})
    assert SlotSet("incident_type", "theft") in events
    assert not any(e["name"] == "description" and e["value"] for e in events)


async def test_time_in_catalan_and_an_unreadable_time_answered_in_catalan(services: Services) -> None:
    form = ValidateReportForm(services)
    tracker = make_tracker(text="ahir a les deu", slots={"requested_slot": "incident_time"})
    result = await form.validate_incident_time("ahir a les deu", CollectingDispatcher(), tracker, {})
    assert result["incident_time"]["iso"] == "2026-11-24T22:00:00+01:00"

    dispatcher = CollectingDispatcher()
    tracker = make_tracker(text="quan la lluna era plena", slots={"requested_slot": "incident_time", "language": "ca"})
    result = await form.validate_incident_time("quan la lluna era plena", dispatcher, tracker, {})
    assert result == {"incident_time": None, "failed_attempts": 1.0}
    expected = services.catalogs.gettext(
        "I couldn't work out when that was. Try something like \"just now\", "
        "\"yesterday at 10 pm\" or \"on Monday morning\", or press \"I don't know\".", "ca")
    assert dispatcher.messages[0]["text"] == expected
    assert expected != services.catalogs.gettext(
        "I couldn't work out when that was. Try something like \"just now\", "
        "\"yesterday at 10 pm\" or \"on Monday morning\", or press \"I don't know\".", "en")


def test_a_shared_location_is_matched_to_its_neighbourhood(services: Services) -> None:
    form = ValidateReportForm(services)
    entities = [{"entity": "latitude", "value": 41.3809}, {"entity": "longitude", "value": 2.1734}]
    tracker = make_tracker(text='/inform{"latitude":41.3809,"longitude":2.1734}', entities=entities,
                           slots={"requested_slot": "place"})
    dispatcher = CollectingDispatcher()
    result = form.validate_place("41.38090, 2.17340", dispatcher, tracker, {})
    assert result["neighbourhood"] == "01-01"
    assert (result["latitude"], result["longitude"]) == (41.3809, 2.1734)
    assert "el Raval" in dispatcher.messages[0]["text"]


def test_a_location_outside_the_city_is_refused(services: Services) -> None:
    form = ValidateReportForm(services)
    entities = [{"entity": "latitude", "value": 40.4168}, {"entity": "longitude", "value": -3.7038}]
    tracker = make_tracker(text="/inform", entities=entities, slots={"requested_slot": "place"})
    dispatcher = CollectingDispatcher()
    result = form.validate_place("40.41680, -3.70380", dispatcher, tracker, {})
    assert result["place"] is None and result["latitude"] is None
    assert "Barcelona" in dispatcher.messages[0]["text"]


async def loop_stalls_while(work: Callable[[], Any]) -> float:
    """The longest the event loop went without running other tasks while ``work()`` ran."""
    longest, running = 0.0, True

    async def tick() -> None:
        nonlocal longest
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            longest, last = max(longest, now - last), now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.02)
    result = work()
    if inspect.isawaitable(result):
        await result
    running = False
    await ticker
    return longest


async def test_reading_a_time_from_long_messages_keeps_the_action_servers_loop_free(services: Services) -> None:
    text = "1 2 3 4 5 " * 400  # 4,000 characters: up to a second of dateparser on one core
    form = ValidateReportForm(services)
    asked = make_tracker(text=text, slots={"requested_slot": "incident_time"})
    assert await loop_stalls_while(lambda: form.validate_incident_time(text, CollectingDispatcher(), asked, {})) < 0.1
    described = make_tracker(text=text, slots={"requested_slot": "description"})
    assert await loop_stalls_while(lambda: form.validate_description(text, CollectingDispatcher(), described, {})) < 0.1
    first = make_tracker(text=text)
    assert await loop_stalls_while(lambda: ActionStartReport(services).run(CollectingDispatcher(), first, {})) < 0.1


async def test_save_case_stores_the_report_and_gives_reference_and_photo_hash(services: Services) -> None:
    photo = b"\xff\xd8\xff" + b"jpeg-bytes" * 10
    with session_scope(services.db) as session:
        attachment = attachment_store.add_pending_attachment(
            session=session, sender_id="web:abc", data=photo, mime_type="image/jpeg")
    slots = {
        "incident_type": "vandalism", "description": "they sprayed graffiti on the school door",
        "place": "Carrer de Sants 100", "neighbourhood": "03-18",
        "incident_time": {"iso": "2026-11-24T22:00:00+01:00", "text": "last night", "approximate": True},
        "photos": [str(attachment.id)], "photos_done": True, "contact_mode": "chat",
        "report_confirmed": True, "urgent": True,
    }
    dispatcher = CollectingDispatcher()
    events = await ActionSaveCase(services).run(dispatcher, make_tracker(slots=slots), {})
    ref = REF.search(dispatcher.messages[0]["text"]).group(0)
    with session_scope(services.db) as session:
        case = case_store.get_case_for_sender(session=session, ref=ref, sender_id="web:abc")
        assert case is not None
        assert (case.category, case.neighbourhood_name, case.priority) == ("vandalism", "Sants", "urgent")
        assert case.occurred_at.isoformat() == "2026-11-24T21:00:00+00:00"
        assert [a.sha256 for a in attachment_store.get_attachments(session=session, case_id=case.id)] == [
            hashlib.sha256(photo).hexdigest()]
    texts = [m["text"] for m in dispatcher.messages if m.get("text")]
    receipt = next(t for t in texts if hashlib.sha256(photo).hexdigest() in t)
    assert "as you sent it" in receipt and "without its location" in receipt  # which file the hash is of
    assert SlotSet("incident_type", None) in events and SlotSet("urgent", None) in events


async def test_status_only_for_the_reporter(services: Services) -> None:
    slots = {"incident_type": "noise", "description": "music until 4am every weekend",
             "place": "Plaça del Sol", "incident_time": {"unknown": True}, "contact_mode": "anonymous",
             "report_confirmed": True}
    saved = CollectingDispatcher()
    await ActionSaveCase(services).run(saved, make_tracker(sender="web:owner", slots=slots), {})
    ref = REF.search(saved.messages[0]["text"]).group(0)

    own = CollectingDispatcher()
    await ActionCheckStatus(services).run(own, make_tracker(sender="web:owner", text=f"status {ref}",
                                                            intent="check_status"), {})
    assert ref in own.messages[0]["text"] and "received, waiting to be reviewed" in own.messages[0]["text"]

    other = CollectingDispatcher()
    await ActionCheckStatus(services).run(other, make_tracker(sender="web:intruder", text=f"status {ref}",
                                                              intent="check_status"), {})
    assert "couldn't find" in other.messages[0]["text"]


async def test_forget_me_erases_contact_and_text_and_asks_the_service_to_erase_the_conversation(
    services: Services,
) -> None:
    slots = {"incident_type": "harassment", "description": "a man followed me shouting insults",
             "place": "Carrer Gran de Gràcia", "incident_time": {"unknown": True}, "contact_mode": "contact",
             "contact_name": "Núria Puig", "contact_phone": "612345678", "report_confirmed": True}
    await ActionSaveCase(services).run(CollectingDispatcher(), make_tracker(sender="web:nuria", slots=slots), {})
    dispatcher = CollectingDispatcher()
    await ActionForgetMe(services).run(dispatcher, make_tracker(sender="web:nuria", intent="affirm"), {})
    assert dispatcher.messages[-1]["custom"] == {"control": "erase_conversation"}
    assert "(1 " in dispatcher.messages[0]["text"]
    with services.db.connect() as connection:
        dump = "\n".join(str(row) for table in ("reporters", "cases", "case_events", "audit_log")
                         for row in connection.exec_driver_sql(f'SELECT * FROM "{table}"'))
    for secret in ("Núria", "612345678", "followed me", "Gran de Gràcia"):
        assert secret not in dump


async def test_photos_are_collected_at_any_step_until_the_limit(services: Services) -> None:
    form = ValidateReportForm(services)
    photo_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
    tracker = make_tracker(text=f'/inform{{"photo":"{photo_id}"}}', entities=[{"entity": "photo", "value": photo_id}],
                           slots={"requested_slot": "place"}, active_loop="report_form")
    extracted = await form.extract_photos_done(CollectingDispatcher(), tracker, {})
    assert extracted == {"photos_done": {"photo": photo_id}}
    result = form.validate_photos_done(extracted["photos_done"], CollectingDispatcher(), tracker, {})
    assert result == {"photos": [photo_id], "photos_done": None}

    full = make_tracker(slots={"photos": [photo_id] * 5})
    dispatcher = CollectingDispatcher()
    assert form.validate_photos_done({"photo": photo_id}, dispatcher, full, {}) == {"photos_done": True}
    assert "5" in dispatcher.messages[0]["text"]


async def test_an_answer_that_is_not_a_type_is_asked_again(services: Services) -> None:
    form = ValidateReportForm(services)
    tracker = make_tracker(text="Carrer de Sants 20", slots={"requested_slot": "incident_type"},
                           history=("someone smashed the window of my car last night",))
    extracted = await form.extract_incident_type(CollectingDispatcher(), tracker, {})
    dispatcher = CollectingDispatcher()
    result = form.validate_incident_type(extracted["incident_type"], dispatcher, tracker, {})
    assert result == {"incident_type": None, "failed_attempts": 1.0}
    assert dispatcher.messages[0]["text"] == "Please choose one of the options."


async def test_handoff_is_recorded_on_the_latest_open_case_and_opens_a_live_chat(services: Services) -> None:
    slots = {"incident_type": "drugs", "description": "people dealing at the park every afternoon",
             "place": "Parc de la Ciutadella", "incident_time": {"unknown": True}, "contact_mode": "chat",
             "report_confirmed": True}
    await ActionSaveCase(services).run(CollectingDispatcher(), make_tracker(sender="web:h", slots=slots), {})
    dispatcher = CollectingDispatcher()
    await ActionRequestHandoff(services).run(dispatcher, make_tracker(sender="web:h", intent="human_handoff",
                                                                      text="I want to talk to a person"), {})
    ref = REF.search(dispatcher.messages[0]["text"]).group(0)
    with session_scope(services.db) as session:
        case = case_store.get_case_by_ref(session=session, ref=ref)
        assert case.handoff_requested_at is not None
        assert is_live(session=session, case=case)
        assert live_case_for_sender(session=session, sender_id="web:h").ref == ref

    nobody = CollectingDispatcher()
    await ActionRequestHandoff(services).run(nobody, make_tracker(sender="web:new", intent="human_handoff"), {})
    assert nobody.messages[0]["buttons"][0]["payload"] == "/report_incident"


async def test_language_switch_answers_in_the_new_language(services: Services) -> None:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(text="en català, si us plau", intent="change_language",
                           entities=[{"entity": "language", "value": "ca"}])
    events = await ActionChangeLanguage(services).run(dispatcher, tracker, {})
    assert events == [SlotSet("language", "ca")]
    assert dispatcher.messages[0]["text"] == "Fet, a partir d'ara et parlaré en català."
    asking = CollectingDispatcher()
    assert await ActionChangeLanguage(services).run(asking, make_tracker(intent="change_language"), {}) == []
    assert [b["payload"] for b in asking.messages[0]["buttons"]][0] == '/change_language{"language":"en"}'


async def test_a_shared_location_keeps_its_coordinates_through_the_whole_form_run(services: Services) -> None:
    """rasa-sdk drops extracted slots that the form does not require: the coordinates must
    come out of the validation step, or the case is saved without them."""
    domain = {"forms": {"report_form": {"required_slots": []}}, "slots": {}}
    for path in sorted((PROJECT_ROOT / "dialogues" / "domain").glob("*.yml")):
        domain["slots"].update(yaml.safe_load(path.read_text(encoding="utf-8")).get("slots") or {})
    entities = [{"entity": "latitude", "value": 41.3809}, {"entity": "longitude", "value": 2.1734}]
    tracker = make_tracker(text='/inform{"latitude":41.3809,"longitude":2.1734}', entities=entities,
                           slots={"requested_slot": "place"}, active_loop="report_form")
    events = await ValidateReportForm(services).run(CollectingDispatcher(), tracker, domain)
    slots = {event["name"]: event["value"] for event in events if event.get("event") == "slot"}
    assert (slots.get("latitude"), slots.get("longitude"), slots.get("neighbourhood")) == (41.3809, 2.1734, "01-01")

    typed = make_tracker(text="Carrer de Sants 20", slots={"requested_slot": "place", "latitude": 41.38,
                                                           "longitude": 2.17}, active_loop="report_form")
    events = await ValidateReportForm(services).run(CollectingDispatcher(), typed, domain)
    slots = {event["name"]: event["value"] for event in events if event.get("event") == "slot"}
    # the typed address replaces the earlier shared location: its own point, not the old one
    assert slots["place"]["text"] == "Carrer de Sants 20" and slots["place"]["source"] != "shared_location"
    assert (slots["latitude"], slots["longitude"]) != (41.38, 2.17)


@pytest.mark.parametrize(
    ("typed", "mode"),
    [
        ("anonimo", "anonymous"), ("de forma anònima", "anonymous"), ("keep me anonymous", "anonymous"),
        ("no name", "anonymous"), ("leave my name out of it", "anonymous"), ("millor sense nom", "anonymous"),
        ("sin dar mis datos", "anonymous"), ("la primera", "anonymous"), ("1", "anonymous"),
        ("with my details", "contact"), ("em podeu trucar", "contact"), ("per mail", "contact"),
        ("os dejo mi nombre y telefono", "contact"), ("the third one", "contact"),
        ("just keep me updated here", "chat"), ("pel xat", "chat"), ("avisadme por aqui", "chat"),
        ("la segona", "chat"),
    ],
)
async def test_a_typed_contact_choice_is_understood(services: Services, typed: str, mode: str) -> None:
    tracker = make_tracker(text=typed, slots={"requested_slot": "contact_mode"}, active_loop="report_form")
    form = ValidateReportForm(services)
    assert await form.extract_contact_mode(CollectingDispatcher(), tracker, {}) == {"contact_mode": mode}


async def test_a_typed_contact_answer_that_chooses_nothing_is_asked_again(services: Services) -> None:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(text="mmm", slots={"requested_slot": "contact_mode"}, active_loop="report_form")
    form = ValidateReportForm(services)
    extracted = await form.extract_contact_mode(dispatcher, tracker, {})
    assert form.validate_contact_mode(extracted["contact_mode"], dispatcher, tracker, {}) == {
        "contact_mode": None, "failed_attempts": 1.0,
    }
    assert dispatcher.messages
