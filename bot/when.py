"""When did it happen? Natural time phrases in English, Spanish and Catalan.

dateparser handles explicit dates and most English phrases, but not the everyday Spanish and
Catalan ways of saying a part of the day ("ayer por la noche", "ahir a les deu", "anit").
We read the day and the time of day ourselves, then let dateparser handle the rest.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import dateparser

# dateparser takes up to a second on a few thousand characters, and a time is a short phrase:
# longer texts (a whole account of what happened) are read by the patterns below only, which
# take milliseconds on the longest message a citizen can send.
DATEPARSER_MAX_CHARS = 120
MAX_INPUT_CHARS = 4000


class UnknownTime(Exception):  # noqa: N818 - reads as "the time is unknown"
    """The citizen said they do not know when it happened."""


@dataclass(frozen=True)
class ParsedTime:
    moment: datetime
    approximate: bool  # True when only a part of the day or a day was given


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[’`´]", "'", text)


_DONT_KNOW = re.compile(
    r"\b(i (do ?n'?t|dont) know|not sure|no idea|no (lo )?se|ni idea|no ho se|no en tinc ni idea"
    r"|no me acuerdo|no ho recordo|don'?t remember|unknown|desconegut|desconocido)\b"
)
_NOW = re.compile(
    r"\b(just now|right now|now|a moment ago|ahora mismo|ahora|ahorita|justo ahora|hace un momento"
    r"|ara mateix|ara|fa un moment|ara fa un moment|en este momento|en aquest moment)\b"
)
_AGO = re.compile(
    r"\b(?:(?:hace|fa)\s+)?(?P<n>\d+|un|una|one|a|an|dos|two|tres|three|mitja|media|half an?)\s*"
    r"(?P<unit>min(?:ut)?(?:o|e)?s?|minuts?|h|hrs?|hours?|horas?|hores?)"
    r"(?:\s+ago)?\b"
)
_NUMBER_WORDS = {
    "un": 1, "una": 1, "one": 1, "a": 1, "an": 1, "dos": 2, "two": 2, "tres": 3, "three": 3,
    "quatre": 4, "cuatro": 4, "four": 4, "cinc": 5, "cinco": 5, "five": 5, "sis": 6, "seis": 6,
    "six": 6, "set": 7, "siete": 7, "seven": 7, "vuit": 8, "ocho": 8, "eight": 8, "nou": 9,
    "nueve": 9, "nine": 9, "deu": 10, "diez": 10, "ten": 10, "onze": 11, "once": 11, "eleven": 11,
    "dotze": 12, "doce": 12, "twelve": 12,
}
_DAY_OFFSETS = [
    (re.compile(r"\b(day before yesterday|anteayer|antes de ayer|abans d'ahir|abans-d'ahir|abans dahir)\b"), -2),
    (re.compile(r"\b(yesterday|ayer|ahir|last night|anoche|anit|ahir a la nit|ahir al vespre)\b"), -1),
    (re.compile(r"\b(today|tonight|this (morning|afternoon|evening)|hoy|esta (manana|tarde|noche)"
                r"|avui|aquest mati|aquesta (tarda|nit)|aquest vespre)\b"), 0),
]
_WEEKDAYS = [
    ("monday", "lunes", "dilluns"), ("tuesday", "martes", "dimarts"),
    ("wednesday", "miercoles", "dimecres"), ("thursday", "jueves", "dijous"),
    ("friday", "viernes", "divendres"), ("saturday", "sabado", "dissabte"),
    ("sunday", "domingo", "diumenge"),
]
# Part of the day and the hour we assume for it.
_PARTS = [
    (re.compile(r"\b(de madrugada|de matinada|early morning|in the small hours)\b"), 3, "night"),
    (re.compile(r"\b(last night|tonight|at night|in the night|por la noche|de noche|esta noche|anoche"
                r"|a la nit|de nit|aquesta nit|anit|la nit)\b"), 22, "night"),
    (re.compile(r"\b(evening|al vespre|vespre|al anochecer)\b"), 20, "evening"),
    (re.compile(r"\b(afternoon|por la tarde|esta tarde|a la tarda|aquesta tarda|de tarde|la tarda)\b"), 17, "afternoon"),
    (re.compile(r"\b(noon|midday|mediodia|al migdia|migdia)\b"), 13, "noon"),
    (re.compile(r"\b(morning|por la manana|esta manana|de manana|al mati|aquest mati|de mati|el mati)\b"), 9, "morning"),
]
_CLOCK = re.compile(
    r"\b(?:at|a las|a la|sobre las|cap a les|a les|a la una|about|around|hacia las)?\s*"
    r"(?P<h>2[0-3]|[01]?\d)(?:[:.h](?P<m>[0-5]\d))?\s*(?P<ampm>am|pm|a\.m\.|p\.m\.|h\b)?"
)
_CLOCK_WORDS = re.compile(
    r"\b(?:a las|a la|a les|at|sobre las|cap a les)\s+(?P<w>una|one|dos|two|tres|three|quatre|cuatro|four"
    r"|cinc|cinco|five|sis|seis|six|set|siete|seven|vuit|ocho|eight|nou|nueve|nine|deu|diez|ten|onze"
    r"|once|eleven|dotze|doce|twelve)\b(?:\s+(?P<half>i mitja|y media|thirty))?"
)


def _clock_hour(folded: str) -> tuple[int, int, str | None] | None:
    words = _CLOCK_WORDS.search(folded)
    if words:
        return _NUMBER_WORDS[words.group("w")], 30 if words.group("half") else 0, None
    for match in _CLOCK.finditer(folded):
        if not match.group(0).strip():
            continue
        hour_text = match.group("h")
        has_marker = bool(match.group("m") or match.group("ampm"))
        prefix = match.group(0).split(hour_text)[0].strip()
        if not has_marker and not prefix:
            continue  # a bare number is not a time ("2 bikes")
        hour, minute = int(hour_text), int(match.group("m") or 0)
        ampm = (match.group("ampm") or "").replace(".", "")
        return hour, minute, ampm if ampm in ("am", "pm") else ("24h" if hour > 12 or match.group("m") else None)
    return None


def parse_when(text: str, *, now: datetime, zone: ZoneInfo, locale: str = "en") -> ParsedTime | None:
    """When something happened, or None if the text says no time we can read.

    Raises UnknownTime when the citizen says they do not know. Never returns a future time.
    CPU-bound (a few milliseconds): callers on an event loop run it in a thread.
    """
    text = text[:MAX_INPUT_CHARS]
    folded = _fold(text).strip()
    if not folded:
        return None
    if _DONT_KNOW.search(folded):
        raise UnknownTime(text)
    local_now = now.astimezone(zone)

    ago = _AGO.search(folded)
    if ago and (ago.group(0).startswith(("hace", "fa ")) or "ago" in ago.group(0)):
        amount_text = ago.group("n")
        amount = 0.5 if amount_text.startswith(("mitja", "media", "half")) else (
            int(amount_text) if amount_text.isdigit() else _NUMBER_WORDS.get(amount_text, 1)
        )
        minutes = amount * (60 if ago.group("unit").startswith("h") else 1)
        return ParsedTime(local_now - timedelta(minutes=minutes), approximate=False)
    if _NOW.search(folded):
        return ParsedTime(local_now, approximate=False)

    day_offset: int | None = None
    for pattern, offset in _DAY_OFFSETS:
        if pattern.search(folded):
            day_offset = offset
            break
    if day_offset is None:
        for index, names in enumerate(_WEEKDAYS):
            if any(re.search(rf"\b{name}\b", folded) for name in names):
                day_offset = -((local_now.weekday() - index) % 7 or 7)
                break

    part_hour = None
    part_name = None
    for pattern, hour, name in _PARTS:
        if pattern.search(folded):
            part_hour, part_name = hour, name
            break
    clock = _clock_hour(folded)

    if day_offset is None and part_hour is None and clock is None:
        return _dateparser(text, local_now, zone, locale) if len(text.strip()) <= DATEPARSER_MAX_CHARS else None

    day = (local_now + timedelta(days=day_offset or 0)).date()
    if clock is not None:
        hour, minute, marker = clock
        if marker == "pm" and hour < 12:
            hour += 12
        elif marker == "am" and hour == 12:
            hour = 0
        elif marker is None and hour <= 12:
            # "a las 8": pick the reading that fits the part of day, else the latest past one
            early_night = part_name == "night" and hour <= 4
            if part_name in ("night", "evening", "afternoon") and hour < 12 and not early_night:
                hour += 12
            elif part_name is None:
                candidates = [hour % 12 + 12, hour % 12]
                for candidate in candidates:
                    moment = datetime.combine(day, time(candidate, minute), zone)
                    if moment <= local_now:
                        hour = candidate
                        break
        moment = datetime.combine(day, time(hour % 24, minute), zone)
        approximate = False
    elif part_hour is not None:
        moment = datetime.combine(day, time(part_hour), zone)
        approximate = True
    else:
        moment = datetime.combine(day, time(12), zone)
        approximate = True
    if moment > local_now:
        if day_offset is None:
            moment -= timedelta(days=1)  # "at 10 pm" said in the morning means last night
        else:
            moment = local_now if day_offset == 0 else moment
    return ParsedTime(moment, approximate=approximate)


def _dateparser(text: str, local_now: datetime, zone: ZoneInfo, locale: str) -> ParsedTime | None:
    languages = [locale] + [code for code in ("es", "ca", "en") if code != locale]
    parsed = dateparser.parse(
        re.sub(r"^(on|the|el|la|les|los|l')\s+", "", text.strip(), flags=re.IGNORECASE),
        languages=languages,
        settings={
            "PREFER_DATES_FROM": "past",
            "TIMEZONE": str(zone),
            "RETURN_AS_TIMEZONE_AWARE": True,
            "RELATIVE_BASE": local_now.replace(tzinfo=None),
        },
    )
    if parsed is None:
        return None
    parsed = parsed.astimezone(zone)
    if parsed > local_now + timedelta(minutes=1):
        return None
    return ParsedTime(parsed, approximate=parsed.time() == time(0))
