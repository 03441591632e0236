"""What the actions and the NLG endpoint share: injected services and the citizen's locale."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from common.geo import Neighbourhoods
from common.i18n import Catalogs
from common.language import conversation_language
from common.places import Gazetteer
from common.settings import Settings


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    """Everything an action needs from outside, built once at start-up and passed in."""

    settings: Settings
    catalogs: Catalogs
    db: Engine
    neighbourhoods: Neighbourhoods
    gazetteer: Gazetteer  # the place resolver (common.places)
    clock: Callable[[], datetime] = field(default=utc_now)


def user_texts(events: Sequence[Mapping[str, Any]]) -> list[str]:
    return [e.get("text") or "" for e in events if e.get("event") == "user"]


def locale_hint(events: Sequence[Mapping[str, Any]]) -> str | None:
    for event in reversed(events):
        if event.get("event") == "user":
            metadata = event.get("metadata") or {}
            hint = metadata.get("locale")
            return str(hint) if hint else None
    return None


def conversation_locale(
    slots: Mapping[str, Any], events: Sequence[Mapping[str, Any]], catalogs: Catalogs
) -> str:
    """The language to answer in: the citizen's explicit choice, else what they write in,
    else their browser's or app's language, else the deployment default."""
    chosen = slots.get("language")
    if chosen in catalogs.translations:
        return str(chosen)
    hint = locale_hint(events)
    return conversation_language(
        user_texts(events), catalogs.negotiate(hint) if hint else None, catalogs.default_locale
    )
