"""The place resolver on the sealed set of places (tests/places_sealed/places_{en,es,ca}.yml),
written by someone who did not write the resolver; its authors' answers are never read here
except to score. Goals (issue #11): no wrong neighbourhood (a `located` answer elsewhere, a
neighbourhood given for `ask` or `unknown`, or a question whose buttons miss the answer), at
least 90% of `located` entries located without a question, every `ask` entry asked.
The figures are printed (run with -s) and quoted in the README.

What the gate holds today: no wrong neighbourhood, ever (the safety property: a wrong one
sends the case to the wrong patrol and the wrong subscribers). The share located without a
question is 73-82% on its first measure (2026-12-07), under the 90% goal: the gate keeps it
from falling below 70% while the resolver improves, and the README says the goal is not met.
An `ask` entry left unlocated (no question, no neighbourhood) is not wrong but is counted.
Nothing in the resolver may be tuned on this set."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.places import Gazetteer
from tests.places_score import read_table, score

SEALED = Path(__file__).parent / "places_sealed"
LOCATED_GOAL = 0.9  # issue #11's goal, not met yet (see above)
LOCATED_FLOOR = 0.7


@pytest.mark.parametrize("language", ["en", "es", "ca"])
def test_places_sealed(gazetteer: Gazetteer, language: str) -> None:
    if not SEALED.is_dir():
        pytest.skip("tests/places_sealed/ is not there yet (the sealed places are added by the lead)")
    path = SEALED / f"places_{language}.yml"
    if not path.exists():
        pytest.skip(f"tests/places_sealed/{path.name} is not there yet")
    figures = score(gazetteer, read_table(path))
    print(figures.line(f"sealed {language}"))  # noqa: T201 - the figures quoted in the README
    for line in figures.wrong:
        print("  WRONG:", line)  # noqa: T201 - the figures quoted in the README
    assert figures.wrong == [], f"{len(figures.wrong)} wrong neighbourhoods"
    assert figures.ask_asked >= figures.ask_expected - 1, "places that must be asked about were not"
    assert figures.located_rate >= LOCATED_FLOOR, f"only {figures.located_rate:.0%} located without a question"
