"""How the dashboard names things for staff, in their language, and how it writes times,
numbers and durations (Babel, for the locale and the deployment's TIME_ZONE).

Every page gets one ``DeskText`` for the signed-in user's language (or, before signing in,
the browser's); templates call it as ``_("...")``. The English msgids are marked with ``N_``
so that ``make extract`` finds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_skeleton
from babel.numbers import format_decimal, format_percent
from babel.units import format_unit
from markupsafe import Markup, escape

from common.i18n import LANGUAGE_NAMES, N_, Catalogs
from common.responses import CATEGORY_LABELS
from storage.desk import CHAT_FROM_CITIZEN, EVENT_CITIZEN_NOTIFIED, EVENT_UPDATED
from storage.models import (
    CATEGORIES,
    EVENT_CITIZEN_INFO,
    EVENT_CREATED,
    EVENT_ERASED,
    EVENT_HANDOFF_REQUESTED,
    EVENT_NOTE_INTERNAL,
    EVENT_NOTE_PUBLIC,
    EVENT_STATUS_CHANGED,
    OPEN_STATUSES,
    Case,
    CaseEvent,
)

STATUS_NAMES = {
    "new": N_("New"), "acknowledged": N_("Acknowledged"), "in_progress": N_("In progress"),
    "resolved": N_("Resolved"), "closed": N_("Closed"), "rejected": N_("Rejected"), "duplicate": N_("Duplicate"),
}
PRIORITY_NAMES = {"urgent": N_("Urgent"), "high": N_("High"), "normal": N_("Normal")}
ROLE_NAMES = {"dispatcher": N_("dispatcher"), "community": N_("community team"), "admin": N_("administrator")}
CHANNEL_NAMES = {"web": N_("Web chat"), "telegram": "Telegram", "open311": "Open311"}
# How the case's place was found (cases.location_source)
LOCATION_SOURCE_NAMES = {
    "shared_location": N_("Location shared by the citizen"),
    "corner": N_("Corner of two streets"),
    "street_number": N_("Street number (estimated along the street)"),
    "street": N_("Street, in the neighbourhood the citizen chose"),
    "landmark": N_("Landmark, station or square"),
    "neighbourhood": N_("Neighbourhood name only"),
    "not_located": N_("Not located: the citizen's words only"),
}
CONTACT_NAMES = {
    "anonymous": N_("Anonymous: no updates"),
    "chat": N_("Updates in the chat"),
    "contact": N_("Wants to be contacted"),
}
EVENT_NAMES = {
    EVENT_CREATED: N_("Report received"),
    EVENT_STATUS_CHANGED: N_("Status changed"),
    EVENT_NOTE_PUBLIC: N_("Public note (for the citizen)"),
    EVENT_NOTE_INTERNAL: N_("Internal note"),
    EVENT_HANDOFF_REQUESTED: N_("Citizen asked to talk to a person"),
    EVENT_CITIZEN_INFO: N_("More information from the citizen"),
    EVENT_ERASED: N_("Citizen's data erased"),
    EVENT_CITIZEN_NOTIFIED: N_("Citizen notified"),
    EVENT_UPDATED: N_("Priority or assignee changed"),
    "dispatched": N_("Announced to the dispatch group"),
    "escalated": N_("Escalated"),
    "escalation_dispatched": N_("Escalation announced to the dispatch group"),
    "follow_up_sent": N_("Follow-up sent to the citizen"),
    "survey_sent": N_("Survey sent to the citizen"),
    "survey_answered": N_("Survey answered"),
    "live_started": N_("Conversation taken over by staff"),
    "live_ended": N_("Conversation handed back to the assistant"),
    "chat_citizen": N_("Message from the citizen"),
    "chat_staff": N_("Message to the citizen"),
}
# Colour classes of the categories in charts and legends (desk.css: .cat-0 ... .cat-9).
CATEGORY_CLASSES = {code: f"cat-{index}" for index, code in enumerate(CATEGORIES)}
NOT_LOCATED = N_("Not located")
# The compact ages of the queue; desk.js gets the same patterns (see ``DeskText.age_patterns``).
AGE_PATTERNS = {
    "now": N_("just now"),
    "minutes": N_("{m} min"),
    "hours": N_("{h} h {mm} min"),
    "days": N_("{d} d {h} h"),
}


@dataclass(frozen=True)
class DeskText:
    """The desk's words, dates and numbers in one language."""

    catalogs: Catalogs
    locale: str
    zone: ZoneInfo

    # ------------------------------------------------------------------ words

    def gettext(self, message: str, **values: object) -> str:
        """Translate ``message`` (an English msgid) and fill its ``{placeholders}``. When a value
        is markup (a ``<time>`` element), the result is markup with the text escaped."""
        if any(isinstance(value, Markup) for value in values.values()):
            return Markup(escape(self.catalogs.gettext(message, self.locale))).format(**values)
        return self.catalogs.gettext(message, self.locale, **values)

    __call__ = gettext

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        """The plural form for ``n``; ``{n}`` in the text is ``n`` as the locale writes it."""
        translations = self.catalogs.translations.get(self.locale) or self.catalogs.translations["en"]
        return translations.ngettext(singular, plural, n).format(n=self.number(n), **values)

    def named(self, names: dict[str, str], code: str | None) -> str:
        """The translated name of a code (status, priority...), or the code itself."""
        if not code:
            return ""
        name = names.get(code)
        return self(name) if name else code

    def status(self, code: str | None) -> str:
        return self.named(STATUS_NAMES, code)

    def priority(self, code: str | None) -> str:
        return self.named(PRIORITY_NAMES, code)

    def role(self, code: str | None) -> str:
        return self.named(ROLE_NAMES, code)

    def category(self, code: str) -> str:
        """The category's label from the citizen-facing catalog."""
        return self.named(CATEGORY_LABELS, code)

    def place(self, name: str | None) -> str:
        """A neighbourhood's name; cases without one are "not located"."""
        return self(NOT_LOCATED) if not name or name == NOT_LOCATED else name

    def language(self, code: str) -> str:
        """A citizen's language, named in the staff's language ("castellà" for es in Catalan)."""
        names = {"en": N_("English"), "es": N_("Spanish"), "ca": N_("Catalan")}
        return self(names[code]) if code in names else LANGUAGE_NAMES.get(code, code)

    # ------------------------------------------------------------------ numbers and times

    def number(self, value: float, digits: int = 0) -> str:
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(value, format=pattern, locale=self.locale)

    def percent(self, value: float) -> str:
        return format_percent(value, locale=self.locale)

    def when(self, moment: datetime | None) -> str:
        """Date and time, e.g. "Mon, Dec 7, 2026, 10:20" / "dl., 7 de des. 2026, 10:20"."""
        if moment is None:
            return "–"
        local, locale = moment.astimezone(self.zone), Locale.parse(self.locale)
        day = format_skeleton("yMMMEd", local, locale=locale)
        clock = format_skeleton("Hm", local, locale=locale)
        return str(locale.datetime_formats["medium"]).format(clock, day)  # "{1}, {0}": day, then time

    def day(self, moment: date | datetime) -> str:
        if isinstance(moment, datetime):
            moment = moment.astimezone(self.zone).date()
        return format_skeleton("yMMMd", moment, locale=self.locale)

    def short_day(self, moment: date) -> str:
        return format_skeleton("MMMd", moment, locale=self.locale)

    def week_title(self, monday: date, key: str) -> str:
        return self("Week of {day} ({week})", day=self.day(monday), week=key)

    def duration(self, hours: float | None) -> str:
        """A median time: minutes under an hour, hours under two days, else days."""
        if hours is None:
            return "–"
        if hours < 1:
            value, unit = float(round(hours * 60)), "duration-minute"
        elif hours < 48:
            value, unit = round(hours, 1), "duration-hour"
        else:
            value, unit = round(hours / 24, 1), "duration-day"
        return str(format_unit(value, unit, length="short", format="#,##0.#", locale=self.locale))

    def age(self, seconds: float) -> str:
        """How long ago, compactly; desk.js writes the same text as time passes."""
        minutes = int(max(seconds, 0) // 60)
        if minutes < 1:
            return self(AGE_PATTERNS["now"])
        if minutes < 60:
            return self(AGE_PATTERNS["minutes"], m=minutes)
        hours, minutes = divmod(minutes, 60)
        if hours < 24:
            return self(AGE_PATTERNS["hours"], h=hours, mm=f"{minutes:02d}")
        days, hours = divmod(hours, 24)
        return self(AGE_PATTERNS["days"], d=days, h=hours)

    def age_patterns(self) -> dict[str, str]:
        return {key: self(pattern) for key, pattern in AGE_PATTERNS.items()}


def excerpt(text: str | None, limit: int = 110) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def chat_line(event: CaseEvent, t: DeskText) -> dict[str, str]:
    """One message of a live conversation as the case page shows it (the text is escaped there)."""
    who = t.gettext("Citizen") if event.kind == CHAT_FROM_CITIZEN else event.actor
    return {"id": str(event.id), "kind": event.kind, "text": event.text or "", "who": who, "when": t.when(event.at)}


def case_row(case: Case, t: DeskText, now: datetime) -> dict[str, Any]:
    """One line of the queue, for the page and (as JSON) for the live event stream."""
    return {
        "ref": case.ref,
        "url": f"/desk/cases/{case.ref}",
        "category": case.category,
        "category_label": t.category(case.category),
        "excerpt": excerpt(case.description),
        "neighbourhood": t.place(case.neighbourhood_name),
        "district": case.district_name or "",
        "created_at": case.created_at.isoformat(),
        "updated_at": case.updated_at.isoformat(),
        "age": t.age((now - case.created_at).total_seconds()),
        "status": case.status,
        "status_label": t.status(case.status),
        "priority": case.priority,
        "priority_label": t.priority(case.priority),
        "handoff": case.handoff_requested_at is not None,
        # nobody acknowledged it in time (set by the escalation job); highlighted while still new
        "escalated": case.escalated_at is not None and case.status == "new",
        "assignee": case.assignee or "",
        "open": case.status in OPEN_STATUSES,
    }
