"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2) under /open311/v2.

Every resource answers in JSON or XML (the spec's required format) by its extension,
``/services.json`` or ``/services.xml``; any other extension is a 404. Errors are the spec's
list in the same format (``[{"code": 400, "description": "..."}]`` or
``<errors><error><code>400</code><description>...</description></error></errors>``) with the
matching HTTP status. XML is always built with ``xml.etree.ElementTree``, never by pasting
strings, and characters XML 1.0 cannot carry are dropped.

Services: one per Barri category except "other" (nine), all of type "realtime", group
"security", without metadata (so a service definition has no attributes). ``?lang=es|ca``
translates the service names through the bot's catalogs; descriptions stay English.

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

Reading requests is public (no api_key), so it never shows who reported: no contact, no
sender, no channel, no exact address (``address`` is the neighbourhood's name) and
coordinates rounded to 3 decimals (about 100 m). The citizen's own words (``description``)
are NOT public: citizens are told their report is seen by the city's dispatchers, and free
text may name people or homes. Public reads give the service's name as the description; a
read with the ``api_key`` of a dispatcher or admin gets the citizen's text (erased cases
never show it).
``status_notes`` is the latest public note of the dispatchers only for staff reads: a note is
written to the citizen (it may name them or their door), so public reads give "". Assignees,
internal notes, priority and history are never shown. Cases of the category "other" have no
service and are not listed.

Sensitive categories (``SENSITIVE_CATEGORIES``: harassment and assault, where the time and
place identify a victim; drugs, where they identify the neighbour who watched the dealing)
are coarsened in public reads: both datetimes are the day (midnight in the deployment's
zone), there is no lat/long, only the neighbourhood. So that the filters cannot give back
what the answer hides, a sensitive case matches a public ``start_date``/``end_date`` window
when any part of its day does, and public listings are ordered by day and reference, never
by the exact time.

``GET /requests`` follows the spec's defaults: with no dates, the last 90 days; with one date,
90 days from ``start_date`` or up to ``end_date``; a range may not span more than 90 days
(400). At most 1,000 requests, newest first. ``service_request_id`` (comma separated
references) overrides every other filter, as the spec says. ``service_code`` and ``status``
(open|closed) may be comma separated too. Dates are ISO 8601 / W3C; a date without a zone is
in the deployment's time zone, and a "+" turned into a space by an unencoded query string is
read back as "+". Open statuses are new, acknowledged and in_progress; resolved, closed,
rejected and duplicate are closed. Unknown query parameters (``jurisdiction_id``...) are
ignored.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy import and_, or_
from sqlmodel import col, select

from bot.keys import CATALOGS, DB, SETTINGS
from common.geo import Neighbourhoods
from common.i18n import negotiate_locale
from common.places import RADIUS_SHARED, SHARED_LOCATION, Place, gazetteer_for
from common.responses import CATEGORY_LABELS
from storage import audit
from storage import cases as case_store
from storage.db import session_scope
from storage.errors import DatabaseUnavailable
from storage.models import (
    ADDRESS_MAX,
    CATEGORIES,
    DESCRIPTION_MAX,
    EVENT_NOTE_PUBLIC,
    Case,
    CaseCreate,
    CaseEvent,
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
FORMATS = ("json", "xml")
CHANNEL: Channel = "open311"
WRITERS = ("dispatcher", "admin")
GROUP = "security"
SERVICE_CODES: tuple[str, ...] = tuple(code for code in CATEGORIES if code != "other")
OPEN_STATUSES = ("new", "acknowledged", "in_progress")
CLOSED_STATUSES = ("resolved", "closed", "rejected", "duplicate")
WINDOW = timedelta(days=90)
MAX_RESULTS = 1000
MAX_IDS = 1000
PUBLIC_DECIMALS = 3  # about 100 m
# public reads show these only by day and neighbourhood (see the module docstring)
SENSITIVE_CATEGORIES = ("harassment", "assault", "drugs")

# Plain English: not marked for translation, so the chat catalogs stay complete.
DESCRIPTIONS = {
    "theft": "Theft, pickpocketing or attempted theft of belongings, bicycles or from vehicles.",
    "vandalism": "Damage to street furniture, buildings or vehicles, graffiti on property.",
    "noise": "Noise that disturbs the neighbourhood: parties, shouting, music at night.",
    "harassment": "Harassment, intimidation or threats in the street or a public place.",
    "assault": "An assault or a fight. If someone is in danger right now, call 112.",
    "drugs": "Drug dealing or drug use in the street or a public place.",
    "suspicious_activity": "People or activity that look suspicious in the neighbourhood.",
    "traffic": "Dangerous driving, speeding or vehicles endangering pedestrians.",
    "incivility": "Antisocial behaviour: urinating in the street, littering, drinking in public.",
}
KEYWORDS = {
    "theft": "theft, robbery, pickpocket, stolen",
    "vandalism": "vandalism, damage, graffiti, broken",
    "noise": "noise, party, music, shouting",
    "harassment": "harassment, intimidation, threats",
    "assault": "assault, fight, violence",
    "drugs": "drugs, dealing",
    "suspicious_activity": "suspicious, activity, strangers",
    "traffic": "traffic, speeding, dangerous driving",
    "incivility": "incivility, antisocial, littering, urinating",
}

NEIGHBOURHOODS = web.AppKey("open311_neighbourhoods", Neighbourhoods)

_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SPACED_OFFSET = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")

Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


class Problem(Exception):
    """An answer in the spec's error format."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


# --------------------------------------------------------------------------- rendering


def _clean(text: str) -> str:
    """The text without the characters XML 1.0 cannot hold (control characters, lone surrogates)."""
    return _XML_ILLEGAL.sub("", text)


def _xml_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return _clean(str(value))


def _add_xml(parent: ET.Element, name: str, value: Any) -> None:
    element = ET.SubElement(parent, name)
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _add_xml(element, key, inner)
    elif isinstance(value, list):
        for item in value:
            _add_xml(element, name.removesuffix("s") or "item", item)
    else:
        element.text = _xml_text(value)


def _xml_response(root: ET.Element, status: int = 200) -> web.Response:
    body = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    return web.Response(body=body, status=status, content_type="text/xml", charset="utf-8")


def _json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False), status=status,
                        content_type="application/json", charset="utf-8")


def render_list(fmt: str, root: str, item: str, items: Sequence[Mapping[str, Any]], status: int = 200) -> web.Response:
    """A list of objects: a JSON array, or ``<root><item>...</item>...</root>``."""
    if fmt == "json":
        return _json_response(list(items), status)
    element = ET.Element(root)
    for entry in items:
        _add_xml(element, item, entry)
    return _xml_response(element, status)


def render_object(fmt: str, root: str, data: Mapping[str, Any]) -> web.Response:
    if fmt == "json":
        return _json_response(dict(data))
    element = ET.Element(root)
    for key, value in data.items():
        _add_xml(element, key, value)
    return _xml_response(element)


def render_error(fmt: str, status: int, description: str) -> web.Response:
    return render_list(fmt if fmt in FORMATS else "json", "errors", "error",
                       [{"code": status, "description": description}], status)


def _formatted(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Check the extension, pass the format on, and answer problems in that format."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        fmt = request.match_info.get("fmt", "")
        if fmt not in FORMATS:
            return render_error("json", 404, f"unknown format {fmt[:20]!r}: use .json or .xml")
        try:
            return await handler(request, fmt)
        except Problem as problem:
            return render_error(fmt, problem.status, problem.description)
        except DatabaseUnavailable:
            return render_error(fmt, 503, "the service is temporarily unavailable")

    wrapped.__name__ = f"open311_{handler.__name__}"
    wrapped.__doc__ = handler.__doc__
    return wrapped


# --------------------------------------------------------------------------- services


def _service_name(request: web.Request, code: str, locale: str) -> str:
    label = CATEGORY_LABELS[code]
    if locale == "en" or CATALOGS not in request.app:
        return label
    return request.app[CATALOGS].gettext(label, locale)


def _locale(request: web.Request) -> str:
    return negotiate_locale(request.query.get("lang"), "en")


def service(request: web.Request, code: str, locale: str) -> dict[str, Any]:
    return {
        "service_code": code,
        "service_name": _service_name(request, code, locale),
        "description": DESCRIPTIONS[code],
        "metadata": False,
        "type": "realtime",
        "keywords": KEYWORDS[code],
        "group": GROUP,
    }


@_formatted
async def get_services(request: web.Request, fmt: str) -> web.Response:
    """GET /services.{fmt}: every service."""
    locale = _locale(request)
    return render_list(fmt, "services", "service", [service(request, code, locale) for code in SERVICE_CODES])


@_formatted
async def get_service_definition(request: web.Request, fmt: str) -> web.Response:
    """GET /services/{service_code}.{fmt}: a service's attributes (none: metadata is false)."""
    code = request.match_info["service_code"]
    if code not in SERVICE_CODES:
        raise Problem(404, f"unknown service_code {code[:40]!r}")
    return render_object(fmt, "service_definition", {"service_code": code, "attributes": []})


# --------------------------------------------------------------------------- posting


def _field(form: Mapping[str, Any], name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str):
        return None
    value = _clean(value).strip()
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

    def lookup() -> StaffUser | None:
        with session_scope(request.app[DB]) as session:
            return user_for_token(session=session, token=api_key)

    user = await asyncio.to_thread(lookup)
    if user is None:
        raise Problem(401, "invalid api_key")
    if user.role not in WRITERS:
        raise Problem(403, f"the api_key of a {user.role} user may not post service requests")
    return user



def _case_in(request: web.Request, form: Mapping[str, Any], resolved: Place | None = None) -> CaseCreate:
    code = _field(form, "service_code")
    if code is None:
        raise Problem(400, "service_code is required")
    if code not in SERVICE_CODES:
        raise Problem(400, f"unknown service_code {code[:40]!r}")
    where = _location(form)
    raw_description = form.get("description")
    description = _clean(raw_description).strip() if isinstance(raw_description, str) else ""
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


@_formatted
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

    def store() -> str:
        with session_scope(request.app[DB]) as session:
            case = case_store.create_case(session=session, case_in=case_in)
            audit.record_audit(session=session, actor=user.name, action="open311.request_created",
                                    subject_type="case", subject_id=str(case.id),
                                    detail={"ref": case.ref, "service_code": case.category})
            return case.ref

    ref = await asyncio.to_thread(store)
    return render_list(fmt, "service_requests", "request",
                       [{"service_request_id": ref, "service_notice": "", "account_id": None}])


# --------------------------------------------------------------------------- reading


def public_status(status: str) -> str:
    return "open" if status in OPEN_STATUSES else "closed"


def _w3c(moment: datetime | None, request: web.Request) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(request.app[SETTINGS].zone).isoformat(timespec="seconds")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, PUBLIC_DECIMALS)


def _day_start(moment: datetime, request: web.Request) -> datetime:
    """Midnight of the moment's day in the deployment's zone."""
    local = moment.astimezone(request.app[SETTINGS].zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def public_request(
    request: web.Request, case: Case, note: str | None, locale: str, staff: bool = False
) -> dict[str, Any]:
    """What anybody may know of a case: nothing about who reported it, no dispatcher's note,
    and sensitive cases only by day and neighbourhood (see the module docstring); staff also
    get the citizen's description and the note."""
    service_name = _service_name(request, case.category, locale)
    description = case.description if staff and case.erased_at is None else service_name
    coarse = not staff and case.category in SENSITIVE_CATEGORIES
    created = _day_start(case.created_at, request) if coarse else case.created_at
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
        "requested_datetime": _w3c(created, request),
        "updated_datetime": _w3c(updated, request),
        "expected_datetime": None,
        "address": case.neighbourhood_name,
        "address_id": None,
        "zipcode": None,
        "lat": None if coarse else _rounded(case.latitude),
        "long": None if coarse else _rounded(case.longitude),
        "media_url": None,
    }


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


def _find(request: web.Request, wanted: RequestQuery, staff: bool) -> list[tuple[Case, str | None]]:
    statement = select(Case).where(col(Case.category).in_(SERVICE_CODES))
    if wanted.refs is not None:
        if not wanted.refs:
            return []
        statement = statement.where(col(Case.ref).in_(wanted.refs))
    elif staff:
        statement = statement.where(col(Case.created_at) >= wanted.start, col(Case.created_at) <= wanted.end)
    else:  # a sensitive case matches when any part of its day is in the window
        first_day = _day_start(wanted.start, request)
        after_last_day = _day_start(wanted.end, request) + timedelta(days=1)
        exact = and_(col(Case.category).not_in(SENSITIVE_CATEGORIES),
                     col(Case.created_at) >= wanted.start, col(Case.created_at) <= wanted.end)
        by_day = and_(col(Case.category).in_(SENSITIVE_CATEGORIES),
                      col(Case.created_at) >= first_day, col(Case.created_at) < after_last_day)
        statement = statement.where(or_(exact, by_day))
    if wanted.refs is None:
        if wanted.service_codes:
            statement = statement.where(col(Case.category).in_(wanted.service_codes))
        if wanted.statuses and len(wanted.statuses) == 1:
            statuses = OPEN_STATUSES if wanted.statuses[0] == "open" else CLOSED_STATUSES
            statement = statement.where(col(Case.status).in_(statuses))
    statement = statement.order_by(col(Case.created_at).desc(), col(Case.ref)).limit(MAX_RESULTS)
    notes: dict[uuid.UUID, str] = {}
    with session_scope(request.app[DB]) as session:
        cases = list(session.exec(statement).all())
        if cases and staff:  # public reads never show the notes
            events = session.exec(
                select(CaseEvent)
                .where(col(CaseEvent.case_id).in_([c.id for c in cases]),
                       CaseEvent.kind == EVENT_NOTE_PUBLIC, col(CaseEvent.text).is_not(None))
                .order_by(col(CaseEvent.at), col(CaseEvent.id))
            ).all()
            for event in events:  # oldest first: the latest note wins
                notes[event.case_id] = event.text or ""
    if not staff:  # by day, then reference: the order of a public listing tells no time
        cases.sort(key=lambda case: (-_day_start(case.created_at, request).timestamp(), case.ref))
    return [(case, notes.get(case.id)) for case in cases]


@_formatted
async def get_requests(request: web.Request, fmt: str) -> web.Response:
    """GET /requests.{fmt}: public service requests, newest first (at most 1,000)."""
    wanted = _request_query(request)
    locale = _locale(request)
    staff = await _is_staff_reader(request)
    found = await asyncio.to_thread(_find, request, wanted, staff)
    return render_list(fmt, "service_requests", "request",
                       [public_request(request, case, note, locale, staff) for case, note in found])


@_formatted
async def get_request(request: web.Request, fmt: str) -> web.Response:
    """GET /requests/{service_request_id}.{fmt}: one public service request, as a list."""
    ref = normalise_ref(request.match_info["service_request_id"])
    wanted = RequestQuery(refs=[ref] if ref else [], start=utcnow(), end=utcnow(), service_codes=[], statuses=[])
    staff = await _is_staff_reader(request)
    found = await asyncio.to_thread(_find, request, wanted, staff)
    if not found:
        raise Problem(404, "no such service request")
    case, note = found[0]
    return render_list(fmt, "service_requests", "request",
                       [public_request(request, case, note, _locale(request), staff)])


async def _is_staff_reader(request: web.Request) -> bool:
    """A read with a dispatcher's or admin's api_key (a wrong key is refused, not ignored)."""
    api_key = _header_key(request) or request.query.get("api_key")
    if not api_key:
        return False
    await _staff(request, api_key)
    return True


# --------------------------------------------------------------------------- wiring


async def _load_neighbourhoods(app: web.Application) -> None:
    app[NEIGHBOURHOODS] = await asyncio.to_thread(
        Neighbourhoods.from_geojson, app[SETTINGS].neighbourhoods_geojson
    )


def add_routes(app: web.Application) -> None:
    app.on_startup.append(_load_neighbourhoods)
    app.router.add_get(PREFIX + "/services.{fmt}", get_services)
    app.router.add_get(PREFIX + "/services/{service_code}.{fmt:[^/.]+}", get_service_definition)
    app.router.add_post(PREFIX + "/requests.{fmt}", post_request)
    app.router.add_get(PREFIX + "/requests.{fmt}", get_requests)
    app.router.add_get(PREFIX + "/requests/{service_request_id}.{fmt:[^/.]+}", get_request)
