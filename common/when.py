"""When did it happen? Natural time phrases in English, Spanish and Catalan.

dateparser handles explicit dates and most English phrases, but not the everyday Spanish and
Catalan ways of saying a part of the day ("ayer por la noche", "ahir a les deu", "anit").
We read the day and the time of day ourselves, then let dateparser handle the rest.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
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


def said_as_future(text: str) -> bool:
    """Whether the text speaks of a time to come ("tomorrow", "demà", "la semana que viene")."""
    return bool(FUTURE_WORDS.search(_fold(text)))


def today_named(text: str) -> bool:
    """Whether the text says "today" or "tonight" (with an hour still to come, a future)."""
    return bool(_DAY_OFFSETS[-1][0].search(_fold(text)))


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
# "a while ago": about half an hour, said as approximate
_A_WHILE = re.compile(
    r"\b(a (little )?while ago|not long ago|hace un rato|hace un ratito|hace poco|fa una estona|fa poc"
    r"|fa una estoneta)\b"
)
# Until this hour, "today" and "this morning" still mean the day that has just ended, as people
# who have not slept yet say them ("this morning at 8" at half past midnight).
DAY_ENDS_AT = 5
# Said about what has not happened yet: refused by the form as a time in the future.
FUTURE_WORDS = re.compile(
    r"\b(tomorrow|next (week|month)|dema|passat dema|la setmana que ve|la semana que viene"
    r"|pasado manana|la proxima semana|d'aqui a|dentro de|in \d+ (minutes|hours|days))\b"
    r"|(?<!esta )(?<!la )(?<!de )(?<!por )(?<!cada )\bmanana\b(?! (por|de) la manana)"
)
_NUMBER_WORDS = {
    "un": 1, "una": 1, "one": 1, "a": 1, "an": 1, "dos": 2, "dues": 2, "two": 2, "tres": 3, "three": 3,
    "quatre": 4, "cuatro": 4, "four": 4, "cinc": 5, "cinco": 5, "five": 5, "sis": 6, "seis": 6,
    "six": 6, "set": 7, "siete": 7, "seven": 7, "vuit": 8, "ocho": 8, "eight": 8, "nou": 9,
    "nueve": 9, "nine": 9, "deu": 10, "diez": 10, "ten": 10, "onze": 11, "once": 11, "eleven": 11,
    "dotze": 12, "doce": 12, "twelve": 12, "quinze": 15, "quince": 15, "fifteen": 15,
    "vint": 20, "veinte": 20, "twenty": 20,
}
_AGO = re.compile(
    r"\b(?:(?:hace|fa)\s+)?(?P<n>\d+|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
    + r"|mitja|media|half an?)\s*"
    r"(?P<unit>min(?:ut)?(?:o|e)?s?|minuts?|h|hrs?|hours?|horas?|hores?)"
    r"(?:\s+ago)?\b"
)
_DAY_OFFSETS = [
    (re.compile(r"\b(day before yesterday|anteayer|antes de ayer|abans d'ahir|abans-d'ahir|abans dahir)\b"), -2),
    (re.compile(r"\b(yesterday|ayer|ahir|last night|anoche|anit|ahir a la nit|ahir al vespre)\b"), -1),
    (re.compile(r"\b(last week|la semana pasada|la setmana passada|the week before)\b"), -7),
    (re.compile(r"\b(today|tonight|this (morning|afternoon|evening)|hoy|esta (manana|tarde|noche)"
                r"|avui|aquest mati|aquesta (tarda|nit)|aquest vespre)\b"), 0),
]
_WEEKDAYS = [
    ("monday", "lunes", "dilluns"), ("tuesday", "martes", "dimarts"),
    ("wednesday", "miercoles", "dimecres"), ("thursday", "jueves", "dijous"),
    ("friday", "viernes", "divendres"), ("saturday", "sabado", "dissabte"),
    ("sunday", "domingo", "diumenge"),
]
_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan", "enero", "gener"), ("february", "feb", "febrero", "febrer"),
            ("march", "mar", "marzo", "marc"), ("april", "apr", "abril"), ("may", "mayo", "maig"),
            ("june", "jun", "junio", "juny"), ("july", "jul", "julio", "juliol"),
            ("august", "aug", "agosto", "agost"), ("september", "sep", "sept", "septiembre", "setembre"),
            ("october", "oct", "octubre"), ("november", "nov", "noviembre", "novembre"),
            ("december", "dec", "diciembre", "desembre"),
        ],
        start=1,
    )
    for name in names
}
_MONTH_NAMES = "|".join(sorted(_MONTHS, key=len, reverse=True))
# "el 3 de marzo", "l'1 de desembre", "3 March 2026", "March 3, 2026", "the 3rd of March", "3/12"
_DATE_DAY_MONTH = re.compile(
    r"\b(?P<d>[0-3]?\d)(?:st|nd|rd|th)?\s+(?:de\s+|d'|of\s+)?(?P<m>" + _MONTH_NAMES + r")\b"
    r"(?:\s+(?:de\s+|del\s+)?(?P<y>20\d\d))?"
)
_DATE_MONTH_DAY = re.compile(
    r"\b(?P<m>" + _MONTH_NAMES + r")\s+(?P<d>[0-3]?\d)(?:st|nd|rd|th)?\b(?:,?\s+(?P<y>20\d\d))?"
)
_DATE_NUMERIC = re.compile(r"\b(?P<d>[0-3]?\d)/(?P<m>[01]?\d)(?:/(?P<y>(?:20)?\d\d))?\b")
_MIDNIGHT = re.compile(r"\b(midnight|medianoche|mitjanit|mitja nit)\b")
# Part of the day and the hour we assume for it.
_PARTS = [
    (re.compile(r"\b(de (la )?madrugada|de (la )?matinada|early morning|in the small hours|in the morning"
                r"|de la manana|del mati)\b"), 3, "small_hours"),
    (re.compile(r"\b(last night|tonight|at night|in the night|por la noche|de noche|esta noche|anoche"
                r"|a la nit|de nit|aquesta nit|anit|la nit|de la noche|de la nit|night)\b"), 22, "night"),
    (re.compile(r"\b(evening|al vespre|vespre|del vespre|al anochecer)\b"), 20, "evening"),
    (re.compile(r"\b(afternoon|por la tarde|esta tarde|a la tarda|aquesta tarda|de tarde|la tarda|de la tarde"
                r"|de la tarda)\b"), 17, "afternoon"),
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


def _explicit_date(folded: str, today: date) -> tuple[date, tuple[int, int]] | None:
    """A date said with its month ("el 3 de marzo", "3/12"), the latest one not after today when
    no year is given; and where in the text it was, so its numbers are not read as an hour."""
    for pattern in (_DATE_DAY_MONTH, _DATE_MONTH_DAY, _DATE_NUMERIC):
        match = pattern.search(folded)
        if not match:
            continue
        month_text = match.group("m")
        month = _MONTHS.get(month_text) if not month_text.isdigit() else int(month_text)
        day_number = int(match.group("d"))
        year_text = match.group("y")
        year = (2000 + int(year_text) % 100) if year_text else today.year
        try:
            found = date(year, month or 0, day_number)
        except ValueError:
            continue
        if not year_text and found > today:
            try:
                found = found.replace(year=year - 1)
            except ValueError:
                continue
        return found, match.span()
    return None


def parse_when(text: str, *, now: datetime, zone: ZoneInfo, locale: str = "en") -> ParsedTime | None:
    """When something happened, or None if the text says no time we can read.

    ``now`` is when the citizen wrote it (a message replayed after an outage is read against
    the moment it was received, not the replay). Raises UnknownTime when the citizen says
    they do not know. A moment in the future (said with "tomorrow", or a date to come) is
    returned as it is, for the caller to refuse; read times of day are the latest past ones.
    CPU-bound (a few milliseconds): callers on an event loop run it in a thread.
    """
    text = text[:MAX_INPUT_CHARS]
    folded = _fold(text).strip()
    if not folded:
        return None
    if _DONT_KNOW.search(folded):
        raise UnknownTime(text)
    local_now = now.astimezone(zone)
    if FUTURE_WORDS.search(folded):
        return ParsedTime(local_now + timedelta(days=1), approximate=True)

    ago = _AGO.search(folded)
    if ago and (ago.group(0).startswith(("hace", "fa ")) or "ago" in ago.group(0)):
        amount_text = ago.group("n")
        amount = 0.5 if amount_text.startswith(("mitja", "media", "half")) else (
            int(amount_text) if amount_text.isdigit() else _NUMBER_WORDS.get(amount_text, 1)
        )
        minutes = amount * (60 if ago.group("unit").startswith("h") else 1)
        return ParsedTime(local_now - timedelta(minutes=minutes), approximate=False)
    if _A_WHILE.search(folded):
        return ParsedTime(local_now - timedelta(minutes=30), approximate=True)
    if _NOW.search(folded):
        return ParsedTime(local_now, approximate=False)

    explicit = _explicit_date(folded, local_now.date())
    day_offset: int | None = None
    if explicit is not None:
        day_offset = (explicit[0] - local_now.date()).days
        start, end = explicit[1]
        folded = f"{folded[:start]} {folded[end:]}"  # its numbers are not an hour
    for pattern, offset in _DAY_OFFSETS:
        if day_offset is None and pattern.search(folded):
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
    if clock is None and _MIDNIGHT.search(folded):
        clock, part_name = (12, 0, None), "night"

    if day_offset is None and part_hour is None and clock is None:
        return _dateparser(text, local_now, zone, locale) if len(text.strip()) <= DATEPARSER_MAX_CHARS else None

    day = local_now.date() + timedelta(days=day_offset or 0)
    if clock is not None:
        hour, minute, marker = clock
        if marker == "pm" and hour < 12:
            hour += 12
        elif marker == "am" and hour == 12:
            hour = 0
        elif marker is None and hour <= 12:
            hour = _hour_in_part(hour, part_name, day, minute, local_now, zone)
        if part_name == "night" and hour == 0 and marker != "am" and day_offset is not None:
            day += timedelta(days=1)  # "ayer a las 12 de la noche": the midnight that ended that day
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
        elif day_offset == 0 and local_now.hour < DAY_ENDS_AT:
            moment -= timedelta(days=1)  # "this morning at 8" said at half past midnight
        elif day_offset == 0:
            moment = local_now if approximate else moment  # "today" at a time still to come: refused
    return ParsedTime(moment, approximate=approximate)


def _hour_in_part(hour: int, part: str | None, day: date, minute: int, local_now: datetime, zone: ZoneInfo) -> int:
    """A 1-12 hour said without am/pm, read in the part of the day it was said with
    ("a las 10 de la noche" is 22:00, "a les 3 de la matinada" 03:00), else the latest past."""
    if part == "night":
        return 0 if hour == 12 else (hour if hour <= 4 else hour + 12)
    if part == "small_hours":
        return 0 if hour == 12 else hour
    if part in ("evening", "afternoon"):
        return hour if hour == 12 else hour + 12
    if part == "morning":
        return hour
    for candidate in (hour % 12 + 12, hour % 12):
        if datetime.combine(day, time(candidate, minute), zone) <= local_now:
            return candidate
    return hour


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
    if parsed.time() == time(0):  # a day without a time: the middle of it, approximate
        return ParsedTime(min(parsed.replace(hour=12), local_now), approximate=True)
    return ParsedTime(parsed, approximate=False)
