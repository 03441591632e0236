"""Barri's trained NLU components in the real engine (the model of BARRI_TEST_MODEL), read through
its HTTP API: the sentence reader types reports only (never an emergency, never a message that
shows danger now), settles types words disagree on, and turns a report that reads like an
emergency into the safety net's question; the FAQ selector answers FAQ questions and buttons where
the dialogue reads the answer (``response_selector.faq``); a button payload that names a domain
intent parses as before, now without the pipeline (nlu/button_parse.py)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import TEST_RASA_TOKEN, Stack

TYPE_CLASSIFIER = "IncidentTypeClassifier"


async def parse(stack: Stack, text: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.post(
        f"{stack.settings.engine_url}/model/parse", json={"text": text}, params={"token": TEST_RASA_TOKEN}
    ) as response:
        assert response.status == 200
        return await response.json()


def guessed_types(parsed: dict[str, Any]) -> list[str]:
    return [e["value"] for e in parsed.get("entities", [])
            if e["entity"] == "incident_type" and e.get("extractor") == TYPE_CLASSIFIER]


@pytest.mark.parametrize(
    "text",
    [
        "it smells of gas all over the stairwell",  # read as `drugs` at p 0.69 before
        "huele muchísimo a gas en toda la escalera",
        "fa una pudor de gas horrible al replà",
        "sale humo negro por la ventana del segundo",
        "hi ha un home estirat a terra i no es mou",
        "my neighbour is not answering the door for three days",
        # the three emergencies told by their signs, once read as ordinary reports
        "Huele muchísimo a gas en todo el edificio y acabamos de oír como una pequeña explosión",
        "two men are forcing the shutter of the pharmacy downstairs right now and loading boxes into a car",
        "no trobem la nena de 5 anys, era al parc fa un moment",
    ],
)
async def test_danger_is_never_given_a_guessed_type(stack: Stack, text: str) -> None:
    parsed = await parse(stack, text)
    assert parsed["intent"]["name"] in {"emergency", "danger_check"}, parsed["intent"]
    assert guessed_types(parsed) == [], parsed["entities"]


async def test_a_described_report_still_gets_its_type(stack: Stack) -> None:
    # No word of the lexicon names the type: only the sentence classifier can read it.
    parsed = await parse(stack, "yesterday a guy yanked the chain off my neck on the metro and ran off")
    assert parsed["intent"]["name"] == "report_incident", parsed["intent"]
    types = {e["value"] for e in parsed["entities"] if e["entity"] == "incident_type"}
    assert types == {"theft"}, parsed["entities"]


@pytest.mark.parametrize(
    "text",
    [
        # no sign of nlu/lexicon/danger/signs.yml, and DIET reads a report: the whole sentence
        # reads like an emergency (a confused elder lost now), so Barri asks first
        "una señora mayor en camisón va por el medio de la calle y no sabe decir dónde vive",
        "una senyora gran en camisa de dormir camina pel mig del carrer i no sap dir on viu",
    ],
)
async def test_a_report_that_reads_like_an_emergency_gets_the_question(stack: Stack, text: str) -> None:
    parsed = await parse(stack, text)
    assert parsed["intent"]["name"] == "danger_check", parsed["intent"]
    doubts = [e for e in parsed["entities"] if e["entity"] == "danger_sign"]
    assert [(e["value"], e["extractor"]) for e in doubts] == [("read_as_emergency", TYPE_CLASSIFIER)]
    assert doubts[0]["confidence_entity"] >= 0.5
    assert guessed_types(parsed) == [], parsed["entities"]


@pytest.mark.parametrize(
    ("text", "kind", "extractor"),
    [
        # two held-out sentences of nlu/dev (never trained on). DIET tags "van pegar" as
        # assault and "li van prendre la cartera" as theft: the sentence keeps the one it reads
        ("van pegar a un avi a la parada i li van prendre la cartera", "assault", "DIETClassifier"),
        # the words read noise ("shout"): the sentence, all but certain, overrules
        ("people at the bus stop shout at me about my headscarf", "harassment", TYPE_CLASSIFIER),
    ],
)
async def test_the_sentence_settles_the_type_words_disagree_on(stack: Stack, text: str, kind: str,
                                                                extractor: str) -> None:
    parsed = await parse(stack, text)
    assert parsed["intent"]["name"] == "report_incident", parsed["intent"]
    types = [(e["value"], e["extractor"]) for e in parsed["entities"] if e["entity"] == "incident_type"]
    assert types == [(kind, extractor)], parsed["entities"]


@pytest.mark.parametrize("text", ["la bici estaba aquí", "this is the car", "aquesta és la moto"])
async def test_a_photo_caption_never_stops_the_report(stack: Stack, text: str) -> None:
    # WhatsApp and Telegram send a photo's caption as its own message while the report form runs.
    parsed = await parse(stack, text)
    assert parsed["intent"]["name"] not in {"cancel", "deny"}, parsed["intent"]


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("can I report something without giving my name?", "faq/anonymity"),
        ("¿qué hacéis con mis datos personales?", "faq/data_use"),
        ("on és la comissaria més propera?", "faq/police_station"),
        ("/faq/how_it_works", "faq/how_it_works"),  # the button of the welcome message
    ],
)
async def test_faq_answers_where_the_dialogue_reads_them(stack: Stack, text: str, answer: str) -> None:
    parsed = await parse(stack, text)
    assert parsed["intent"]["name"] == "faq", parsed["intent"]
    chosen = parsed["response_selector"]["faq"]["response"]
    assert chosen["intent_response_key"] == answer
    assert chosen["utter_action"] == f"utter_{answer}"
    assert "faq" in parsed["response_selector"]["all_retrieval_intents"]


async def test_the_faq_selector_runs_only_on_faq_questions(stack: Stack) -> None:
    # nlu/components/faq_response_selector.py: a report needs no FAQ answer, so none is computed
    parsed = await parse(stack, "me han robado la bici delante del mercado")
    assert parsed["intent"]["name"] == "report_incident", parsed["intent"]
    assert "response_selector" not in parsed


async def test_a_button_payload_is_read_without_the_pipeline(stack: Stack) -> None:
    # nlu/button_parse.py skips the pipeline: the parse must stay exactly what Rasa's
    # RegexMessageHandler made of it at the end of the pipeline (nothing the pipeline computed)
    parsed = await parse(stack, '/inform{"contact_mode":"chat"}')
    assert parsed["intent"] == {"name": "inform", "confidence": 1.0}
    assert parsed["entities"] == [{"entity": "contact_mode", "value": "chat", "start": 7, "end": 30,
                                   "extractor": "RegexMessageHandler"}]
    assert "response_selector" not in parsed
