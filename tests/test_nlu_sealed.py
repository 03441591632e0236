"""The trained engine on sealed citizen messages (tests/nlu_sealed/sealed*_<lang>.yml).

Three sealed sets per language, each written by someone who had read only nlu/README.md and
never the training data; the data writers never see them (their path is not in nlu/README.md):
set A (sealed_<lang>.yml) and set B (sealed_b_<lang>.yml) name incidents the way the README
describes them; set C (sealed_c_<lang>.yml) was written to *describe* them as people do (no
category words, emergencies by their signs). Goals (issues #2 and #12), per language over the
three sets together: 90% intent accuracy on messages not in training, 92% on incident_type
where a message has one, fewer wrong types than missing ones (a missing type is asked with
buttons, a wrong one is not), and no emergency missed. The test prints the figures (the
README quotes them and says which goals are met).

What it fails on: below the floors, a little under what the model measured when set C was
first scored (2026-12-07), so that an equally good training passes and a worse one does not.
Where a floor is under its goal (intents 88%, emergencies caught 88%, wrong types at most 7%
of the typed messages), the goal is not met yet and issue #12 stays open.

The emergency safety net (nlu/components/danger.py) turns a message that shows danger under
another reading into ``danger_check``: Barri asks "is anyone in danger right now?" first. For
an emergency that counts as caught; for a report or a form answer it costs one question and
the report goes on, so it counts as right, and the test prints how often it happened.
A few short, common messages ("hola", "gracias") still occur in training too; the gate is on
the messages that do not (ignoring case, accents and punctuation), and the whole-file figure
is printed beside it. An earlier held-out set leaked into training while the data was tuned;
it was retired and its messages became training data."""

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
INTENT_GOAL = 0.90  # issue #2's goal
INCIDENT_TYPE_GOAL = 0.92  # issue #12's goal
# what make test holds (see above): the goals where they are met, floors under them where not
INTENT_FLOOR = 0.88
INCIDENT_TYPE_FLOOR = 0.90
EMERGENCY_FLOOR = 0.88
WRONG_TYPE_CEILING = 0.07
DANGER_CHECK = "danger_check"
# What the safety net's question may stand in for: an emergency is caught by it, a report or a
# form answer goes on after one question.
CHECKED_IS_RIGHT = frozenset({"emergency", "report_incident", "inform"})
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
    named: int = 0  # messages with an incident type
    named_hits: int = 0
    named_wrong: int = 0  # another type given (a missing one is asked by the form)
    emergencies: int = 0
    emergencies_caught: int = 0  # emergency, or the safety net's question
    checked: int = 0  # messages answered with the danger question
    misses: list[str] = field(default_factory=list)

    def add(self, other: Score) -> None:
        for name in ("messages", "hits", "unseen", "unseen_hits", "named", "named_hits", "named_wrong",
                     "emergencies", "emergencies_caught", "checked"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.misses += other.misses

    def line(self, label: str) -> str:
        return (f"{label}: intent accuracy {self.unseen_hits / self.unseen:.1%} on the {self.unseen} sealed messages "
                f"not in training ({self.hits / self.messages:.1%} on all {self.messages}); "
                f"incident_type {self.named_hits / self.named:.1%} on {self.named} "
                f"({self.named_wrong} wrong, {self.named - self.named_hits - self.named_wrong} missing); "
                f"emergencies caught {self.emergencies_caught} of {self.emergencies}; "
                f"{self.checked} answered with the danger question")


def score(stack: Stack, path: Path, seen: set[str]) -> Score:
    result = Score()
    for text, intent, incident in load_examples(path):
        parsed = parse(stack, text)
        got = predicted_intent(parsed)
        unseen = folded(text) not in seen
        right = got == intent or (got == DANGER_CHECK and intent in CHECKED_IS_RIGHT)
        result.messages += 1
        result.unseen += unseen
        result.checked += got == DANGER_CHECK
        if intent == "emergency":
            result.emergencies += 1
            result.emergencies_caught += right
            if not right:
                result.misses.append(f"MISSED EMERGENCY {text!r} -> {got}")
        if right:
            result.hits += 1
            result.unseen_hits += unseen
        else:
            result.misses.append(f"{text!r}: {intent} -> {got}")
        if incident:
            found = {e["value"] for e in parsed.get("entities", []) if e["entity"] == "incident_type"}
            result.named += 1
            result.named_hits += incident in found
            result.named_wrong += bool(found) and incident not in found
    return result


@pytest.mark.engine
@pytest.mark.parametrize("language", ["en", "es", "ca"])
def test_sealed_messages(stack: Stack, language: str) -> None:
    seen = training_texts(language)
    files = sorted(SEALED.glob(f"sealed*_{language}.yml"))
    assert len(files) == 3, "three sealed sets per language, by three writers"
    total = Score()
    for path in files:
        figures = score(stack, path, seen)
        assert figures.messages > 100
        # a few short, common messages ("hola", "gracias") are in training too; far more would be a leak
        assert figures.unseen >= 0.6 * figures.messages, f"{path.name} has leaked into training"
        print("\n" + figures.line(f"{language} ({path.name})"))  # noqa: T201 - the figures quoted in the README
        total.add(figures)
    print(total.line(f"{language} (all sets)"))  # noqa: T201
    missing = total.named - total.named_hits - total.named_wrong
    print(f"{language} goals: intents {'met' if total.unseen_hits / total.unseen >= INTENT_GOAL else 'NOT met'}, "  # noqa: T201
          f"types {'met' if total.named_hits / total.named >= INCIDENT_TYPE_GOAL else 'NOT met'}, "
          f"no emergency missed {'met' if total.emergencies_caught == total.emergencies else 'NOT met'}, "
          f"fewer wrong types than missing {'met' if total.named_wrong < missing else 'NOT met'}")
    assert total.emergencies_caught >= EMERGENCY_FLOOR * total.emergencies, "too many emergencies missed"
    assert total.unseen_hits / total.unseen >= INTENT_FLOOR, "intent accuracy under the floor"
    assert total.named_hits / total.named >= INCIDENT_TYPE_FLOOR, "incident types under the floor"
    assert total.named_wrong <= WRONG_TYPE_CEILING * total.named, "too many wrong incident types"
