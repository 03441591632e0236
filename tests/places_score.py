"""How the place resolver does on a table of places (tests/places, tests/places_sealed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.places import Gazetteer

EXPECTATIONS = ("located", "ask", "unknown")


@dataclass
class Figures:
    located_expected: int = 0
    located_right: int = 0  # placed in the expected neighbourhood without a question
    located_asked: int = 0  # asked instead (not wrong, but a question)
    ask_expected: int = 0
    ask_asked: int = 0
    unknown_expected: int = 0
    unknown_right: int = 0
    wrong: list[str] = field(default_factory=list)  # a wrong neighbourhood: never allowed
    missed: list[str] = field(default_factory=list)  # neither right nor wrong, for the report

    @property
    def located_rate(self) -> float:
        return self.located_right / self.located_expected if self.located_expected else 1.0

    def line(self, name: str) -> str:
        return (
            f"{name}: {self.located_right}/{self.located_expected} located without a question "
            f"({self.located_rate:.0%}), {self.located_asked} asked; asked {self.ask_asked}/{self.ask_expected}; "
            f"unknown {self.unknown_right}/{self.unknown_expected}; wrong neighbourhoods: {len(self.wrong)}"
        )


def read_table(path: Path) -> list[dict[str, Any]]:
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    for entry in entries:
        assert entry.get("expect") in EXPECTATIONS, f"{path.name}: bad expect in {entry}"
        assert (entry["expect"] == "located") == bool(entry.get("neighbourhood")), f"{path.name}: {entry}"
    return entries


def score(gazetteer: Gazetteer, entries: list[dict[str, Any]]) -> Figures:
    figures = Figures()
    for entry in entries:
        text, expect = str(entry["text"]), entry["expect"]
        place = gazetteer.resolve(text)
        got = place.neighbourhood.name if place.neighbourhood else None
        shown = f"{text!r}: expected {expect} {entry.get('neighbourhood') or ''}, got {place.source} {got or ''} " \
                f"candidates {[c.name for c in place.candidates]}"
        if expect == "located":
            figures.located_expected += 1
            if got == entry["neighbourhood"]:
                figures.located_right += 1
            elif got is not None:
                figures.wrong.append(shown)
            elif place.needs_question and entry["neighbourhood"] in {c.name for c in place.candidates}:
                figures.located_asked += 1
                figures.missed.append(shown)
            elif place.needs_question:
                figures.wrong.append(shown)  # a question whose buttons do not hold the answer
            else:
                figures.missed.append(shown)
        elif expect == "ask":
            figures.ask_expected += 1
            if got is not None:
                figures.wrong.append(shown)
            elif place.needs_question:
                figures.ask_asked += 1
            else:
                figures.missed.append(shown)
        else:
            figures.unknown_expected += 1
            if got is not None:
                figures.wrong.append(shown)
            elif not place.needs_question:
                figures.unknown_right += 1
            else:
                figures.missed.append(shown)
    return figures
