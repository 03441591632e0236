"""The trained engine on sealed citizen messages (tests/nlu_sealed/sealed*_<lang>.yml): issue
#2's goal is 90% intent accuracy per language on messages not in training and 85% on
incident_type where a message names one. The test prints the figures (the README quotes
them) and fails below the goal.

Two sealed sets per language (sealed_<lang>.yml, sealed_b_<lang>.yml), each written by
someone who had read only nlu/README.md and never the training data; the data writers never
see them (their path is not in nlu/README.md). The gate is on both sets together, about 310
messages per language. A few short, common messages ("hola", "gracias") still occur in
training too; the gate is on the messages that do not (ignoring case, accents and
punctuation), and the whole-file figure is printed beside it.
An earlier held-out set leaked into training while the data was tuned; it was retired and
its messages became training data."""

from __future__ import annotations

import json
import re
import unicodedata
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.conftest import Stack

SEALED = Path(__file__).parent / "nlu_sealed"
TRAINING = Path(__file__).parent.parent / "nlu"
INTENT_GOAL = 0.90  # issue #2's goals
INCIDENT_TYPE_GOAL = 0.85
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
        f"{stack.settings.engine_url}/model/parse?token={stack.settings.rasa_token}",
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


@dataclass
class Score:
    """One sealed file's (or a language's) figures."""

    messages: int = 0
    hits: int = 0
    unseen: int = 0
    unseen_hits: int = 0
    named: int = 0  # messages that name an incident type
    named_hits: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, other: Score) -> None:
        for name in ("messages", "hits", "unseen", "unseen_hits", "named", "named_hits"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.misses += other.misses

    def line(self, label: str) -> str:
        return (f"{label}: intent accuracy {self.unseen_hits / self.unseen:.1%} on the {self.unseen} sealed messages "
                f"not in training ({self.hits / self.messages:.1%} on all {self.messages}); "
                f"incident_type {self.named_hits / self.named:.1%} on {self.named}")


def score(stack: Stack, path: Path, seen: set[str]) -> Score:
    result = Score()
    for text, intent, incident in load_examples(path):
        parsed = parse(stack, text)
        got = predicted_intent(parsed)
        unseen = folded(text) not in seen
        result.messages += 1
        result.unseen += unseen
        if got == intent:
            result.hits += 1
            result.unseen_hits += unseen
        else:
            result.misses.append(f"{text!r}: {intent} -> {got}")
        if incident:
            result.named += 1
            result.named_hits += incident in {e["value"] for e in parsed.get("entities", [])
                                              if e["entity"] == "incident_type"}
    return result


@pytest.mark.engine
@pytest.mark.parametrize("language", ["en", "es", "ca"])
def test_sealed_messages(stack: Stack, language: str) -> None:
    seen = training_texts(language)
    files = sorted(SEALED.glob(f"sealed*_{language}.yml"))
    assert len(files) == 2, "two sealed sets per language, by two writers"
    total = Score()
    for path in files:
        figures = score(stack, path, seen)
        assert figures.messages > 150
        # a few short, common messages ("hola", "gracias") are in training too; far more would be a leak
        assert figures.unseen >= 0.6 * figures.messages, f"{path.name} has leaked into training"
        print("\n" + figures.line(f"{language} ({path.name})"))  # noqa: T201 - the figures quoted in the README
        total.add(figures)
    print(total.line(f"{language} (both sets)"))  # noqa: T201
    assert total.unseen_hits / total.unseen >= INTENT_GOAL, "\n".join(total.misses[:40])
    assert total.named_hits / total.named >= INCIDENT_TYPE_GOAL
