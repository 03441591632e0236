"""Saying back where and when, entirely in the citizen's language.

"cantonada Mallorca / Pau Claris, la Dreta de l'Eixample", "ubicación compartida, Sant Antoni",
"ahir a les 22:15", "hoy hacia las 9": the summary and the confirmation use these.
The ``place`` slot holds ``place_slot(Place)``: the citizen's words, what was understood, how
(``location_source``) and how precisely (``radius``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date

from common.geo import Neighbourhood
from common.i18n import N_
from common.places import CORNER, NEIGHBOURHOOD, NOT_LOCATED, SHARED_LOCATION, Place

Translate = Callable[..., str]

_PLACE_PHRASES = {
    SHARED_LOCATION: N_("shared location, {neighbourhood}"),
    CORNER: N_("corner of {place}, {neighbourhood}"),
}
_PLACE_IN = N_("{place}, {neighbourhood}")
_SHARED_ALONE = N_("shared location")
_NOT_LOCATED = N_("{place} (not found on the map)")

_WHEN_EXACT = {
    0: N_("today at {time}"),
    1: N_("yesterday at {time}"),
    None: N_("on {day} at {time}"),
}
_WHEN_AROUND = {
    0: N_("today around {time}"),
    1: N_("yesterday around {time}"),
    None: N_("on {day}, around {time}"),
}
_WHEN_DAY = {0: N_("today"), 1: N_("yesterday"), None: N_("on {day}")}
_UNKNOWN_TIME = N_("Unknown")


def place_slot(place: Place) -> dict[str, Any]:
    """What the ``place`` slot keeps of a resolved place (JSON, in the engine's tracker)."""
    return {
        "text": place.text, "label": place.label, "source": place.source,
        "radius": place.radius, "street": place.street,
    }


def place_fields(value: Any) -> dict[str, Any]:
    """The ``place`` slot as a dict, also for a plain text kept by an older conversation."""
    if isinstance(value, Mapping):
        return dict(value)
    text = str(value or "")
    return {"text": text, "label": text, "source": NOT_LOCATED if text else None, "radius": None, "street": None}


def describe_place(value: Any, neighbourhood: Neighbourhood | None, t: Translate) -> str:
    """The place as understood, in the citizen's language."""
    fields = place_fields(value)
    source, label = fields.get("source"), fields.get("label") or fields.get("text") or ""
    if source == SHARED_LOCATION:
        if neighbourhood is None:
            return t(_SHARED_ALONE)
        return t(_PLACE_PHRASES[SHARED_LOCATION], neighbourhood=neighbourhood.name)
    if neighbourhood is None:
        return t(_NOT_LOCATED, place=label) if label else t(_UNKNOWN_TIME)
    if source == NEIGHBOURHOOD or not label:
        return neighbourhood.name
    phrase = _PLACE_PHRASES.get(str(source), _PLACE_IN)
    return t(phrase, place=label, neighbourhood=neighbourhood.name)


def describe_when(value: Any, *, locale: str, zone: ZoneInfo, now: datetime, t: Translate) -> str:
    """The time as a person says it: "yesterday at 22:15", "hoy hacia las 9", "el 3 de març"."""
    when = value if isinstance(value, Mapping) else {}
    if not when.get("iso"):
        return t(_UNKNOWN_TIME)
    moment = datetime.fromisoformat(str(when["iso"])).astimezone(zone)
    approximate = bool(when.get("approximate"))
    days_ago = (now.astimezone(zone).date() - moment.date()).days
    key: int | None = days_ago if days_ago in (0, 1) else None
    day = _day(moment.date(), now.astimezone(zone).date(), locale)
    if approximate and (moment.hour, moment.minute) == (12, 0):  # a day without a time
        return t(_WHEN_DAY[key], day=day)
    if approximate:
        time_text = f"{moment.hour}" if moment.minute == 0 else f"{moment.hour}:{moment.minute:02d}"
        return t(_WHEN_AROUND[key], day=day, time=time_text)
    return t(_WHEN_EXACT[key], day=day, time=f"{moment.hour}:{moment.minute:02d}")


# "3 de marzo", "3 de març", "3 March" (Babel's Spanish month pattern has no "de")
_DAY_PATTERNS = {"es": ("d 'de' MMMM", "d 'de' MMMM 'de' y"), "ca": ("d MMMM", "d MMMM 'de' y")}


def _day(day: date, today: date, locale: str) -> str:
    if 0 < (today - day).days < 7:
        return format_date(day, "EEEE", locale=locale)  # "lunes", "dilluns", "Monday"
    this_year, other_year = _DAY_PATTERNS.get(locale, ("d MMMM", "d MMMM y"))
    return format_date(day, this_year if day.year == today.year else other_year, locale=locale)
