"""The trained engine on sealed citizen messages (tests/nlu_sealed/sealed_*.yml). The goal is
90% intent accuracy per language on the messages not in training and 85% on incident_type
where a message names one. The figures are printed (the README quotes them); the test fails
on a regression below the floors, which sit a little under the figures because about 140
messages per language move by a point or two between trainings of equal quality.

The sealed files were written by someone who never saw the training data, and the data
writers never see them (their path is not in nlu/README.md). A few short, common messages
("hola", "gracias") still occur in training too; the gate is on the messages that do not
(ignoring case, accents and punctuation), and the whole-file figure is printed beside it.
An earlier held-out set leaked into training while the data was tuned; it was retired and
its messages became training data."""

from __future__ import annotations

import json
import re
import unicodedata
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import Stack

SEALED = Path(__file__).parent / "nlu_sealed"
TRAINING = Path(__file__).parent.parent / "nlu"
INTENT_GOAL = 0.90  # issue #2's goals
INCIDENT_TYPE_GOAL = 0.85
# What the current model reaches less a margin: a regression below it fails `make test`.
INTENT_FLOOR = 0.87
INCIDENT_TYPE_FLOOR = 0.85
ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<name>[^)]+)\)|(?P<json>\{[^}]+\}))")


def load_examples(path: Path) -> list[tuple[str, str, str | None]]:
    """(plain text, intent, incident_type or None) for each example."""
    examples = []
    for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
        if "intent" not in block:
            continue
        for line in block["examples"].splitlines():
            line = line.strip()
            if not line.startswith("- "):
                continue
            raw = line[2:]
            incident = None
            for match in ANNOTATION.finditer(raw):
                if match.group("json"):
                    spec = json.loads(match.group("json"))
                    if spec.get("entity") == "incident_type":
                        incident = spec.get("value")
            text = ANNOTATION.sub(lambda m: m.group("text"), raw)
            examples.append((text, block["intent"], incident))
    return examples


def folded(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text).split())


def training_texts(language: str) -> set[str]:
    return {folded(text) for path in sorted((TRAINING / language).glob("*.yml")) for text, _, _ in load_examples(path)}


def parse(stack: Stack, text: str) -> dict:
    request = urllib.request.Request(
        f"{stack.settings.engine_url}/model/parse",
        data=json.dumps({"text": text}).encode(), headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        return json.load(response)


def predicted_intent(result: dict) -> str:
    name = result["intent"]["name"]
    if name == "faq":
        selector = result.get("response_selector", {}).get("faq", {})
        return selector.get("response", {}).get("intent_response_key") or name
    return name


@pytest.mark.engine
@pytest.mark.parametrize("language", ["en", "es", "ca"])
def test_sealed_messages(stack: Stack, language: str) -> None:
    seen = training_texts(language)
    examples = load_examples(SEALED / f"sealed_{language}.yml")
    assert len(examples) > 150
    intent_hits, entity_hits, entity_total = 0, 0, 0
    unseen_hits, unseen_total = 0, 0
    misses = []
    for text, intent, incident in examples:
        result = parse(stack, text)
        got = predicted_intent(result)
        unseen = folded(text) not in seen
        unseen_total += unseen
        if got == intent:
            intent_hits += 1
            unseen_hits += unseen
        else:
            misses.append(f"{text!r}: {intent} -> {got}")
        if incident:
            entity_total += 1
            values = {e["value"] for e in result.get("entities", []) if e["entity"] == "incident_type"}
            entity_hits += incident in values
    intent_accuracy = intent_hits / len(examples)
    unseen_accuracy = unseen_hits / unseen_total
    entity_accuracy = entity_hits / entity_total
    print(  # noqa: T201 - the figures quoted in the README
        f"\n{language}: intent accuracy {unseen_accuracy:.1%} on the {unseen_total} sealed messages "
        f"not in training ({intent_accuracy:.1%} on all {len(examples)}); "
        f"incident_type {entity_accuracy:.1%} on {entity_total}")
    assert unseen_total >= 0.7 * len(examples), "the sealed set has leaked into training"
    if unseen_accuracy < INTENT_GOAL or entity_accuracy < INCIDENT_TYPE_GOAL:
        print(f"{language}: under the goal ({INTENT_GOAL:.0%} intents, {INCIDENT_TYPE_GOAL:.0%} incident types)")  # noqa: T201
    assert unseen_accuracy >= INTENT_FLOOR, "\n".join(misses[:40])
    assert entity_accuracy >= INCIDENT_TYPE_FLOOR
