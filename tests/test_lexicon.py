"""The incident lexicon and the rules by which the engine's normaliser applies it
(nlu/components/lexicon.py; the Rasa component around it is exercised by the engine tests)."""

from __future__ import annotations

import importlib.util
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from nlu.components.lexicon import CATEGORIES, LEXICON_DIR, Lexicon, feature_patterns, fold, normalise_entities

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon.from_folder(LEXICON_DIR)


def incident(value: str, start: int, end: int) -> dict:
    return {"entity": "incident_type", "value": value, "start": start, "end": end, "extractor": "DIETClassifier"}


def types(entities: list[dict]) -> list[str]:
    return [e["value"] for e in entities if e["entity"] == "incident_type"]


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Me han MANGADO el móvil", "theft"),
        ("m'han pispat la cartera al metro", "theft"),
        ("someone keyed my car", "vandalism"),
        ("música a tope hasta las 4", "noise"),
        ("un tio me ha estado siguiendo", "harassment"),
        ("em van atracar a punta de navalla", "assault"),
        ("estan trapicheando en el parque", "drugs"),
        ("un coche atropelló a un chico", "traffic"),
        ("gente meando en mi portal", "incivility"),
    ],
)
def test_lexicon_reads_each_language(lexicon: Lexicon, text: str, category: str) -> None:
    assert lexicon.best(text) == category


def test_fold_ignores_case_accents_and_punctuation() -> None:
    assert fold("¡Pintadas en la Plaça d'Espanya!") == "pintadas en la placa d espanya"


def test_no_word_names_two_categories(lexicon: Lexicon) -> None:
    owners: dict[str, set[str]] = defaultdict(set)
    for word, categories in lexicon.words.items():
        owners[word] |= categories
    for prefix, category in lexicon.prefixes:
        owners[prefix + "*"].add(category)
    assert {word: cats for word, cats in owners.items() if len(cats) > 1} == {}


def test_a_tie_is_no_decision(lexicon: Lexicon) -> None:
    assert lexicon.best("graffiti and noise") is None


def test_unknown_value_is_mapped_or_dropped(lexicon: Lexicon) -> None:
    text = "me han birlado la bici"
    mapped = normalise_entities(text, "report_incident", [incident("birlado", 8, 15)], lexicon, "N")
    assert types(mapped) == ["theft"] and mapped[0]["processors"] == ["N"]
    dropped = normalise_entities("hola que tal", "report_incident", [incident("tal", 9, 12)], lexicon, "N")
    assert types(dropped) == []


def test_lexicon_corrects_diet_on_the_same_words(lexicon: Lexicon) -> None:
    text = "ayer me atracaron en la esquina"
    corrected = normalise_entities(text, "report_incident", [incident("theft", 8, 17)], lexicon, "N")
    assert types(corrected) == ["assault"]


def test_diet_kept_where_the_lexicon_has_nothing_to_say(lexicon: Lexicon) -> None:
    text = "something odd with the bins"
    kept = normalise_entities(text, "report_incident", [incident("incivility", 23, 27)], lexicon, "N")
    assert types(kept) == ["incivility"] and "processors" not in kept[0]


def test_an_unsure_type_the_lexicon_does_not_confirm_is_left_to_the_form(lexicon: Lexicon) -> None:
    text = "something odd with the bins"
    unsure = {**incident("incivility", 23, 27), "confidence_entity": 0.3}
    assert types(normalise_entities(text, "report_incident", [unsure], lexicon, "N")) == []
    confirmed = {**incident("vandalism", 8, 15), "confidence_entity": 0.3}
    assert types(normalise_entities("someone smashed it", "report_incident", [confirmed], lexicon, "N")) == ["vandalism"]


def test_missing_entity_added_except_for_small_talk(lexicon: Lexicon) -> None:
    text = "can I report graffiti anonymously?"
    added = normalise_entities(text, "faq", [], lexicon, "N")
    assert types(added) == ["vandalism"]
    assert text[added[0]["start"]:added[0]["end"]] == "graffiti"
    assert types(normalise_entities("thanks for the help with the theft", "thank", [], lexicon, "N")) == []


def test_other_entities_pass_through(lexicon: Lexicon) -> None:
    place = {"entity": "place", "value": "Carrer Gran", "start": 0, "end": 11}
    assert normalise_entities("Carrer Gran", "inform", [place], lexicon, "N") == [place]


@pytest.mark.parametrize("language", ["en", "es", "ca"])
def test_every_category_has_words_in_every_language(language: str) -> None:
    data = yaml.safe_load((LEXICON_DIR / f"{language}.yml").read_text(encoding="utf-8"))
    assert set(data) == set(CATEGORIES)
    assert all(data[category] for category in CATEGORIES)


def test_place_names_are_no_incidents(lexicon: Lexicon) -> None:
    assert lexicon.best("calle Robador 12") is None
    assert lexicon.best("me robaron en el Palau de la Música") == "theft"
    assert lexicon.best("una pelea en Muntaner amb Madrazo") == "assault"


def test_no_neighbourhood_name_reads_as_an_incident(lexicon: Lexicon) -> None:
    data = Path(__file__).parent.parent / "data"
    names = set()
    for layer in ("barcelona-barris.geojson", "barcelona-districtes.geojson"):
        for feature in json.loads((data / layer).read_text(encoding="utf-8"))["features"]:
            names.add(feature["properties"]["name"])
    for aliases in yaml.safe_load((data / "barcelona-barris.aliases.yml").read_text(encoding="utf-8")).values():
        names.update(aliases)
    assert {name: dict(lexicon.categories(name)) for name in names if lexicon.categories(name)} == {}


def test_the_diet_features_are_in_step_with_the_lexicon() -> None:
    spec = importlib.util.spec_from_file_location("lexicon_features", ROOT / "scripts" / "lexicon-features.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "nlu" / "lexicon_features.yml").read_text(encoding="utf-8") == module.render(), (
        "run `make lexicon-features` after editing nlu/lexicon/*.yml"
    )


@pytest.mark.parametrize(
    ("text", "feature"),
    [("Me ROBÓ el móvil", "incident_theft"), ("m'han pixat al portal", "incident_incivility"),
     ("música a tope", "incident_noise"), ("they keyed my car", "incident_vandalism")],
)
def test_the_diet_features_match_accents_and_case(lexicon: Lexicon, text: str, feature: str) -> None:
    patterns = feature_patterns(lexicon)
    assert re.search(patterns[feature], text, re.IGNORECASE)
    assert not any(re.search(p, "en la calle Mallorca a las diez", re.IGNORECASE) for p in patterns.values())
