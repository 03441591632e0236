"""What a read of service requests may show.

Reading requests is public (no api_key), so it never shows who reported: no contact, no
sender, no channel, no exact address (``address`` is the neighbourhood's name) and
coordinates rounded to 3 decimals (about 100 m). The citizen's own words (``description``)
are shown only to staff (a read with a dispatcher's or admin's api_key; erased cases never
show them); public reads give the service's name. ``status_notes``, the latest public note of
the dispatchers, is likewise for staff only: a note is written to the citizen and may name them.

Sensitive categories (``SENSITIVE_CATEGORIES``: harassment and assault, where the time and
place identify a victim; drugs, where they identify the neighbour who watched the dealing)
are coarsened in public reads: both datetimes are the day (midnight in the deployment's
zone), there is no lat/long, only the neighbourhood. So that the filters cannot give back
what the answer hides, a sensitive case matches a public date window when any part of its day
does (``public_day_window``), and public listings are ordered by day and reference, never by
the exact time (``public_order``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from storage.models import OPEN_STATUSES, Case

PUBLIC_DECIMALS = 3  # about 100 m
SENSITIVE_CATEGORIES = ("harassment", "assault", "drugs")


def public_status(status: str) -> str:
    return "open" if status in OPEN_STATUSES else "closed"


def _w3c(moment: datetime | None, zone: ZoneInfo) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(zone).isoformat(timespec="seconds")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, PUBLIC_DECIMALS)


def day_start(moment: datetime, zone: ZoneInfo) -> datetime:
    """Midnight of the moment's day in the deployment's zone."""
    local = moment.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def public_day_window(start: datetime, end: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The whole days a public window touches: where a sensitive case may match it."""
    return day_start(start, zone), day_start(end, zone) + timedelta(days=1)


def public_order(cases: list[Case], zone: ZoneInfo) -> list[Case]:
    """By day, then reference: the order of a public listing tells no time."""
    return sorted(cases, key=lambda case: (-day_start(case.created_at, zone).timestamp(), case.ref))


def public_request(case: Case, note: str | None, *, service_name: str, zone: ZoneInfo,
                   staff: bool = False) -> dict[str, Any]:
    """What anybody may know of a case: nothing about who reported it, no dispatcher's note,
    and sensitive cases only by day and neighbourhood; staff also get the citizen's
    description and the note."""
    description = case.description if staff and case.erased_at is None else service_name
    coarse = not staff and case.category in SENSITIVE_CATEGORIES
    created = day_start(case.created_at, zone) if coarse else case.created_at
    updated = created if coarse else case.updated_at
    return {
        "service_request_id": case.ref,
        "status": public_status(case.status),
        "status_notes": (note or "") if staff else "",
        "service_name": service_name,
        "service_code": case.category,
        "description": description,
        "agency_responsible": None,
        "service_notice": "",
        "requested_datetime": _w3c(created, zone),
        "updated_datetime": _w3c(updated, zone),
        "expected_datetime": None,
        "address": case.neighbourhood_name,
        "address_id": None,
        "zipcode": None,
        "lat": None if coarse else _rounded(case.latitude),
        "long": None if coarse else _rounded(case.longitude),
        "media_url": None,
    }
