"""The dashboard's pages: the queue, a case, the map and the stats."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy import Engine

from bot.api.cases import CasePatch, _load_detail
from bot.dashboard.auth import CASE_READERS, desk_route
from bot.dashboard.base import SIGNED_IN, error_page, render, see_other
from bot.dashboard.labels import (
    CATEGORY_CLASSES,
    CHANNEL_NAMES,
    CONTACT_NAMES,
    EVENT_NAMES,
    LOCATION_SOURCE_NAMES,
    PRIORITY_NAMES,
    STATUS_NAMES,
    age_text,
    case_row,
    category_label,
    chat_line,
    duration_text,
    language_name,
    when_text,
)
from bot.dashboard.queries import SafetyView, open_by_neighbourhood, open_cases, safety_view, stats_view
from bot.dashboard.svg import (
    LineSeries,
    MapPoint,
    Series,
    approximate_label,
    city_map,
    horizontal_bars,
    line_chart,
    load_base_map,
    scale_lines,
    shade_legend,
    stacked_bars,
)
from bot.keys import CATALOGS, DB, NOTIFIER, SETTINGS
from bot.open311 import NEIGHBOURHOODS
from storage import cases as case_store
from storage.db import session_scope
from storage.desk import (
    CHAT_KINDS,
    TRANSITIONS,
    CaseChange,
    IllegalTransition,
    add_chat_message,
    chat_messages,
    is_live,
    read_case_photo,
    set_live,
    update_case,
)
from storage.models import CATEGORIES, PRIORITIES, Case, utcnow

PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
STATS_PERIODS = (4, 12, 26, 52)
NOTIFIED = {
    "delivered": "The citizen was told.",
    "undelivered": "The citizen could not be reached now; the attempt is in the history.",
    "anonymous": "The citizen chose no contact, so they were not told.",
    "erased": "The citizen's data was erased, so they were not told.",
    "offline": "The citizen's channel is not running; they were not told.",
}


def _notified_code(outcome: str) -> str | None:
    if outcome == "delivered":
        return "delivered"
    if outcome.startswith("not delivered"):
        return "undelivered"
    if "no contact" in outcome:
        return "anonymous"
    if "erased" in outcome:
        return "erased"
    if "channel is not running" in outcome:
        return "offline"
    return None


# --------------------------------------------------------------------------- queue


@desk_route(*CASE_READERS)
async def queue_page(request: web.Request) -> web.Response:
    now = utcnow()  # before reading: the live stream catches up from here

    def read() -> list[Case]:
        with session_scope(request.app[DB]) as session:
            return open_cases(session)

    cases = await asyncio.to_thread(read)
    rows = [case_row(case, request.app[CATALOGS], now) for case in cases]
    return render(request, "queue.html", {
        "section": "queue", "rows": rows, "urgent": sum(1 for r in rows if r["priority"] == "urgent"),
        "handoffs": sum(1 for r in rows if r["handoff"]), "escalated": sum(1 for r in rows if r["escalated"]),
        "since": now.isoformat(), "now": now.isoformat(),
    })


# --------------------------------------------------------------------------- a case


@dataclass
class CaseForm:
    """What the update form sent, kept to fill the form again after an error."""

    status: str = ""
    duplicate_of: str = ""
    priority: str = ""
    assignee: str | None = None
    public_note: str = ""
    internal_note: str = ""

    @classmethod
    def from_post(cls, form: Any) -> CaseForm:
        def text(name: str) -> str:
            value = form.get(name, "")
            return value.strip() if isinstance(value, str) else ""

        assignee = form.get("assignee")
        return cls(status=text("status"), duplicate_of=text("duplicate_of"), priority=text("priority"),
                   assignee=assignee.strip() if isinstance(assignee, str) else None,
                   public_note=text("public_note"), internal_note=text("internal_note"))


class NothingToChange(Exception):
    pass


def _case_context(db: Engine, ref: str, reader: Any, settings: Any, catalogs: Any) -> dict[str, Any] | None:
    """Everything the case page shows; reading it is audited (and so is the contact) by the API's loader."""
    detail = _load_detail(db, ref, reader)
    if detail is None:
        return None
    zone = settings.zone
    with session_scope(db) as session:
        case = case_store.get_case_by_ref(session=session, ref=detail["ref"])
        assert case is not None
        original = session.get(Case, case.duplicate_of_id) if case.duplicate_of_id else None
        counts = {case.neighbourhood_code: 1} if case.neighbourhood_code else {}
        live = is_live(session=session, case=case)
        # the page's live stream (bot.dashboard.live) sends what comes after this moment
        chat_after = utcnow().isoformat()
        chat = [chat_line(e, zone) for e in chat_messages(session=session, case=case) if e.kind in CHAT_KINDS]
    now = utcnow()

    def when(value: str | None) -> str:
        return when_text(datetime.fromisoformat(value), zone) if value else "–"

    history = [{
        **event,
        "text": _event_text(event["kind"], event["text"]),
        "label": EVENT_NAMES.get(event["kind"], event["kind"].replace("_", " ").capitalize()),
        "when": when(event["at"]),
        "from_label": STATUS_NAMES.get(event["from_status"] or "", event["from_status"]),
        "to_label": STATUS_NAMES.get(event["to_status"] or "", event["to_status"]),
    } for event in detail["history"]]
    photos = [{"url": f"/desk/cases/{case.ref}/photos/{a['id']}", "size_kb": max(1, round(a["size"] / 1024)),
               "mime": a["mime_type"], "sha256": a["sha256"], "when": when(a["created_at"])}
              for a in detail["attachments"]]
    return {
        "case": case, "detail": detail, "history": history, "photos": photos,
        "duplicates": detail.get("duplicate_candidates", []), "chat": chat, "chat_after": chat_after, "live": live,
        "can_chat": case.reporter_id is not None
        and (case.contact_mode != "anonymous" or case.handoff_requested_at is not None),
        "category_label": category_label(catalogs, case.category),
        "status_label": STATUS_NAMES.get(case.status, case.status),
        "priority_label": PRIORITY_NAMES.get(case.priority, case.priority),
        "channel_label": CHANNEL_NAMES.get(case.channel, case.channel),
        "location_label": LOCATION_SOURCE_NAMES.get(case.location_source or "", "–"),
        "contact_label": CONTACT_NAMES.get(case.contact_mode, case.contact_mode),
        "language": language_name(case.locale),
        "age": age_text((now - case.created_at).total_seconds()),
        "transitions": [(s, STATUS_NAMES[s]) for s in STATUSES_IN_ORDER if s in TRANSITIONS.get(case.status, ())],
        "priorities": [(p, PRIORITY_NAMES[p]) for p in PRIORITIES],
        "original_ref": original.ref if original else None,
        "occurred_when": when_text(case.occurred_at, zone) if case.occurred_at else None,
        "times": [(label, when_text(getattr(case, field), zone)) for label, field in (
            ("Reported", "created_at"), ("Occurred", "occurred_at"), ("Last change", "updated_at"),
            ("Acknowledged", "acknowledged_at"), ("Resolved", "resolved_at"), ("Closed", "closed_at"),
            ("Citizen's data erased", "erased_at"), ("Asked for a person", "handoff_requested_at"),
        ) if getattr(case, field) is not None],
        "counts": counts,
    }


STATUSES_IN_ORDER = ("acknowledged", "in_progress", "resolved", "closed", "rejected", "duplicate")
_UPDATED = re.compile(r"priority=(?P<priority>[a-z_]+); assignee=(?P<assignee>.*)", re.DOTALL)


def _event_text(kind: str, text: str | None) -> str | None:
    """History text for people: storage writes "priority=high; assignee=-" for updates."""
    found = _UPDATED.fullmatch(text or "") if kind == "updated" else None
    if found is None:
        return text
    assignee = found["assignee"]
    return (f"Priority: {PRIORITY_NAMES.get(found['priority'], found['priority'])} · "
            f"Assigned to: {'nobody' if assignee == '-' else assignee}")


async def _render_case(request: web.Request, *, status: int = 200, error: str | None = None,
                       form: CaseForm | None = None) -> web.Response:
    settings, catalogs = request.app[SETTINGS], request.app[CATALOGS]
    reader = request[SIGNED_IN]
    context = await asyncio.to_thread(_case_context, request.app[DB], request.match_info["ref"], reader, settings,
                                      catalogs)
    if context is None:
        return error_page(request, 404, "No such case", "There is no case with this reference.")
    case = context["case"]
    location_map = None
    if case.latitude is not None and case.longitude is not None:
        base = await asyncio.to_thread(load_base_map, settings.neighbourhoods_geojson)
        location_map = city_map(base, context["counts"], [MapPoint(
            ref=case.ref, latitude=case.latitude, longitude=case.longitude, priority=case.priority,
            label=f"{case.ref}: {case.address or 'shared location'}", href=f"/desk/cases/{case.ref}",
            radius_m=case.location_radius)],
            label=f"Where case {case.ref} happened", highlight=case.neighbourhood_code,
            focus=(case.latitude, case.longitude), show_districts=False)
    notice = None
    if request.query.get("saved") == "1":
        notice = "Changes saved. " + NOTIFIED.get(request.query.get("told", ""), "")
    return render(request, "case.html", {
        **context, "section": "queue", "error": error, "notice": notice.strip() if notice else None,
        "form": form or CaseForm(), "location_map": location_map,
    }, status=status)


@desk_route(*CASE_READERS)
async def case_page(request: web.Request) -> web.Response:
    return await _render_case(request)


@desk_route(*CASE_READERS)
async def case_update(request: web.Request) -> web.StreamResponse:
    form = CaseForm.from_post(await request.post())
    raw = {"status": form.status or None, "duplicate_of": form.duplicate_of or None,
           "priority": form.priority or None, "assignee": form.assignee,
           "public_note": form.public_note or None, "internal_note": form.internal_note or None}
    try:
        patch = CasePatch.model_validate({k: v for k, v in raw.items() if v is not None})
    except ValidationError as problem:
        fields = ", ".join(sorted({str(e["loc"][0]).replace("_", " ") for e in problem.errors()}))
        return await _render_case(request, status=422, form=form,
                                  error=f"Please check these fields: {fields} (too long or not valid).")
    user = request[SIGNED_IN]

    def apply() -> tuple[Case, CaseChange] | None:
        with session_scope(request.app[DB]) as session:
            case = case_store.get_case_by_ref(session=session, ref=request.match_info["ref"])
            if case is None:
                return None
            same_assignee = patch.assignee is None or patch.assignee == (case.assignee or "")
            assignee = None if same_assignee else patch.assignee
            change = CaseChange(
                status=patch.status, duplicate_of=patch.duplicate_of if patch.status == "duplicate" else None,
                priority=patch.priority if patch.priority and patch.priority != case.priority else None,
                assignee=assignee, public_note=patch.public_note, internal_note=patch.internal_note,
            )
            if not any((change.status, change.priority, change.assignee is not None, change.public_note,
                        change.internal_note)):
                raise NothingToChange
            return update_case(session=session, case=case, change=change, actor=user.name), change

    try:
        done = await asyncio.to_thread(apply)
    except IllegalTransition as problem:
        return await _render_case(request, status=409, form=form, error=f"This change was not made: {problem}.")
    except NothingToChange:
        return await _render_case(request, status=422, form=form,
                                  error="Nothing to save: choose a new status, change a field or write a note.")
    if done is None:
        return error_page(request, 404, "No such case", "There is no case with this reference.")
    case, change = done
    outcome = await request.app[NOTIFIER].case_changed(case, new_status=change.status, public_note=change.public_note)
    told = _notified_code(outcome)
    return see_other(f"/desk/cases/{case.ref}?saved=1" + (f"&told={told}" if told else ""))


@desk_route(*CASE_READERS)
async def case_chat(request: web.Request) -> web.StreamResponse:
    """The dispatcher writes to the citizen; the chat becomes live until handed back."""
    text = str((await request.post()).get("text") or "").strip()[:4000]
    ref = request.match_info["ref"]
    if not text:
        return await _render_case(request, status=422, error="Write a message before sending it.")
    user = request[SIGNED_IN]

    def open_chat() -> Case | None:
        with session_scope(request.app[DB]) as session:
            case = case_store.get_case_by_ref(session=session, ref=ref)
            if case is None or case.reporter_id is None:
                return None
            if case.contact_mode == "anonymous" and case.handoff_requested_at is None:
                return None
            set_live(session=session, case=case, live=True, actor=user.name)
            add_chat_message(session=session, case=case, text=text, actor=user.name, from_citizen=False)
            return case

    case = await asyncio.to_thread(open_chat)
    if case is None:
        return await _render_case(request, status=409, error="This citizen cannot be contacted.")
    await request.app[NOTIFIER].chat(case, text)
    return see_other(f"/desk/cases/{case.ref}#chat")


@desk_route(*CASE_READERS)
async def case_chat_close(request: web.Request) -> web.StreamResponse:
    """Hand the conversation back to the assistant and tell the citizen."""
    user = request[SIGNED_IN]

    def close() -> tuple[Case, bool] | None:
        with session_scope(request.app[DB]) as session:
            case = case_store.get_case_by_ref(session=session, ref=request.match_info["ref"])
            return None if case is None else (case, set_live(session=session, case=case, live=False, actor=user.name))

    found = await asyncio.to_thread(close)
    if found is None:
        return error_page(request, 404, "No such case", "There is no case with this reference.")
    case, changed = found
    if changed:
        await request.app[NOTIFIER].chat(case, None)
    return see_other(f"/desk/cases/{case.ref}#chat")


@desk_route(*CASE_READERS)
async def case_photo(request: web.Request) -> web.StreamResponse:
    """A photo of a case, only for signed-in dispatchers; every view is in the audit log."""
    try:
        attachment_id = uuid.UUID(request.match_info["attachment_id"])
    except ValueError:
        return error_page(request, 404, "No such photo", "This photo does not exist.")
    actor = request[SIGNED_IN].name

    def read() -> tuple[str, bytes] | None:
        with session_scope(request.app[DB]) as session:
            return read_case_photo(session=session, ref=request.match_info["ref"], attachment_id=attachment_id,
                                   actor=actor, via="desk")

    found = await asyncio.to_thread(read)
    if found is None:
        return error_page(request, 404, "No such photo", "This photo does not exist.")
    mime, data = found
    return web.Response(body=data, content_type=mime if mime in PHOTO_TYPES else "application/octet-stream", headers={
        "Content-Disposition": f'inline; filename="{attachment_id}"', "Cache-Control": "private, no-store",
        "Content-Security-Policy": "default-src 'none'; img-src 'self'; sandbox",
    })


# --------------------------------------------------------------------------- map


@desk_route(*CASE_READERS)
async def map_page(request: web.Request) -> web.Response:
    settings, catalogs = request.app[SETTINGS], request.app[CATALOGS]

    def read() -> tuple[list[Case], dict[str, int]]:
        with session_scope(request.app[DB]) as session:
            return open_cases(session), open_by_neighbourhood(session)

    (cases, counts), base = await asyncio.gather(
        asyncio.to_thread(read), asyncio.to_thread(load_base_map, settings.neighbourhoods_geojson))
    points = [MapPoint(
        ref=c.ref, latitude=c.latitude, longitude=c.longitude, priority=c.priority, href=f"/desk/cases/{c.ref}",
        label=" · ".join(part for part in (
            c.ref, category_label(catalogs, c.category), PRIORITY_NAMES.get(c.priority, c.priority),
            STATUS_NAMES.get(c.status, c.status), c.address or c.neighbourhood_name or "",
            approximate_label(c.location_radius)) if part),
        radius_m=c.location_radius,
    ) for c in cases if c.latitude is not None and c.longitude is not None]
    names = {area.code: (area.name, area.district) for area in base.areas}
    ranking = sorted(((n, *names.get(code, (code, ""))) for code, n in counts.items()), key=lambda r: (-r[0], r[1]))
    svg = city_map(base, counts, points, label="Map of the neighbourhoods shaded by open cases, with the cases")
    return render(request, "map.html", {
        "section": "map", "svg": svg, "legend": shade_legend(counts), "ranking": ranking[:12],
        "open_total": len(cases), "located": len(points), "unlocated": len(cases) - len(points),
        "urgent": sum(1 for c in cases if c.priority == "urgent"),
    })


# --------------------------------------------------------------------------- stats


@desk_route(*CASE_READERS)
async def stats_page(request: web.Request) -> web.Response:
    settings, catalogs = request.app[SETTINGS], request.app[CATALOGS]
    try:
        weeks = int(request.query.get("weeks", "12"))
    except ValueError:
        weeks = 12
    if weeks not in STATS_PERIODS:
        weeks = 12
    now = utcnow()

    names = {item.code: item.name for item in request.app[NEIGHBOURHOODS].all()}

    def compute() -> tuple[Any, SafetyView]:
        with session_scope(request.app[DB]) as session:
            view = stats_view(session, zone=settings.zone, weeks=weeks, now=now)
            return view, safety_view(session, zone=settings.zone, weeks=view.weeks, since=view.since, names=names)

    view, safety = await asyncio.to_thread(compute)
    columns = [week.short for week in view.weeks]
    titles = [week.title for week in view.weeks]
    used = [c for c in CATEGORIES if any(view.per_week_category.get((w.key, c)) for w in view.weeks)]
    series = [Series(name=category_label(catalogs, c), css_class=CATEGORY_CLASSES[c],
                     values=[view.per_week_category.get((w.key, c), 0) for w in view.weeks]) for c in used]
    weekly = stacked_bars(columns, series, column_titles=titles,
                          label=f"Reports per week and category, last {weeks} weeks")
    places = horizontal_bars(view.per_neighbourhood, label="Reports per neighbourhood, top 15")
    medians = view.ack_median_per_week
    acknowledge = line_chart(columns, medians, unit=" h", column_titles=titles,
                             value_text=[duration_text(v) for v in medians],
                             label="Median time to acknowledge a report, per week of reporting")
    resolve = line_chart(columns, view.resolve_median_per_week, unit=" h", column_titles=titles,
                         value_text=[duration_text(v) for v in view.resolve_median_per_week],
                         label="Median time to resolve a report, per week of reporting")
    table = [(w, [view.per_week_category.get((w.key, c), 0) for c in used],
              sum(view.per_week_category.get((w.key, c), 0) for c in used), duration_text(m), duration_text(r))
             for w, m, r in zip(view.weeks, medians, view.resolve_median_per_week, strict=True)]
    lines = [LineSeries(name="All neighbourhoods", css_class="all",
                        values=[c[0] if c else None for c in safety.overall],
                        counts=[c[1] if c else 0 for c in safety.overall])]
    lines += [LineSeries(name=row.name, css_class=f"cat-{index}", values=[c[0] if c else None for c in row.cells],
                         counts=[c[1] if c else 0 for c in row.cells]) for index, row in enumerate(safety.rows[:5])]
    summary = safety.summary
    return render(request, "stats.html", {
        "safety": safety, "safety_lines": lines,
        "safety_chart": scale_lines(columns, lines, column_titles=titles,
                                    label="Perceived safety per week (1 = very unsafe, 5 = very safe): all "
                                          "neighbourhoods and the five with the most answers"),
        "survey_kpis": [
            ("kpi-surveys", str(summary.answered), "surveys answered"),
            ("kpi-solved", f"{summary.solved_rate:.0%}" if summary.solved_rate is not None else "–",
             f"say it was solved ({summary.solved_answers} answers)"),
            ("kpi-satisfaction", f"{summary.mean_satisfaction:.1f} / 5" if summary.mean_satisfaction is not None
             else "–", f"satisfaction ({summary.satisfaction_answers} answers)"),
            ("kpi-safety", f"{summary.mean_safety:.1f} / 5" if summary.mean_safety is not None else "–",
             f"feel safe in their neighbourhood ({summary.safety_answers} answers)"),
        ],
        "section": "stats", "weeks": weeks, "periods": STATS_PERIODS, "view": view, "weekly": weekly,
        "places": places, "acknowledge": acknowledge, "resolve": resolve, "legend": series, "table": table,
        "any_ack": any(m is not None for m in medians),
        "any_resolved": any(m is not None for m in view.resolve_median_per_week),
        "median_ack": duration_text(view.median_hours_to_acknowledge),
        "median_resolve": duration_text(view.median_hours_to_resolve),
        "since": when_text(view.since, settings.zone).rsplit(",", 1)[0],
    })
