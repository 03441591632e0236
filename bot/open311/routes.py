"""The Open311 routes (see the package's docstring): the handlers, the api_key checks, and the
reading of what was posted or asked for.

Posting a request needs ``api_key``: the API token of a staff user of role dispatcher or
admin (401 without a valid one, 403 for another role), in the ``X-Api-Key`` header (or
``Authorization: Bearer``), the form, or the query string as the spec has it (the access log
never records query strings). The case is stored with channel
"open311", the deployment's default locale, a new sender "open311:<uuid4>" per request and
the neighbourhood of lat/long (point in polygon) or, without them, ``address_string`` read by
the chat's own place resolver (``common.places``): a corner, a street and number, a landmark or a
neighbourhood becomes a point and a neighbourhood, a street that crosses several neighbourhoods
gets none; ``location_source`` and its radius are stored as for the chat. Contact details
(email, first_name, last_name, phone) are kept only when some are given (contact mode
"contact"; otherwise "anonymous"). The response is ``200`` with ``service_request_id``
(the case reference), ``service_notice`` and ``account_id``.
An audit entry records which staff user's key created the case.

``GET /requests`` follows the spec's defaults: with no dates, the last 90 days; with one date,
90 days from ``start_date`` or up to ``end_date``; a range may not span more than 90 days
(400). At most 1,000 requests, newest first. ``service_request_id`` (comma separated
references) overrides every other filter, as the spec says. ``service_code`` and ``status``
(open|closed) may be comma separated too. Dates are ISO 8601 / W3C; a date without a zone is
in the deployment's time zone, and a "+" turned into a space by an unencoded query string is
read back as "+". Open statuses are new, acknowledged and in_progress; resolved, closed,
rejected and duplicate are closed. Unknown query parameters (``jurisdiction_id``...) are
ignored. Cases of the category "other" have no service and are not listed.
"""

from __future__ import annotations

import asyncio
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from aiohttp import web
from pydantic import ValidationError

from bot.keys import CATALOGS, DB, NEIGHBOURHOODS, SETTINGS
from bot.open311.format import Problem, clean, formatted, render_list, render_object
from bot.open311.redaction import (
    SENSITIVE_CATEGORIES,
    public_day_window,
    public_order,
    public_request,
)
from bot.open311.services import SERVICE_CODES, service, service_name
from common.i18n import Catalogs, negotiate_locale
from common.places import RADIUS_SHARED, SHARED_LOCATION, Place, gazetteer_for
from storage import open311 as store
from storage.db import run_storage
from storage.models import (
    ADDRESS_MAX,
    CLOSED_STATUSES,
    DESCRIPTION_MAX,
    OPEN_STATUSES,
    Case,
    CaseCreate,
    Category,
    Channel,
    LocationSource,
    StaffUser,
    is_locale,
    utcnow,
)
from storage.refs import normalise_ref
from storage.users import user_for_token

PREFIX = "/open311/v2"
CHANNEL: Channel = "open311"
WRITERS = ("dispatcher", "admin")
WINDOW = timedelta(days=90)
MAX_RESULTS = 1000
MAX_IDS = 1000

_SPACED_OFFSET = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")


# --------------------------------------------------------------------------- services


def _locale(request: web.Request) -> str:
    return negotiate_locale(request.query.get("lang"), "en")


def _catalogs(request: web.Request) -> Catalogs | None:
    return request.app.get(CATALOGS)


@formatted
async def get_services(request: web.Request, fmt: str) -> web.Response:
    """GET /services.{fmt}: every service."""
    locale, catalogs = _locale(request), _catalogs(request)
    return render_list(fmt, "services", "service", [service(catalogs, code, locale) for code in SERVICE_CODES])


@formatted
async def get_service_definition(request: web.Request, fmt: str) -> web.Response:
    """GET /services/{service_code}.{fmt}: a service's attributes (none: metadata is false)."""
    code = request.match_info["service_code"]
    if code not in SERVICE_CODES:
        raise Problem(404, f"unknown service_code {code[:40]!r}")
    return render_object(fmt, "service_definition", {"service_code": code, "attributes": []})


# --------------------------------------------------------------------------- the api_key


def _header_key(request: web.Request) -> str | None:
    """The api_key sent in a header (``X-Api-Key``, or ``Authorization: Bearer``): the spec's
    query parameter also works, but a URL ends up in proxies' and browsers' histories."""
    key = request.headers.get("X-Api-Key", "").strip()
    if not key:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        key = value.strip() if scheme.lower() == "bearer" else ""
    return key or None


async def _staff(request: web.Request, api_key: str | None) -> StaffUser:
    if not api_key:
        raise Problem(401, "api_key is required")
    user = await run_storage(request.app[DB], user_for_token, token=api_key)
    if user is None:
        raise Problem(401, "invalid api_key")
    if user.role not in WRITERS:
        raise Problem(403, f"the api_key of a {user.role} user may not post service requests")
    return user


async def _is_staff_reader(request: web.Request) -> bool:
    """A read with a dispatcher's or admin's api_key (a wrong key is refused, not ignored)."""
    api_key = _header_key(request) or request.query.get("api_key")
    if not api_key:
        return False
    await _staff(request, api_key)
    return True


# --------------------------------------------------------------------------- posting


def _field(form: Mapping[str, Any], name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str):
        return None
    value = clean(value).strip()
    return value or None


def _coordinate(text: str, name: str, limit: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise Problem(400, f"{name} must be a decimal number") from None
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise Problem(400, f"{name} must be between {-limit:g} and {limit:g}")
    return value


@dataclass(frozen=True)
class Location:
    latitude: float | None
    longitude: float | None
    address: str | None


def _location(form: Mapping[str, Any]) -> Location:
    lat_text, long_text, address = _field(form, "lat"), _field(form, "long"), _field(form, "address_string")
    if (lat_text is None) != (long_text is None):
        raise Problem(400, "lat and long must be given together")
    if lat_text is None and address is None:
        raise Problem(400, "a location is required: lat and long, or address_string")
    if address is not None and len(address) > ADDRESS_MAX:
        raise Problem(400, f"address_string must be at most {ADDRESS_MAX} characters")
    latitude = _coordinate(lat_text, "lat", 90) if lat_text is not None else None
    longitude = _coordinate(long_text, "long", 180) if long_text is not None else None
    return Location(latitude, longitude, address)


async def _place(request: web.Request, where: Location) -> Place:
    """Where the request is: its lat/long (point in polygon), else its address_string read by
    the same resolver as the chat's (a place that could be in several neighbourhoods gets none)."""
    if where.latitude is not None and where.longitude is not None:
        found = request.app[NEIGHBOURHOODS].at(where.latitude, where.longitude)
        return Place(text=where.address or "", source=SHARED_LOCATION, label=found.name if found else "",
                     point=(where.latitude, where.longitude), neighbourhood=found, radius=RADIUS_SHARED)
    settings = request.app[SETTINGS]
    gazetteer = await asyncio.to_thread(gazetteer_for, settings.neighbourhoods_geojson, settings.gazetteer_dir)
    return gazetteer.resolve(where.address or "")


def _case_in(request: web.Request, form: Mapping[str, Any], resolved: Place | None = None) -> CaseCreate:
    code = _field(form, "service_code")
    if code is None:
        raise Problem(400, "service_code is required")
    if code not in SERVICE_CODES:
        raise Problem(400, f"unknown service_code {code[:40]!r}")
    where = _location(form)
    raw_description = form.get("description")
    description = clean(raw_description).strip() if isinstance(raw_description, str) else ""
    if len(description) > DESCRIPTION_MAX:
        raise Problem(400, f"description must be at most {DESCRIPTION_MAX} characters")
    email, phone = _field(form, "email"), _field(form, "phone")
    name = " ".join(part for part in (_field(form, "first_name"), _field(form, "last_name")) if part) or None
    if email is not None and "@" not in email:
        raise Problem(400, "email is not an e-mail address")
    contact = any((email, phone, name))
    if resolved is None:
        raise Problem(500, "the place was not resolved")
    place = resolved.neighbourhood
    latitude, longitude = resolved.point if resolved.point is not None else (None, None)
    locale = request.app[SETTINGS].default_locale
    if not is_locale(locale):  # Settings refuses any other DEFAULT_LOCALE; same answer CaseCreate gave
        raise Problem(400, "invalid locale")
    try:
        return CaseCreate(
            sender_id=f"{CHANNEL}:{uuid.uuid4()}",
            channel=CHANNEL,
            locale=locale,
            category=cast(Category, code),  # checked against SERVICE_CODES (all categories) above
            description=description or None,
            address=where.address,
            latitude=latitude,
            longitude=longitude,
            location_source=cast(LocationSource, resolved.source),
            location_radius=resolved.radius if resolved.point is not None else None,
            neighbourhood_code=place.code if place else None,
            neighbourhood_name=place.name if place else None,
            district_name=place.district if place else None,
            contact_mode="contact" if contact else "anonymous",
            contact_name=name if contact else None,
            contact_phone=phone if contact else None,
            contact_email=email if contact else None,
        )
    except ValidationError as problem:
        fields = sorted({str(error["loc"][0]) for error in problem.errors() if error["loc"]})
        names = {"contact_name": "first_name/last_name", "contact_phone": "phone", "contact_email": "email"}
        raise Problem(400, "invalid " + ", ".join(names.get(f, f) for f in fields)) from None


@formatted
async def post_request(request: web.Request, fmt: str) -> web.Response:
    """POST /requests.{fmt}: a new service request (form-encoded)."""
    try:
        form = await request.post()
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "the body must be form-encoded (application/x-www-form-urlencoded)") from None
    api_key = _header_key(request) or _field(form, "api_key") or request.query.get("api_key")
    user = await _staff(request, api_key)
    try:
        where: Location | None = _location(form)
    except Problem:
        where = None  # _case_in says what is wrong, after the service code
    resolved = await _place(request, where) if where is not None else None
    case_in = _case_in(request, form, resolved)

    ref = await run_storage(request.app[DB], store.file_request, case_in=case_in, actor=user.name)
    return render_list(fmt, "service_requests", "request",
                       [{"service_request_id": ref, "service_notice": "", "account_id": None}])


# --------------------------------------------------------------------------- reading


def _date(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name, "").strip()
    if not text:
        return None
    text = _SPACED_OFFSET.sub(r"\1+\2", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Problem(400, f"{name} must be an ISO 8601 date-time such as 2024-05-01T10:00:00+02:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=request.app[SETTINGS].zone)
    return moment


def _choices(request: web.Request, name: str, allowed: Sequence[str]) -> list[str]:
    values = [v.strip() for v in request.query.get(name, "").split(",") if v.strip()]
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise Problem(400, f"unknown {name} {unknown[0][:40]!r}: use {', '.join(allowed)}")
    return list(dict.fromkeys(values))


@dataclass(frozen=True)
class RequestQuery:
    refs: list[str] | None
    start: datetime
    end: datetime
    service_codes: list[str]
    statuses: list[str]


def _request_query(request: web.Request) -> RequestQuery:
    ids_text = request.query.get("service_request_id", "").strip()
    now = utcnow()
    if ids_text:
        ids = [part for part in (p.strip() for p in ids_text.split(",")) if part]
        if len(ids) > MAX_IDS:
            raise Problem(400, f"at most {MAX_IDS} service_request_id values at once")
        refs = [ref for ref in (normalise_ref(i) for i in ids) if ref]
        return RequestQuery(refs=list(dict.fromkeys(refs)), start=now, end=now, service_codes=[], statuses=[])
    start, end = _date(request, "start_date"), _date(request, "end_date")
    if start is None:
        end = end or now
        start = end - WINDOW
    elif end is None:
        end = start + WINDOW
    if end < start:
        raise Problem(400, "end_date is before start_date")
    if end - start > WINDOW:
        raise Problem(400, "start_date and end_date may not span more than 90 days")
    return RequestQuery(refs=None, start=start, end=end,
                        service_codes=_choices(request, "service_code", SERVICE_CODES),
                        statuses=_choices(request, "status", ("open", "closed")))


async def _find(request: web.Request, wanted: RequestQuery, staff: bool) -> list[tuple[Case, str | None]]:
    zone = request.app[SETTINGS].zone
    statuses: Sequence[str] = ()
    if wanted.refs is None and len(wanted.statuses) == 1:
        statuses = OPEN_STATUSES if wanted.statuses[0] == "open" else CLOSED_STATUSES
    found = await run_storage(
        request.app[DB], store.find_requests, services=SERVICE_CODES, limit=MAX_RESULTS, refs=wanted.refs,
        start=wanted.start, end=wanted.end, coarse_categories=SENSITIVE_CATEGORIES,
        # public reads: a sensitive case matches when any part of its day is in the window
        coarse_window=None if staff else public_day_window(wanted.start, wanted.end, zone),
        service_codes=wanted.service_codes, statuses=statuses, with_notes=staff,  # public reads never show notes
    )
    if staff:
        return found
    notes = {case.ref: note for case, note in found}
    return [(case, notes[case.ref]) for case in public_order([case for case, _ in found], zone)]


def _shown(request: web.Request, found: list[tuple[Case, str | None]], staff: bool) -> list[dict[str, Any]]:
    locale, catalogs, zone = _locale(request), _catalogs(request), request.app[SETTINGS].zone
    return [public_request(case, note, service_name=service_name(catalogs, case.category, locale), zone=zone,
                           staff=staff) for case, note in found]


@formatted
async def get_requests(request: web.Request, fmt: str) -> web.Response:
    """GET /requests.{fmt}: public service requests, newest first (at most 1,000)."""
    wanted = _request_query(request)
    staff = await _is_staff_reader(request)
    found = await _find(request, wanted, staff)
    return render_list(fmt, "service_requests", "request", _shown(request, found, staff))


@formatted
async def get_request(request: web.Request, fmt: str) -> web.Response:
    """GET /requests/{service_request_id}.{fmt}: one public service request, as a list."""
    ref = normalise_ref(request.match_info["service_request_id"])
    wanted = RequestQuery(refs=[ref] if ref else [], start=utcnow(), end=utcnow(), service_codes=[], statuses=[])
    staff = await _is_staff_reader(request)
    found = await _find(request, wanted, staff)
    if not found:
        raise Problem(404, "no such service request")
    return render_list(fmt, "service_requests", "request", _shown(request, found[:1], staff))


def add_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX + "/services.{fmt}", get_services)
    app.router.add_get(PREFIX + "/services/{service_code}.{fmt:[^/.]+}", get_service_definition)
    app.router.add_post(PREFIX + "/requests.{fmt}", post_request)
    app.router.add_get(PREFIX + "/requests.{fmt}", get_requests)
    app.router.add_get(PREFIX + "/requests/{service_request_id}.{fmt:[^/.]+}", get_request)
