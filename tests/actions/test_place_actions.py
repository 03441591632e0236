"""Where and when in the report form (issue #11), on real rasa-sdk objects: the question with
buttons for a street in several neighbourhoods, the answers to it, what is said back in the
citizen's language, and a replayed message read against when it was written."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from common.responses import render
from dialogues.actions.context import Services
from dialogues.actions.report import ActionAskReportConfirmed, ActionSaveCase, ValidateReportForm, place_question
from storage import cases as case_store
from storage.db import session_scope
from tests.actions.conftest import MADRID, NOW
from tests.actions.test_actions import make_tracker


def state(tracker: Tracker) -> dict[str, Any]:
    """The tracker as the engine sends it to the NLG endpoint."""
    return {"slots": tracker.slots, "latest_message": tracker.latest_message, "events": tracker.events}


def said(services: Services, name: str, locale: str, **args: Any) -> str:
    return str(render(name, services.catalogs, locale, city="Barcelona", **args)["text"])


def test_a_street_in_several_neighbourhoods_is_asked_with_buttons(services: Services) -> None:
    form, dispatcher = ValidateReportForm(services), CollectingDispatcher()
    tracker = make_tracker(text="calle Mallorca", slots={"requested_slot": "place", "language": "es"},
                           active_loop="report_form")
    result = form.validate_place("calle Mallorca", dispatcher, tracker, {})
    assert result["place"] is None and dispatcher.messages == []  # nothing guessed, nothing stored
    question = place_question(services, state(tracker), "es")
    assert question is not None
    assert question["text"] == said(services, "utter_ask_place_neighbourhood", "es", street="Mallorca")
    titles = [b["title"] for b in question["buttons"]]
    assert {"la Sagrada Família", "la Dreta de l'Eixample", "l'Antiga Esquerra de l'Eixample"} <= set(titles)
    assert titles[-1] == "Una esquina o un número"
    assert question["buttons"][0]["payload"].startswith('/inform{"neighbourhood_code":')
    assert all(len(b["payload"].encode()) <= 64 for b in question["buttons"])  # Telegram's limit
    assert question["custom"] == {"request": "location"}  # and "share my location"


async def test_pressing_a_neighbourhood_places_the_street_there(services: Services) -> None:
    form, dispatcher = ValidateReportForm(services), CollectingDispatcher()
    entities = [{"entity": "neighbourhood_code", "value": "02-06"}]
    tracker = make_tracker(text='/inform{"neighbourhood_code":"02-06"}',
                           entities=entities, slots={"requested_slot": "place", "language": "ca"},
                           active_loop="report_form", history=("carrer de Mallorca",))
    extracted = await form.extract_place(dispatcher, tracker, {})
    result = form.validate_place(extracted["place"], dispatcher, tracker, {})
    assert result["neighbourhood"] == "02-06" and result["place"]["source"] == "street"
    assert result["latitude"] is not None and result["place"]["radius"] > 100  # approximate: a stretch of street
    assert dispatcher.messages[0]["text"] == "Entès: Mallorca, la Sagrada Família."


def test_a_typed_answer_completes_the_street_asked_about(services: Services) -> None:
    form = ValidateReportForm(services)
    for answer, neighbourhood, source in (
        ("Sagrada Família", "02-06", "street"),  # the neighbourhood's name
        ("Pau Claris", "02-07", "corner"),  # the other street of the corner
    ):
        dispatcher = CollectingDispatcher()
        tracker = make_tracker(text=answer, slots={"requested_slot": "place"}, active_loop="report_form",
                               history=("calle Mallorca",))
        result = form.validate_place(answer, dispatcher, tracker, {})
        assert (result["neighbourhood"], result["place"]["source"]) == (neighbourhood, source), answer


def test_a_corner_is_said_back_and_a_place_nowhere_keeps_the_words(services: Services) -> None:
    form = ValidateReportForm(services)
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(text="cantonada Mallorca i Pau Claris", slots={"requested_slot": "place", "language": "ca"})
    result = form.validate_place("cantonada Mallorca i Pau Claris", dispatcher, tracker, {})
    assert result["neighbourhood"] == "02-07" and result["place"]["source"] == "corner"
    assert dispatcher.messages[0]["text"] == "Entès: cantonada Mallorca / Pau Claris, la Dreta de l'Eixample."

    dispatcher = CollectingDispatcher()
    tracker = make_tracker(text="detrás de mi casa", slots={"requested_slot": "place", "language": "es"})
    result = form.validate_place("detrás de mi casa", dispatcher, tracker, {})
    assert result["neighbourhood"] is None and result["place"]["source"] == "not_located"
    assert result["place"]["text"] == "detrás de mi casa"
    assert dispatcher.messages[0]["text"] == said(services, "utter_place_not_located", "es", place="detrás de mi casa")


def test_asked_twice_the_words_are_kept_rather_than_asking_forever(services: Services) -> None:
    form, dispatcher = ValidateReportForm(services), CollectingDispatcher()
    tracker = make_tracker(text="Mallorca", slots={"requested_slot": "place", "failed_attempts": 2.0},
                           history=("Mallorca",))
    result = form.validate_place("Mallorca", dispatcher, tracker, {})
    assert result["place"]["source"] == "not_located" and result["neighbourhood"] is None


def _report_slots(**overrides: Any) -> dict[str, Any]:
    slots = {
        "incident_type": "theft", "description": "em van robar el mòbil a la terrassa", "photos": [],
        "place": {"text": "Mallorca amb Pau Claris", "label": "Mallorca / Pau Claris", "source": "corner",
                  "radius": 30, "street": "Carrer de Mallorca"},
        "neighbourhood": "02-07", "latitude": 41.39501, "longitude": 2.16411,
        "incident_time": {"iso": (NOW - timedelta(days=1)).replace(hour=22, minute=15).isoformat(),
                          "text": "ahir a les 22:15", "approximate": False},
        "contact_mode": "anonymous", "report_confirmed": True,
    }
    return {**slots, **overrides}


async def test_the_summary_and_the_confirmation_say_where_and_when_in_the_citizens_language(
    services: Services,
) -> None:
    summary = ActionAskReportConfirmed(services).summary(make_tracker(slots=_report_slots(language="ca")))
    assert "• On: cantonada Mallorca / Pau Claris, la Dreta de l'Eixample" in summary
    assert "• Quan: ahir a les 22:15" in summary

    shared = _report_slots(language="es", neighbourhood="02-10", latitude=41.378, longitude=2.160,
                           place={"text": "41.37800, 2.16000", "label": "Sant Antoni", "source": "shared_location",
                                  "radius": 25, "street": None},
                           incident_time={"iso": NOW.replace(hour=9, minute=0).isoformat(), "text": "esta mañana",
                                          "approximate": True})
    summary = ActionAskReportConfirmed(services).summary(make_tracker(slots=shared))
    assert "• Dónde: ubicación compartida, Sant Antoni" in summary
    assert "• Cuándo: hoy hacia las 9" in summary

    dispatcher = CollectingDispatcher()
    await ActionSaveCase(services).run(dispatcher, make_tracker(slots=_report_slots(language="es")), {})
    confirmation = dispatcher.messages[0]["text"]
    assert "Dónde: esquina Mallorca / Pau Claris, la Dreta de l'Eixample. Cuándo: ayer a las 22:15." in confirmation
    with session_scope(services.db) as session:
        case = case_store.list_cases_for_sender(session=session, sender_id="web:abc")[0]
        assert (case.location_source, case.location_radius) == ("corner", 30)
        assert (case.latitude, case.longitude, case.neighbourhood_name) == (41.39501, 2.16411, "la Dreta de l'Eixample")
        assert case.address == "Mallorca amb Pau Claris"  # the citizen's own words


async def test_a_replayed_message_is_read_against_when_it_was_written(services: Services) -> None:
    """Kept for two hours while the engine was down: "ahora mismo" is when it was written."""
    written = NOW - timedelta(hours=2)
    form = ValidateReportForm(services)
    tracker = Tracker.from_dict({
        "sender_id": "web:abc", "slots": {"requested_slot": "incident_time", "photos": []},
        "latest_message": {"text": "ahora mismo", "intent": {"name": "inform"}, "entities": []},
        "events": [{"event": "user", "text": "ahora mismo", "parse_data": {},
                    "metadata": {"received_at": written.astimezone(MADRID).isoformat()}}],
        "active_loop": {"name": "report_form"}, "latest_action_name": "action_listen",
    })
    result = await form.validate_incident_time("ahora mismo", CollectingDispatcher(), tracker, {})
    assert datetime.fromisoformat(result["incident_time"]["iso"]) == written
    # "hace 10 minutos" too, and without the stamp the clock is used
    result = await form.validate_incident_time("hace 10 minutos", CollectingDispatcher(), tracker, {})
    assert datetime.fromisoformat(result["incident_time"]["iso"]) == written - timedelta(minutes=10)
    fresh = make_tracker(text="ahora mismo", slots={"requested_slot": "incident_time"})
    result = await form.validate_incident_time("ahora mismo", CollectingDispatcher(), fresh, {})
    assert datetime.fromisoformat(result["incident_time"]["iso"]) == NOW


async def test_a_number_then_a_button_keeps_the_street_of_the_first_answer(services: Services) -> None:
    form = ValidateReportForm(services)
    history = ("calle Mallorca", "200")  # asked which neighbourhood, then a number that narrows it
    question = place_question(services, state(make_tracker(text="200", slots={"requested_slot": "place"},
                                                           history=history[:1])), "en")
    assert question is not None and len(question["buttons"]) == 3  # two neighbourhoods + "a corner or a number"
    code = question["buttons"][0]["payload"].split('"neighbourhood_code":"')[1][:5]
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(text=f'/inform{{"neighbourhood_code":"{code}"}}',
                           entities=[{"entity": "neighbourhood_code", "value": code}],
                           slots={"requested_slot": "place"}, history=history)
    extracted = await form.extract_place(dispatcher, tracker, {})
    result = form.validate_place(extracted["place"], dispatcher, tracker, {})
    assert result["neighbourhood"] == code and result["place"]["street"] == "Carrer de Mallorca"

    # a button of a question about another street is not taken as an answer
    stale = make_tracker(text='/inform{"neighbourhood_code":"10-70"}',
                         entities=[{"entity": "neighbourhood_code", "value": "10-70"}],
                         slots={"requested_slot": "place"}, history=("calle Mallorca",))
    extracted = await form.extract_place(CollectingDispatcher(), stale, {})
    assert form.validate_place(extracted["place"], CollectingDispatcher(), stale, {}) == {"place": None}


async def test_a_time_still_to_come_is_refused(services: Services) -> None:
    form = ValidateReportForm(services)
    for phrase in ("mañana a las 10", "demà", "hoy a las 23:00", "el 3 de marzo de 2027"):
        dispatcher = CollectingDispatcher()
        tracker = make_tracker(text=phrase, slots={"requested_slot": "incident_time", "language": "es"})
        result = await form.validate_incident_time(phrase, dispatcher, tracker, {})
        assert result["incident_time"] is None, phrase
        assert dispatcher.messages[0]["text"] == said(services, "utter_time_in_future", "es"), phrase
