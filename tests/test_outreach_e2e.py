"""Alerts, the follow-up and the survey through the real bot service, engine and action
server (web chat): subscribing by buttons, adding information, a survey answered by buttons
and one answered by typing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from bot.app import create_app
from common.i18n import Catalogs
from common.outreach import follow_up_message, survey_opening
from storage import cases as case_store
from storage import subscriptions
from storage.db import create_db_engine, session_scope
from storage.models import EVENT_CITIZEN_INFO, EVENT_SURVEY_ANSWERED, CaseCreate, CaseEvent, SurveyResponse
from storage.surveys import open_survey
from tests.cases import move_case
from tests.conftest import Stack
from tests.test_webchat import app_settings, hello, say

LOCALES = Path(__file__).resolve().parents[1] / "locales"


def said(replies: list[dict]) -> str:
    """Everything the assistant answered (the web chat sends each paragraph as one message)."""
    return "\n".join(r.get("text") or "" for r in replies)


def press(replies: list[dict], payload_part: str) -> dict:
    """The frame for pressing the last offered button whose payload contains ``payload_part``."""
    for reply in reversed(replies):
        for button in reply.get("buttons") or []:
            if payload_part in button["payload"]:
                return {"type": "button", "payload": button["payload"], "title": button["title"]}
    raise AssertionError(f"no button with {payload_part!r} in {replies}")


@pytest.mark.engine
async def test_subscribe_by_buttons_add_information_and_a_survey_by_buttons(stack: Stack, aiohttp_client) -> None:
    settings = app_settings(stack)
    client = await aiohttp_client(create_app(settings))
    ws, welcome = await hello(client, locale="en-GB")
    sender = welcome["sender"]
    db = create_db_engine(settings.database_url)

    # alerts: district buttons, then neighbourhood buttons
    replies = await say(ws, {"type": "button", "payload": "/subscribe_alerts", "title": "Alerts"})
    assert len(replies[-1]["buttons"]) == 10
    replies = await say(ws, press(replies, '"district_code":"06"'))
    assert said(replies) == "Which neighbourhood of Gràcia?"
    replies = await say(ws, press(replies, '"neighbourhood_code":"06-31"'))
    assert "Done: you will get alerts for la Vila de Gràcia" in said(replies)
    with session_scope(db) as session:
        assert subscriptions.list_subscriptions(session=session, sender_id=sender) == ["06-31"]
    replies = await say(ws, {"type": "text", "text": "what am i subscribed to"})
    assert said(replies) == "You get alerts for: la Vila de Gràcia."

    # a case of this citizen, followed up and then resolved
    with session_scope(db) as session:
        case = case_store.create_case(session=session, case_in=CaseCreate(
            sender_id=sender, channel="web", locale="en", category="vandalism", contact_mode="chat",
            description="Someone keeps breaking the lamp posts", neighbourhood_code="06-31"))
    catalogs = Catalogs.load(LOCALES)
    _, buttons = follow_up_message(catalogs, "en", case_ref=case.ref, status="in_progress")
    replies = await say(ws, {"type": "button", "payload": buttons[0][1], "title": buttons[0][0]})
    assert said(replies) == f"Write what you want to add to report {case.ref}, in one message."
    replies = await say(ws, {"type": "text", "text": "It happened again last night around 2 am"})
    assert said(replies).startswith(f"Thank you: I've added it to report {case.ref}.")

    with session_scope(db) as session:
        move_case(session, case, "resolved", actor="dispatcher1")
    _, buttons = survey_opening(catalogs, "en", case_ref=case.ref)
    replies = await say(ws, {"type": "button", "payload": buttons[0][1], "title": buttons[0][0]})
    assert said(replies).startswith(f"How satisfied are you with how report {case.ref} was handled?")
    replies = await say(ws, press(replies, ":sat:4"))
    assert said(replies).startswith("How safe do you feel in your neighbourhood?")
    replies = await say(ws, press(replies, ":safe:3"))
    assert said(replies).startswith("Anything else you want to tell us?")
    replies = await say(ws, press(replies, ":comment:skip"))
    assert said(replies) == f"Thank you for your answers: they help {settings.city_name} to improve."

    # the old first button, pressed again
    replies = await say(ws, {"type": "button", "payload": buttons[1][1], "title": buttons[1][0]})
    assert said(replies) == f"You have already answered the survey about report {case.ref}. Thank you!"

    with session_scope(db) as session:
        survey = session.exec(select(SurveyResponse).where(SurveyResponse.case_id == case.id)).one()
        kinds = [e.kind for e in session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id)).all()]
    assert (survey.solved, survey.satisfaction, survey.safety, survey.comment) == (True, 4, 3, None)
    assert kinds.count(EVENT_SURVEY_ANSWERED) == 1 and kinds.count(EVENT_CITIZEN_INFO) == 1
    await ws.close()
    db.dispose()


@pytest.mark.engine
async def test_the_survey_answered_by_typing_from_its_first_question(stack: Stack, aiohttp_client) -> None:
    """The first question went out through the outbox (the engine never saw it asked): a typed
    "sí" answers it, and the rest follows in Spanish, typed too."""
    settings = app_settings(stack)
    client = await aiohttp_client(create_app(settings))
    ws, welcome = await hello(client, locale="es-ES")
    db = create_db_engine(settings.database_url)
    replies = await say(ws, {"type": "text", "text": "no"})  # nothing was asked: what Barri can do
    assert said(replies).startswith("No sé muy bien qué hacer con eso.")

    with session_scope(db) as session:
        case = case_store.create_case(session=session, case_in=CaseCreate(
            sender_id=welcome["sender"], channel="web", locale="es", category="noise", contact_mode="chat",
            description="Música muy alta cada noche en el bar de abajo", neighbourhood_code="06-31"))
        move_case(session, case, "resolved", actor="dispatcher1")
        open_survey(session=session, case=case)  # as the survey sweep does when it queues the question
    replies = await say(ws, {"type": "text", "text": "sí"})
    assert said(replies).startswith(f"¿Hasta qué punto estás satisfecho con cómo se gestionó el aviso {case.ref}?")
    replies = await say(ws, {"type": "text", "text": "4"})
    assert said(replies).startswith("¿Cómo de seguro te sientes en tu barrio?")
    replies = await say(ws, {"type": "text", "text": "un 3"})
    replies = await say(ws, {"type": "text", "text": "no"})
    assert said(replies).startswith("Gracias por tus respuestas")

    with session_scope(db) as session:
        survey = session.exec(select(SurveyResponse).where(SurveyResponse.case_id == case.id)).one()
    assert (survey.solved, survey.satisfaction, survey.safety, survey.comment) == (True, 4, 3, None)
    assert survey.answered_at is not None
    await ws.close()
    db.dispose()
