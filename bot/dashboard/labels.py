"""How the dashboard names things for staff (English), and how it writes times and durations."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.i18n import LANGUAGE_NAMES, Catalogs
from dialogues.actions.responses import CATEGORY_LABELS
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
    Case,
    CaseEvent,
)

STAFF_LOCALE = "en"
OPEN_STATUSES = ("new", "acknowledged", "in_progress")
PRIORITY_ORDER = ("urgent", "high", "normal")

STATUS_NAMES = {
    "new": "New", "acknowledged": "Acknowledged", "in_progress": "In progress", "resolved": "Resolved",
    "closed": "Closed", "rejected": "Rejected", "duplicate": "Duplicate",
}
PRIORITY_NAMES = {"urgent": "Urgent", "high": "High", "normal": "Normal"}
# How the case's place was found (cases.location_source)
LOCATION_SOURCE_NAMES = {
    "shared_location": "Location shared by the citizen",
    "corner": "Corner of two streets",
    "street_number": "Street number (estimated along the street)",
    "street": "Street, in the neighbourhood the citizen chose",
    "landmark": "Landmark, station or square",
    "neighbourhood": "Neighbourhood name only",
    "not_located": "Not located: the citizen's words only",
}
CHANNEL_NAMES = {"web": "Web chat", "telegram": "Telegram", "open311": "Open311"}
CONTACT_NAMES = {
    "anonymous": "Anonymous: no updates",
    "chat": "Updates in the chat",
    "contact": "Wants to be contacted",
}
EVENT_NAMES = {
    EVENT_CREATED: "Report received",
    EVENT_STATUS_CHANGED: "Status changed",
    EVENT_NOTE_PUBLIC: "Public note (for the citizen)",
    EVENT_NOTE_INTERNAL: "Internal note",
    EVENT_HANDOFF_REQUESTED: "Citizen asked to talk to a person",
    EVENT_CITIZEN_INFO: "More information from the citizen",
    EVENT_ERASED: "Citizen's data erased",
    EVENT_CITIZEN_NOTIFIED: "Citizen notified",
    EVENT_UPDATED: "Priority or assignee changed",
}
# Colour classes of the categories in charts and legends (desk.css: .cat-0 ... .cat-9).
CATEGORY_CLASSES = {code: f"cat-{index}" for index, code in enumerate(CATEGORIES)}
NOT_LOCATED = "Not located"


def category_label(catalogs: Catalogs, code: str) -> str:
    """The category's label from the citizen-facing catalog, in the staff language."""
    label = CATEGORY_LABELS.get(code)
    return catalogs.gettext(label, STAFF_LOCALE) if label else code


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def age_text(seconds: float) -> str:
    """How long ago, compactly; desk.js writes the same text as time passes."""
    minutes = int(max(seconds, 0) // 60)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def when_text(moment: datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return "–"
    return moment.astimezone(zone).strftime("%a %d %b %Y, %H:%M")


def chat_line(event: CaseEvent, zone: ZoneInfo) -> dict[str, str]:
    """One message of a live conversation as the case page shows it (the text is escaped there)."""
    who = "Citizen" if event.kind == CHAT_FROM_CITIZEN else event.actor
    return {"id": str(event.id), "kind": event.kind, "text": event.text or "", "who": who,
            "when": when_text(event.at, zone)}


def duration_text(hours: float | None) -> str:
    if hours is None:
        return "–"
    if hours < 1:
        return f"{round(hours * 60)} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def excerpt(text: str | None, limit: int = 110) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def case_row(case: Case, catalogs: Catalogs, now: datetime) -> dict[str, Any]:
    """One line of the queue, for the page and (as JSON) for the live event stream."""
    return {
        "ref": case.ref,
        "url": f"/desk/cases/{case.ref}",
        "category": case.category,
        "category_label": category_label(catalogs, case.category),
        "excerpt": excerpt(case.description),
        "neighbourhood": case.neighbourhood_name or NOT_LOCATED,
        "district": case.district_name or "",
        "created_at": case.created_at.isoformat(),
        "updated_at": case.updated_at.isoformat(),
        "age": age_text((now - case.created_at).total_seconds()),
        "status": case.status,
        "status_label": STATUS_NAMES.get(case.status, case.status),
        "priority": case.priority,
        "priority_label": PRIORITY_NAMES.get(case.priority, case.priority),
        "handoff": case.handoff_requested_at is not None,
        # nobody acknowledged it in time (set by the escalation job); highlighted while still new
        "escalated": case.escalated_at is not None and case.status == "new",
        "assignee": case.assignee or "",
        "open": case.status in OPEN_STATUSES,
    }
