"""The report form's place question through the real bot service, engine and action server
(web chat), one citizen per language (issue #11): a corner, a street that crosses several
neighbourhoods (the question and a button press), a landmark; a second report at the same
corner found as a likely duplicate; where and when said back in the citizen's language."""

from __future__ import annotations

from typing import Any

import pytest

from bot.app import create_app
from storage import cases as case_store
from storage.db import create_db_engine, session_scope
from storage.desk import likely_duplicates
from storage.models import Case
from tests.conftest import Stack
from tests.test_faults import question
from tests.test_outreach_e2e import press, said
from tests.test_webchat import app_settings, hello, say

START = {"en": "I want to report a theft", "es": "quiero denunciar un robo", "ca": "vull denunciar un robatori"}
ACCOUNT = {
    "en": "Someone took my wallet from my bag on the terrace without me noticing",
    "es": "Alguien me quitó la cartera del bolso en la terraza sin que me diera cuenta",
    "ca": "Algú em va prendre la cartera de la bossa a la terrassa sense que me n'adonés",
}
WHEN = {"en": "yesterday at 22:15", "es": "ayer a las 22:15", "ca": "ahir a les 22:15"}


async def file_report(ws: Any, locale: str, place_steps: list[tuple[dict[str, Any], str]]) -> tuple[str, str, str]:
    """Go through the form; at the place question, send each step and check the reply holds the
    expected words. Returns (what was said at the place steps, the summary, the confirmation)."""
    replies = await say(ws, {"type": "text", "text": START[locale]})
    place_said: list[str] = []
    for _ in range(14):
        kind = question(replies[-1])
        if kind == "place" and place_steps:
            frame, expected = place_steps.pop(0)
            replies = await say(ws, frame)
            place_said.append(said(replies))
            assert expected in said(replies), (frame, replies)
            continue
        if kind == "summary":
            summary = said(replies)
            replies = await say(ws, {"type": "button", "payload": "/affirm", "title": "✓"})
            return "\n".join(place_said), summary, said(replies)
        if kind == "type":
            replies = await say(ws, press(replies, '"theft"'))
        elif kind == "photos":
            replies = await say(ws, press(replies, '"photos_done"'))
        elif kind == "contact_mode":
            replies = await say(ws, press(replies, '"anonymous"'))
        elif kind == "time":
            replies = await say(ws, {"type": "text", "text": WHEN[locale]})
        else:
            replies = await say(ws, {"type": "text", "text": ACCOUNT[locale]})
    raise AssertionError(f"the form did not reach its summary: {replies}")


def the_case(db: Any, sender: str) -> Case:
    with session_scope(db) as session:
        cases = case_store.list_cases_for_sender(session=session, sender_id=sender)
        assert len(cases) == 1
        return cases[0]


@pytest.mark.engine
async def test_a_corner_a_street_asked_about_and_a_landmark(stack: Stack, aiohttp_client: Any) -> None:
    settings = app_settings(stack)
    client = await aiohttp_client(create_app(settings))
    db = create_db_engine(settings.database_url)

    # a corner, in Spanish: the point where the streets meet, said back as understood
    ws, welcome = await hello(client, locale="es-ES")
    _, summary, confirmation = await file_report(ws, "es", [(
        {"type": "text", "text": "Mallorca con Pau Claris"},
        "Entendido: esquina Mallorca / Pau Claris, la Dreta de l'Eixample.")])
    assert "Dónde: esquina Mallorca / Pau Claris, la Dreta de l'Eixample" in summary
    assert "Cuándo: ayer a las 22:15" in summary
    assert "Dónde: esquina Mallorca / Pau Claris, la Dreta de l'Eixample. Cuándo: ayer a las 22:15." in confirmation
    corner = the_case(db, welcome["sender"])
    assert (corner.location_source, corner.neighbourhood_code, corner.location_radius) == ("corner", "02-07", 30)
    assert corner.latitude is not None and abs(corner.latitude - 41.395) < 0.001
    assert corner.address == "Mallorca con Pau Claris"
    await ws.close()

    # a street through eight neighbourhoods, in Catalan: asked, never guessed; a button answers
    ws, welcome = await hello(client, locale="ca-ES")
    place_said, summary, _ = await file_report(ws, "ca", [
        ({"type": "text", "text": "carrer de Mallorca"}, "Mallorca passa per diversos barris. A quin ha estat?"),
        ({"type": "button", "payload": '/inform{"neighbourhood_code":"02-06"}', "title": "la Sagrada Família"},
         "Entès: Mallorca, la Sagrada Família."),
    ])
    assert "On: Mallorca, la Sagrada Família" in summary and "Quan: ahir a les 22:15" in summary
    street = the_case(db, welcome["sender"])
    assert (street.location_source, street.neighbourhood_code) == ("street", "02-06")
    assert street.location_radius is not None and street.location_radius > 100  # drawn as approximate
    await ws.close()

    # a landmark, in English
    ws, welcome = await hello(client, locale="en-GB")
    _, summary, _ = await file_report(ws, "en", [
        ({"type": "text", "text": "in front of the Liceu"}, "Understood: Liceu (La Rambla), el Raval.")])
    assert "When: yesterday at 22:15" in summary
    landmark = the_case(db, welcome["sender"])
    assert (landmark.location_source, landmark.neighbourhood_code) == ("landmark", "01-01")
    await ws.close()

    # a second report at the same corner, typed another way: a likely duplicate of the first
    ws, welcome = await hello(client, locale="ca-ES")
    await file_report(ws, "ca", [({"type": "text", "text": "cantonada Pau Claris i Mallorca"},
                                  "Entès: cantonada Pau Claris / Mallorca, la Dreta de l'Eixample.")])
    again = the_case(db, welcome["sender"])
    with session_scope(db) as session:
        found = likely_duplicates(session=session, case=session.get(Case, again.id))
        assert corner.id in [case.id for case in found]
        # the street case (approximate, 100s of metres) is never matched by distance
        found_for_street = likely_duplicates(session=session, case=session.get(Case, street.id))
        assert corner.id not in [case.id for case in found_for_street]
    await ws.close()
