"""Neighbourhood alerts, adding information after a follow-up and the survey: the actions on
real rasa-sdk objects and a real SQLite database, exact events and exact texts."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlmodel import select

from common.outreach import follow_up_message, survey_opening, survey_payload
from common.responses import render
from dialogues.actions.alerts import ActionListSubscriptions, ActionSubscribeAlerts, ActionUnsubscribeAlerts
from dialogues.actions.context import Services
from dialogues.actions.followup import (
    ActionAskSurvey,
    ActionFinishSurvey,
    ActionStartCaseInfo,
    ActionStartSurvey,
    ActionYesOrNo,
    ValidateCaseInfoForm,
    ValidateSurveyForm,
    parse_score,
)
from storage import cases as case_store
from storage import subscriptions
from storage.db import session_scope
from storage.models import EVENT_CITIZEN_INFO, EVENT_SURVEY_ANSWERED, CaseEvent, SurveyResponse
from storage.surveys import open_survey
from tests.actions.conftest import NOW
from tests.actions.test_actions import make_tracker
from tests.cases import file_case

DOMAIN_DIR = Path(__file__).resolve().parents[2] / "dialogues" / "domain"



@pytest.fixture(scope="module")
def domain() -> dict[str, Any]:
    merged: dict[str, Any] = {"forms": {}, "slots": {}}
    for path in sorted(DOMAIN_DIR.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        merged["forms"].update(data.get("forms") or {})
        merged["slots"].update(data.get("slots") or {})
    return merged


def text(services: Services, name: str, locale: str = "en", **args: Any) -> str:
    defaults = {"city": services.settings.city_name, "max_photos": services.settings.max_photos_per_report}
    return render(name, services.catalogs, locale, **{**defaults, **args})["text"]


def new_case(services: Services, sender: str, status: str = "resolved") -> str:
    with session_scope(services.db) as session:
        return file_case(session, sender, status=status).ref


def codes(services: Services, sender: str) -> list[str]:
    with session_scope(services.db) as session:
        return subscriptions.list_subscriptions(session=session, sender_id=sender)


def button(code: str) -> list[dict[str, Any]]:
    return [{"entity": "neighbourhood_code", "value": code}]


# --- outreach messages ---------------------------------------------------------------------


def test_outreach_messages_are_translated_and_their_payloads_fit_telegram(services: Services) -> None:
    body, buttons = follow_up_message(services.catalogs, "es", case_ref="K7Q-4M2", status="in_progress")
    assert body.startswith("Hace unos días presentaste el aviso K7Q-4M2. Su estado ahora: en curso.")
    assert buttons == [("Añadir información", '/add_case_info{"case_ref":"K7Q-4M2"}'),
                       ("Todo bien, gracias", "/thank")]
    body, buttons = survey_opening(services.catalogs, "ca", case_ref="K7Q-4M2")
    assert "K7Q-4M2" in body and body.endswith("Primera: es va solucionar el problema?")
    assert buttons == [("Sí", '/survey_answer{"survey":"K7Q-4M2:solved:yes"}'),
                       ("No", '/survey_answer{"survey":"K7Q-4M2:solved:no"}')]
    assert len(survey_payload("K7Q-4M2", "comment", "skip").encode()) <= 64


# --- alerts ------------------------------------------------------------------------------


async def test_subscribe_by_district_then_neighbourhood_button(services: Services) -> None:
    action = ActionSubscribeAlerts(services)
    dispatcher = CollectingDispatcher()
    await action.run(dispatcher, make_tracker(text="/subscribe_alerts", intent="subscribe_alerts"), {})
    first = dispatcher.messages[0]
    assert first["text"] == text(services, "utter_alerts_choose_district")
    assert len(first["buttons"]) == 10
    assert first["buttons"][5] == {"title": "Gràcia", "payload": '/subscribe_alerts{"district_code":"06"}'}
    assert all(len(b["payload"].encode()) <= 64 for b in first["buttons"])

    dispatcher = CollectingDispatcher()
    tracker = make_tracker(text='/subscribe_alerts{"district_code":"06"}', intent="subscribe_alerts",
                           entities=[{"entity": "district_code", "value": "06"}], slots={"language": "es"})
    await action.run(dispatcher, tracker, {})
    assert dispatcher.messages[0]["text"] == "¿Qué barrio de Gràcia?"
    titles = [b["title"] for b in dispatcher.messages[0]["buttons"]]
    assert sorted(titles) == sorted(
        ["la Vila de Gràcia", "el Camp d'en Grassot i Gràcia Nova", "la Salut", "el Coll", "Vallcarca i els Penitents"])

    dispatcher = CollectingDispatcher()
    tracker = make_tracker(text='/subscribe_alerts{"neighbourhood_code":"06-31"}', intent="subscribe_alerts",
                           entities=button("06-31"), slots={"language": "es"})
    assert await action.run(dispatcher, tracker, {}) == []
    assert dispatcher.messages[0]["text"] == text(services, "utter_alerts_subscribed", "es", neighbourhood="la Vila de Gràcia")
    assert codes(services, "web:abc") == ["06-31"]

    dispatcher = CollectingDispatcher()
    await action.run(dispatcher, tracker, {})
    assert dispatcher.messages[0]["text"] == "Ya recibes las alertas de la Vila de Gràcia."
    assert codes(services, "web:abc") == ["06-31"]


async def test_subscribe_by_location_by_name_and_unknown_places(services: Services) -> None:
    action = ActionSubscribeAlerts(services)
    location = [{"entity": "latitude", "value": 41.3809}, {"entity": "longitude", "value": 2.1734}]
    dispatcher = CollectingDispatcher()
    await action.run(dispatcher, make_tracker(text='/inform{"latitude":41.3809,"longitude":2.1734}', entities=location), {})
    assert dispatcher.messages[0]["text"].startswith("Done: you will get alerts for el Raval")

    dispatcher = CollectingDispatcher()
    await action.run(dispatcher, make_tracker(text="alertes de la Barceloneta, si us plau", intent="subscribe_alerts",
                                              slots={"language": "ca"}), {})
    assert dispatcher.messages[0]["text"].startswith("Fet: rebràs aquí les alertes de la Barceloneta")
    assert codes(services, "web:abc") == ["01-01", "01-03"]

    dispatcher = CollectingDispatcher()
    tracker = make_tracker(text="quiero alertas de Narnia", intent="subscribe_alerts",
                           entities=[{"entity": "place", "value": "Narnia"}], slots={"language": "es"})
    await action.run(dispatcher, tracker, {})
    assert dispatcher.messages[0]["text"] == text(services, "utter_alerts_place_unknown", "es", place="Narnia")
    assert len(dispatcher.messages[0]["buttons"]) == 10

    dispatcher = CollectingDispatcher()
    far = [{"entity": "latitude", "value": 40.4168}, {"entity": "longitude", "value": -3.7038}]
    await action.run(dispatcher, make_tracker(text='/inform{"latitude":40.4168,"longitude":-3.7038}', entities=far), {})
    assert dispatcher.messages[0]["text"] == text(services, "utter_alerts_location_outside")
    assert codes(services, "web:abc") == ["01-01", "01-03"]


async def test_subscribe_by_a_street_name_is_read_by_the_place_resolver(services: Services) -> None:
    action = ActionSubscribeAlerts(services)
    # a street named like a neighbourhood is the street: it crosses several, so the citizen chooses
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(text="alertas de la avenida de Sarrià", intent="subscribe_alerts",
                           entities=[{"entity": "place", "value": "avenida de Sarrià"}], slots={"language": "es"})
    await action.run(dispatcher, tracker, {})
    message = dispatcher.messages[0]
    assert message["text"] == text(services, "utter_alerts_which_neighbourhood", "es", place="avenida de Sarrià")
    titles = [button["title"] for button in message["buttons"]]
    assert "Sarrià" not in titles and "les Corts" in titles
    assert all(b["payload"].startswith('/subscribe_alerts{"neighbourhood_code":') for b in message["buttons"])
    assert codes(services, "web:abc") == []  # nothing subscribed by guessing

    # a place in one neighbourhood subscribes to it at once
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(text="alerts for Plaça del Sol", intent="subscribe_alerts",
                           entities=[{"entity": "place", "value": "Plaça del Sol"}], slots={"language": "en"})
    await action.run(dispatcher, tracker, {})
    assert dispatcher.messages[0]["text"].startswith("Done: you will get alerts for la Vila de Gràcia")
    assert codes(services, "web:abc") == ["06-31"]


async def test_list_and_unsubscribe(services: Services) -> None:
    lister, remover = ActionListSubscriptions(services), ActionUnsubscribeAlerts(services)
    dispatcher = CollectingDispatcher()
    await lister.run(dispatcher, make_tracker(text="my alerts", intent="list_subscriptions"), {})
    assert dispatcher.messages[0]["text"] == text(services, "utter_alerts_none")

    for code in ("06-31", "01-01"):
        with session_scope(services.db) as session:
            subscriptions.subscribe(session=session, sender_id="web:abc", channel="web", locale="en",
                                    neighbourhood_code=code)
    dispatcher = CollectingDispatcher()
    await lister.run(dispatcher, make_tracker(text="les meves alertes", intent="list_subscriptions",
                                              slots={"language": "ca"}), {})
    assert dispatcher.messages[0]["text"] == "Reps alertes de: el Raval, la Vila de Gràcia."

    dispatcher = CollectingDispatcher()
    await remover.run(dispatcher, make_tracker(text="stop alerts", intent="unsubscribe_alerts"), {})
    assert dispatcher.messages[0]["text"] == "Which alerts do you want to stop?"
    assert [b["payload"] for b in dispatcher.messages[0]["buttons"]] == [
        '/unsubscribe_alerts{"neighbourhood_code":"01-01"}',
        '/unsubscribe_alerts{"neighbourhood_code":"06-31"}',
        '/unsubscribe_alerts{"neighbourhood_code":"all"}',
    ]

    dispatcher = CollectingDispatcher()
    await remover.run(dispatcher, make_tracker(text='/unsubscribe_alerts{"neighbourhood_code":"01-01"}',
                                               intent="unsubscribe_alerts", entities=button("01-01")), {})
    assert dispatcher.messages[0]["text"] == "Done: you will no longer get alerts for el Raval."
    dispatcher = CollectingDispatcher()
    await remover.run(dispatcher, make_tracker(text="no more alerts for Raval", intent="unsubscribe_alerts"), {})
    assert dispatcher.messages[0]["text"] == "You were not getting alerts for el Raval."
    dispatcher = CollectingDispatcher()
    await remover.run(dispatcher, make_tracker(text='/unsubscribe_alerts{"neighbourhood_code":"all"}',
                                               intent="unsubscribe_alerts", entities=button("all")), {})
    assert dispatcher.messages[0]["text"] == "Done: you will no longer get any neighbourhood alerts."
    assert codes(services, "web:abc") == []


# --- adding information --------------------------------------------------------------------


async def test_add_information_only_to_the_citizens_own_case(services: Services, domain: dict[str, Any]) -> None:
    mine = new_case(services, "web:abc", status="in_progress")
    theirs = new_case(services, "web:other", status="in_progress")
    start = ActionStartCaseInfo(services)

    dispatcher = CollectingDispatcher()
    events = await start.run(dispatcher, make_tracker(text=f'/add_case_info{{"case_ref":"{theirs}"}}',
                                                      intent="add_case_info",
                                                      entities=[{"entity": "case_ref", "value": theirs}]), {})
    assert events == [SlotSet("case_info_ref", None), SlotSet("case_info", None)]
    assert dispatcher.messages[0]["text"] == text(services, "utter_status_not_found", ref=theirs)

    events = await start.run(CollectingDispatcher(), make_tracker(
        text=f'/add_case_info{{"case_ref":"{mine}"}}', intent="add_case_info",
        entities=[{"entity": "case_ref", "value": mine}]), {})
    assert events == [SlotSet("case_info", None), SlotSet("case_info_ref", mine)]

    form = ValidateCaseInfoForm(services)
    slots = {"case_info_ref": mine, "requested_slot": "case_info", "language": "es"}
    dispatcher = CollectingDispatcher()
    events = await form.run(dispatcher, make_tracker(text="/inform{\"photos_done\":\"yes\"}", slots=slots,
                                                     active_loop="case_info_form"), domain)
    assert SlotSet("case_info", None) in events
    assert dispatcher.messages[0]["text"].startswith("Escribe en un mensaje (texto) lo que quieres añadir")

    said = "El coche que lo hizo era una furgoneta blanca"
    events = await form.run(CollectingDispatcher(), make_tracker(text=said, slots=slots, active_loop="case_info_form"),
                            domain)
    assert SlotSet("case_info", "added") in events
    with session_scope(services.db) as session:
        case = case_store.get_case_by_ref(session=session, ref=mine)
        assert case is not None
        added = [e.text for e in case_store.get_case_events(session=session, case_id=case.id) if e.kind == EVENT_CITIZEN_INFO]
    assert added == [said]


# --- survey --------------------------------------------------------------------------------


def survey_entity(value: str) -> list[dict[str, Any]]:
    return [{"entity": "survey", "value": value}]


async def test_a_survey_by_buttons_and_typing(services: Services, domain: dict[str, Any]) -> None:
    ref = new_case(services, "web:abc")
    dispatcher = CollectingDispatcher()
    events = await ActionStartSurvey(services).run(dispatcher, make_tracker(
        text=survey_payload(ref, "solved", "yes"), intent="survey_answer", entities=survey_entity(f"{ref}:solved:yes")), {})
    assert events == [SlotSet("survey_case", ref), SlotSet("survey_solved", "yes"), SlotSet("survey_satisfaction", None),
                      SlotSet("survey_safety", None), SlotSet("survey_comment", None)]
    assert dispatcher.messages == []

    dispatcher = CollectingDispatcher()
    await ActionAskSurvey(services, "survey_satisfaction").run(dispatcher, make_tracker(slots={"survey_case": ref}), {})
    assert [b["payload"] for b in dispatcher.messages[0]["buttons"]] == [
        survey_payload(ref, "sat", str(n)) for n in range(1, 6)]

    form = ValidateSurveyForm(services)
    slots = {"survey_case": ref, "survey_solved": "yes", "requested_slot": "survey_satisfaction", "language": "es"}
    dispatcher = CollectingDispatcher()
    events = await form.run(dispatcher, make_tracker(text="pues regular", slots=slots, active_loop="survey_form"), domain)
    assert SlotSet("survey_satisfaction", None) in events
    assert dispatcher.messages[0]["text"] == "Responde con un número del 1 al 5, o pulsa uno de los botones."

    events = await form.run(CollectingDispatcher(), make_tracker(text="un cuatro", slots=slots, active_loop="survey_form"),
                            domain)
    assert SlotSet("survey_satisfaction", "4") in events and SlotSet("survey_safety", None) in events

    slots.update(survey_satisfaction="4", requested_slot="survey_safety")
    events = await form.run(CollectingDispatcher(), make_tracker(
        text=survey_payload(ref, "safe", "2"), intent="survey_answer", entities=survey_entity(f"{ref}:safe:2"),
        slots=slots, active_loop="survey_form"), domain)
    assert SlotSet("survey_safety", "2") in events and SlotSet("survey_comment", None) in events

    slots.update(survey_safety="2", requested_slot="survey_comment")
    events = await form.run(CollectingDispatcher(), make_tracker(
        text="Ahora hay más patrullas, gracias", slots=slots, active_loop="survey_form"), domain)
    assert SlotSet("survey_comment", "done") in events

    dispatcher = CollectingDispatcher()
    slots["survey_comment"] = "done"
    events = await ActionFinishSurvey(services).run(dispatcher, make_tracker(slots=slots), {})
    assert dispatcher.messages[0]["text"] == text(services, "utter_survey_thanks", "es")
    assert SlotSet("survey_case", None) in events

    with session_scope(services.db) as session:
        stored = session.exec(select(SurveyResponse)).one()
        answered = session.exec(select(CaseEvent).where(CaseEvent.kind == EVENT_SURVEY_ANSWERED)).all()
    assert (stored.solved, stored.satisfaction, stored.safety, stored.comment) == (True, 4, 2, "Ahora hay más patrullas, gracias")
    assert len(answered) == 1

    # the old first button pressed again: a clear answer, nothing changes
    dispatcher = CollectingDispatcher()
    events = await ActionStartSurvey(services).run(dispatcher, make_tracker(
        text=survey_payload(ref, "solved", "no"), intent="survey_answer", entities=survey_entity(f"{ref}:solved:no")), {})
    assert SlotSet("survey_case", None) in events
    assert dispatcher.messages[0]["text"] == text(services, "utter_survey_already_answered", ref=ref)


async def test_someone_elses_survey_is_refused(services: Services) -> None:
    ref = new_case(services, "web:other")
    dispatcher = CollectingDispatcher()
    events = await ActionStartSurvey(services).run(dispatcher, make_tracker(
        text=survey_payload(ref, "solved", "yes"), intent="survey_answer", entities=survey_entity(f"{ref}:solved:yes")), {})
    assert SlotSet("survey_case", None) in events
    assert dispatcher.messages[0]["text"] == text(services, "utter_survey_not_found", ref=ref)
    with session_scope(services.db) as session:
        assert session.exec(select(SurveyResponse)).all() == []


async def test_typed_yes_no_and_skip(services: Services, domain: dict[str, Any]) -> None:
    ref = new_case(services, "web:abc")
    form = ValidateSurveyForm(services)
    slots = {"survey_case": ref, "requested_slot": "survey_solved"}
    events = await form.run(CollectingDispatcher(), make_tracker(text="no", intent="deny", slots=slots,
                                                                 active_loop="survey_form"), domain)
    assert SlotSet("survey_solved", "no") in events
    slots.update(survey_solved="no", survey_satisfaction="1", survey_safety="3", requested_slot="survey_comment")
    # the scores are stored one by one; here they are stored directly
    with session_scope(services.db) as session:
        from storage import surveys
        surveys.record_survey_answer(session=session, ref=ref, sender_id="web:abc", question="satisfaction", value=1)
        surveys.record_survey_answer(session=session, ref=ref, sender_id="web:abc", question="safety", value=3)
    events = await form.run(CollectingDispatcher(), make_tracker(
        text=survey_payload(ref, "comment", "skip"), intent="survey_answer", entities=survey_entity(f"{ref}:comment:skip"),
        slots=slots, active_loop="survey_form"), domain)
    assert SlotSet("survey_comment", "done") in events
    with session_scope(services.db) as session:
        stored = session.exec(select(SurveyResponse)).one()
    assert (stored.solved, stored.satisfaction, stored.safety, stored.comment) == (False, 1, 3, None)
    assert stored.answered_at is not None


def test_parse_score() -> None:
    assert [parse_score(t) for t in ("4", "un 4", "4/5", "cuatro", "quatre", "five", "nota: 3!")] == [4, 4, 4, 4, 4, 5, 3]
    assert [parse_score(t) for t in ("10", "3 o 4", "bé", "0", "2.5")] == [None, None, None, None, None]


def survey_sent(services: Services, ref: str, sent_at: datetime) -> None:
    with session_scope(services.db) as session:
        case = case_store.get_case_by_ref(session=session, ref=ref)
        assert case is not None
        survey = open_survey(session=session, case=case)
        survey.sent_at = sent_at
        session.add(survey)
        session.commit()


async def test_a_typed_no_answers_the_survey_sent_lately(services: Services) -> None:
    ref = new_case(services, "web:abc")
    survey_sent(services, ref, NOW - timedelta(hours=5))
    dispatcher = CollectingDispatcher()
    events = await ActionYesOrNo(services).run(dispatcher, make_tracker(text="no", intent="deny"), {})
    assert events == [SlotSet("survey_case", ref), SlotSet("survey_solved", "no"), SlotSet("survey_satisfaction", None),
                      SlotSet("survey_safety", None), SlotSet("survey_comment", None)]
    assert dispatcher.messages == []  # the form asks the next question
    with session_scope(services.db) as session:
        assert session.exec(select(SurveyResponse.solved)).one() is False


async def test_a_typed_yes_with_no_survey_waiting_hears_what_barri_does(services: Services) -> None:
    old = new_case(services, "web:abc")
    survey_sent(services, old, NOW - timedelta(seconds=services.settings.survey_answer_window_seconds + 60))
    someone_elses = new_case(services, "web:other")
    survey_sent(services, someone_elses, NOW - timedelta(hours=1))
    dispatcher = CollectingDispatcher()
    events = await ActionYesOrNo(services).run(dispatcher, make_tracker(text="sí", intent="affirm"), {})
    assert SlotSet("survey_case", None) in events
    assert dispatcher.messages[0]["text"] == text(services, "utter_default")
    with session_scope(services.db) as session:
        assert session.exec(select(SurveyResponse.solved)).all() == [None, None]
