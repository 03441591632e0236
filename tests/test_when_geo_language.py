"""Time phrases, neighbourhood matching and language detection."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.geo import Neighbourhoods
from common.language import confident_language, conversation_language
from common.settings import PROJECT_ROOT
from common.when import UnknownTime, parse_when, said_as_future, today_named

MADRID = ZoneInfo("Europe/Madrid")
NOW = datetime(2026, 11, 25, 18, 30, tzinfo=MADRID)  # a Wednesday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ayer por la noche", "2026-11-24T22:00"),
        ("ahir a les deu", "2026-11-24T22:00"),
        ("just now", "2026-11-25T18:30"),
        ("ara mateix", "2026-11-25T18:30"),
        ("hace una hora", "2026-11-25T17:30"),
        ("fa mitja hora", "2026-11-25T18:00"),
        ("10 minutes ago", "2026-11-25T18:20"),
        ("yesterday at 10pm", "2026-11-24T22:00"),
        ("anit", "2026-11-24T22:00"),
        ("esta mañana", "2026-11-25T09:00"),
        ("aquest mati", "2026-11-25T09:00"),
        ("el lunes a las 8 de la tarde", "2026-11-23T20:00"),
        ("dissabte al vespre", "2026-11-21T20:00"),
        ("a les 22:30", "2026-11-24T22:30"),
        ("ayer a las 23:15", "2026-11-24T23:15"),
        ("el 3 de noviembre", "2026-11-03T12:00"),  # a day alone: its middle, approximate
    ],
)
def test_time_phrases(text: str, expected: str) -> None:
    parsed = parse_when(text, now=NOW, zone=MADRID, locale="es")
    assert parsed is not None
    assert parsed.moment.strftime("%Y-%m-%dT%H:%M") == expected


@pytest.mark.parametrize("text", ["I don't know", "no ho sé", "ni idea", "no lo sé"])
def test_unknown_time(text: str) -> None:
    with pytest.raises(UnknownTime):
        parse_when(text, now=NOW, zone=MADRID)


@pytest.mark.parametrize("text", ["", "2 bikes", "la bici vermella"])
def test_no_time(text: str) -> None:
    assert parse_when(text, now=NOW, zone=MADRID) is None


@pytest.mark.parametrize("text", ["tomorrow", "mañana a las 10", "demà al matí", "hoy a las 22:00"])
def test_future_times_are_given_for_the_form_to_refuse(text: str) -> None:
    parsed = parse_when(text, now=NOW, zone=MADRID)
    assert parsed is not None and parsed.moment > NOW


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("this morning at 8", "2026-12-06T08:00"),
        ("hoy a las 22:00", "2026-12-06T22:00"),
        ("aquest matí a les 9", "2026-12-06T09:00"),
        ("esta mañana", "2026-12-06T09:00"),
        ("a las 11 de la noche", "2026-12-06T23:00"),
    ],
)
def test_after_midnight_today_is_the_day_that_just_ended(text: str, expected: str) -> None:
    # a citizen awake at 00:40 still calls Sunday "today"; the form must not refuse it as a future
    parsed = parse_when(text, now=datetime(2026, 12, 7, 0, 40, tzinfo=MADRID), zone=MADRID, locale="en")
    assert parsed is not None
    assert parsed.moment.strftime("%Y-%m-%dT%H:%M") == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_gives_a_past_time_or_none(text: str) -> None:
    try:
        parsed = parse_when(text, now=NOW, zone=MADRID)
    except UnknownTime:
        return
    assert parsed is None or parsed.moment <= NOW + timedelta(minutes=1) or said_as_future(text) or any(
        ch.isdigit() for ch in text) or today_named(text)


@pytest.fixture(scope="module")
def barris() -> Neighbourhoods:
    return Neighbourhoods.from_geojson(PROJECT_ROOT / "data" / "barcelona-barris.geojson")


def test_points_and_names_match_neighbourhoods(barris: Neighbourhoods) -> None:
    assert len(barris) == 73
    assert barris.at(41.3809, 2.1734).name == "el Raval"
    assert barris.at(41.4036, 2.1744).name == "la Sagrada Família"
    assert barris.at(40.4168, -3.7038) is None  # Madrid
    assert barris.named_in("Carrer de Verdi 20, Gràcia").code == "06-31"
    assert barris.named_in("plaza cataluña").code == "02-07"
    assert barris.named_in("Sant Gervasi - Galvany").code == "05-26"
    assert barris.named_in("calle Mallorca 200") is None


@settings(max_examples=200, deadline=None)
@given(st.floats(-90, 90), st.floats(-180, 180), st.text(max_size=60))
def test_any_point_or_text_is_matched_or_refused_without_error(
    barris: Neighbourhoods, latitude: float, longitude: float, text: str
) -> None:
    found = barris.at(latitude, longitude)
    assert found is None or found.code[:2].isdigit()
    barris.named_in(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("me han robado el móvil en el metro", "es"), ("m'han robat la bicicleta", "ca"),
     ("someone stole my phone", "en"), ("ok", None), ("si", None), ("hola", None)],
)
def test_language_only_when_confident(text: str, expected: str | None) -> None:
    assert confident_language(text) == expected


def test_short_answers_keep_the_conversation_language() -> None:
    assert conversation_language(["hi ha molt de soroll al carrer cada nit", "si"], "en", "en") == "ca"
    assert conversation_language(["ok"], "es", "en") == "es"
    assert conversation_language([], None, "en") == "en"


# Messages may be 4,000 characters long; dateparser takes up to a second on such a text, and the
# action server reads every report's first message and description for a time.
LONG_MESSAGES = ["1 2 3 4 5 " * 400, "3 de marzo de 2026 " * 210, "12/03 " * 660]


@pytest.mark.parametrize("text", LONG_MESSAGES, ids=["numbers", "dates", "slashes"])
def test_a_long_message_is_read_for_a_time_in_bounded_time(text: str) -> None:
    parse_when("ayer", now=NOW, zone=MADRID)  # dateparser's first call loads its data
    started = time.process_time()  # CPU time: not inflated by other jobs on the machine
    parse_when(text, now=NOW, zone=MADRID, locale="es")
    assert time.process_time() - started < 0.05


def test_a_time_said_in_a_long_account_is_still_found() -> None:
    story = "Two men were shouting outside the bakery and broke the glass of the door. " * 20
    parsed = parse_when(story + "It was yesterday at 10 pm.", now=NOW, zone=MADRID)
    assert parsed is not None and parsed.moment.isoformat().startswith("2026-11-24T22:00")
