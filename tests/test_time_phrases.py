"""Time phrases per language (tables in tests/places/times_*.yml, issue #11), and a message
replayed after an outage read against when it was written."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from common.when import UnknownTime, parse_when

MADRID = ZoneInfo("Europe/Madrid")
NOW = datetime(2026, 12, 7, 10, 30, tzinfo=MADRID)  # a Monday
TABLES = Path(__file__).parent / "places"


def _cases(language: str) -> list[tuple[str, str, bool | None]]:
    entries = yaml.safe_load((TABLES / f"times_{language}.yml").read_text(encoding="utf-8"))
    return [(e["text"], e["expect"], e.get("approximate")) for e in entries]


@pytest.mark.parametrize("language", ["en", "es", "ca"])
def test_time_table(language: str) -> None:
    cases = _cases(language)
    assert len(cases) >= 40
    failures = []
    for text, expect, approximate in cases:
        try:
            parsed = parse_when(text, now=NOW, zone=MADRID, locale=language)
        except UnknownTime:
            got = "unknown"
        else:
            if parsed is None:
                got = "none"
            elif parsed.moment > NOW:
                got = "future"
            else:
                got = parsed.moment.astimezone(MADRID).strftime("%Y-%m-%dT%H:%M")
                if approximate is not None and parsed.approximate != approximate:
                    got += f" (approximate={parsed.approximate})"
        ok = got in ("future", "none") if expect == "future" else got == expect  # a future: refused either way
        if not ok:
            failures.append(f"{text!r}: expected {expect}, got {got}")
    assert failures == []
