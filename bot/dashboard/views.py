"""The dashboard's pages: the queue, a case, the map and the stats."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy import Engine

from bot.api.cases import CasePatch, case_detail
from bot.dashboard.auth import CASE_READERS, desk_route, safe_next
from bot.dashboard.base import SIGNED_IN, desk_text, error_page, render, see_other
from bot.dashboard.labels import (
    CATEGORY_CLASSES,
    CHANNEL_NAMES,
    CONTACT_NAMES,
    EVENT_NAMES,
    LOCATION_SOURCE_NAMES,
    NOT_LOCATED,
    DeskText,
    case_row,
    chat_line,
)
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
from bot.keys import DB, NEIGHBOURHOODS, NOTIFIER, SETTINGS
from common.i18n import N_
from common.settings import SUPPORTED_LOCALES
from storage import users
from storage.dashboard import open_by_neighbourhood, open_cases, safety_view, stats_view
from storage.db import run_storage
from storage.desk import (
    CHAT_KINDS,
    TRANSITIONS,
    CaseChange,
    ChatRefused,
    IllegalTransition,
    conversation_of,
    end_live_chat,
    original_case,
    read_case,
    read_case_photo,
    start_live_chat,
    update_case_by_ref,
)
from storage.models import CATEGORIES, PRIORITIES, Case, utcnow

PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
STATS_PERIODS = (4, 12, 26, 52)
NOTIFIED = {
    "delivered": N_("The citizen was told."),
    "undelivered": N_("The citizen could not be reached now; the attempt is in the history."),
    "anonymous": N_("The citizen chose no contact, so they were not told."),
    "erased": N_("The citizen's data was erased, so they were not told."),
    "offline": N_("The citizen's channel is not running; they were not told."),
}
NO_CASE = (N_("No such case"), N_("There is no case with this reference."))


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


# --------------------------------------------------------------------------- the desk's language


@desk_route()
async def set_language(request: web.Request) -> web.StreamResponse:
    """The signed-in user picks the language of their desk (kept on their account)."""
    posted = await request.post()
    locale = str(posted.get("locale", ""))
    if locale not in SUPPORTED_LOCALES:
        return error_page(request, 422, N_("Unknown language"), N_("Choose English, Spanish or Catalan."))
    name = request[SIGNED_IN].name

    await run_storage(request.app[DB], users.set_locale, name=name, locale=locale, actor=name)
    back = urlsplit(request.headers.get("Referer", ""))  # the page it was changed on
    return see_other(safe_next(back.path + (f"?{back.query}" if back.query else "")))


# --------------------------------------------------------------------------- queue


@desk_route(*CASE_READERS)
async def queue_page(request: web.Request) -> web.Response:
    now = utcnow()  # before reading: the live stream catches up from here

    cases = await run_storage(request.app[DB], open_cases)
    t = desk_text(request)
    rows = [case_row(case, t, now) for case in cases]
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


async def _case_context(db: Engine, ref: str, reader: str, t: DeskText) -> dict[str, Any] | None:
    """Everything the case page shows; reading it is audited (and so is the contact), as through the API."""
    record = await run_storage(db, read_case, ref=ref, reader=reader)
    if record is None:
        return None
    detail = case_detail(record)
    case = record.case
    original = await run_storage(db, original_case, case=case)
    counts = {case.neighbourhood_code: 1} if case.neighbourhood_code else {}
    # the page's live stream (bot.dashboard.live) sends what comes after this moment
    chat_after = utcnow().isoformat()
    conversation = await run_storage(db, conversation_of, case=case)
    live = conversation.live
    chat = [chat_line(e, t) for e in conversation.messages if e.kind in CHAT_KINDS]
    now = utcnow()

    def when(value: str | None) -> str:
        return t.when(datetime.fromisoformat(value)) if value else "–"

    history = [{
        **event,
        "text": _event_text(event["kind"], event["text"], t),
        "label": t(EVENT_NAMES[event["kind"]]) if event["kind"] in EVENT_NAMES
        else event["kind"].replace("_", " ").capitalize(),
        "when": when(event["at"]),
        "from_label": t.status(event["from_status"]),
        "to_label": t.status(event["to_status"]),
    } for event in detail["history"]]
    photos = [{"url": f"/desk/cases/{case.ref}/photos/{a['id']}",
               "size": t.gettext("{size} KB", size=t.number(max(1, round(a["size"] / 1024)))),
               "mime": a["mime_type"], "sha256": a["sha256"], "when": when(a["created_at"])}
              for a in detail["attachments"]]
    return {
        "case": case, "detail": detail, "history": history, "photos": photos,
        "duplicates": detail.get("duplicate_candidates", []), "chat": chat, "chat_after": chat_after, "live": live,
        "can_chat": case.reporter_id is not None
        and (case.contact_mode != "anonymous" or case.handoff_requested_at is not None),
        "category_label": t.category(case.category),
        "status_label": t.status(case.status),
        "priority_label": t.priority(case.priority),
        "channel_label": t.named(CHANNEL_NAMES, case.channel),
        "location_label": t.named(LOCATION_SOURCE_NAMES, case.location_source) or "–",
        "contact_label": t.named(CONTACT_NAMES, case.contact_mode),
        "language": t.language(case.locale),
        "age_html": Markup('<time class="age" datetime="{}">{}</time>').format(
            case.created_at.isoformat(), t.age((now - case.created_at).total_seconds())),
        "transitions": [(s, t.status(s)) for s in STATUSES_IN_ORDER if s in TRANSITIONS.get(case.status, ())],
        "priorities": [(p, t.priority(p)) for p in PRIORITIES],
        "original_ref": original.ref if original else None,
        "occurred_when": t.when(case.occurred_at) if case.occurred_at else None,
        "times": [(t(label), t.when(getattr(case, field))) for label, field in KEY_TIMES
                  if getattr(case, field) is not None],
        "counts": counts,
    }


KEY_TIMES = (
    (N_("Reported"), "created_at"), (N_("Occurred"), "occurred_at"), (N_("Last change"), "updated_at"),
    (N_("Acknowledged"), "acknowledged_at"), (N_("Resolved"), "resolved_at"), (N_("Closed"), "closed_at"),
    (N_("Citizen's data erased"), "erased_at"), (N_("Asked for a person"), "handoff_requested_at"),
)
FIELD_NAMES = {
    "status": N_("status"), "duplicate_of": N_("duplicate of"), "priority": N_("priority"),
    "assignee": N_("assigned to"), "public_note": N_("public note"), "internal_note": N_("internal note"),
}
# What storage.desk.IllegalTransition says, for the desk to say it in the reader's language.
ILLEGAL = (
    N_("unknown status {status}"), N_("the case is already {current}"),
    N_("a {current} case cannot become {wanted} (allowed: none: it is final)"),
    N_("a {current} case cannot become {wanted} (allowed: {allowed})"), N_("unknown priority {priority}"),
    N_("a duplicate needs duplicate_of: the reference of the original case"), N_("there is no case {ref}"),
    N_("a case cannot be a duplicate of itself"),
)
NO_PHOTO = (N_("No such photo"), N_("This photo does not exist."))


def _illegal(problem: IllegalTransition, t: DeskText) -> str:
    """Why a change was refused, in the reader's language (status codes by their names)."""
    def named(code: str) -> str:  # inside a sentence: "a resolved case cannot become rejected"
        return t.status(code).lower()

    values = {key: named(value) if key in ("current", "wanted") else value for key, value in problem.values.items()}
    if "allowed" in values:
        values["allowed"] = ", ".join(named(code) for code in problem.values["allowed"].split(", "))
    reason = t(problem.template, **values) if problem.template in ILLEGAL else str(problem)
    return t.gettext("This change was not made: {reason}.", reason=reason)


STATUSES_IN_ORDER = ("acknowledged", "in_progress", "resolved", "closed", "rejected", "duplicate")
_UPDATED = re.compile(r"priority=(?P<priority>[a-z_]+); assignee=(?P<assignee>.*)", re.DOTALL)


def _event_text(kind: str, text: str | None, t: DeskText) -> str | None:
    """History text for people: storage writes "priority=high; assignee=-" for updates."""
    found = _UPDATED.fullmatch(text or "") if kind == "updated" else None
    if found is None:
        return text
    assignee = found["assignee"]
    return t.gettext("Priority: {priority} · Assigned to: {assignee}", priority=t.priority(found["priority"]),
             assignee=t.gettext("nobody") if assignee == "-" else assignee)


async def _render_case(request: web.Request, *, status: int = 200, error: str | None = None,
                       form: CaseForm | None = None) -> web.Response:
    settings, t = request.app[SETTINGS], desk_text(request)
    reader = request[SIGNED_IN]
    context = await _case_context(request.app[DB], request.match_info["ref"], reader.name, t)
    if context is None:
        return error_page(request, 404, *NO_CASE)
    case = context["case"]
    location_map = None
    if case.latitude is not None and case.longitude is not None:
        base = await asyncio.to_thread(load_base_map, settings.neighbourhoods_geojson)
        location_map = city_map(base, context["counts"], [MapPoint(
            ref=case.ref, latitude=case.latitude, longitude=case.longitude, priority=case.priority,
            label=f"{case.ref}: {case.address or t.gettext('shared location')}", href=f"/desk/cases/{case.ref}",
            radius_m=case.location_radius)],
            label=t.gettext("Where case {ref} happened", ref=case.ref), highlight=case.neighbourhood_code,
            focus=(case.latitude, case.longitude), show_districts=False, open_cases=_open_cases(t))
    notice = None
    if request.query.get("saved") == "1":
        told = NOTIFIED.get(request.query.get("told", ""))
        notice = t.gettext("Changes saved.") + (" " + t(told) if told else "")
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
        t = desk_text(request)
        fields = ", ".join(sorted({t(FIELD_NAMES.get(str(e["loc"][0]), str(e["loc"][0]))) for e in problem.errors()}))
        return await _render_case(request, status=422, form=form,
                                  error=t.gettext("Please check these fields: {fields} (too long or not valid).",
                                          fields=fields))
    user = request[SIGNED_IN]

    def change_of(case: Case) -> CaseChange:
        """What the form changes: fields sent as they were are not changes."""
        same_assignee = patch.assignee is None or patch.assignee == (case.assignee or "")
        change = CaseChange(
            status=patch.status, duplicate_of=patch.duplicate_of if patch.status == "duplicate" else None,
            priority=patch.priority if patch.priority and patch.priority != case.priority else None,
            assignee=None if same_assignee else patch.assignee, public_note=patch.public_note,
            internal_note=patch.internal_note,
        )
        if not any((change.status, change.priority, change.assignee is not None, change.public_note,
                    change.internal_note)):
            raise NothingToChange
        return change

    try:
        done = await run_storage(request.app[DB], update_case_by_ref, ref=request.match_info["ref"],
                                 change=change_of, actor=user.name)
    except IllegalTransition as problem:
        return await _render_case(request, status=409, form=form, error=_illegal(problem, desk_text(request)))
    except NothingToChange:
        return await _render_case(request, status=422, form=form, error=desk_text(request).gettext(
            "Nothing to save: choose a new status, change a field or write a note."))
    if done is None:
        return error_page(request, 404, *NO_CASE)
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
        return await _render_case(request, status=422,
                                  error=desk_text(request).gettext("Write a message before sending it."))
    user = request[SIGNED_IN]

    try:
        case = await run_storage(request.app[DB], start_live_chat, ref=ref, text=text, actor=user.name)
    except ChatRefused:
        case = None
    if case is None:
        return await _render_case(request, status=409,
                                  error=desk_text(request).gettext("This citizen cannot be contacted."))
    await request.app[NOTIFIER].chat(case, text)
    return see_other(f"/desk/cases/{case.ref}#chat")


@desk_route(*CASE_READERS)
async def case_chat_close(request: web.Request) -> web.StreamResponse:
    """Hand the conversation back to the assistant and tell the citizen."""
    user = request[SIGNED_IN]

    found = await run_storage(request.app[DB], end_live_chat, ref=request.match_info["ref"], actor=user.name)
    if found is None:
        return error_page(request, 404, *NO_CASE)
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
        return error_page(request, 404, *NO_PHOTO)
    actor = request[SIGNED_IN].name

    found = await run_storage(request.app[DB], read_case_photo, ref=request.match_info["ref"],
                              attachment_id=attachment_id, actor=actor, via="desk")
    if found is None:
        return error_page(request, 404, *NO_PHOTO)
    mime, data = found
    return web.Response(body=data, content_type=mime if mime in PHOTO_TYPES else "application/octet-stream", headers={
        "Content-Disposition": f'inline; filename="{attachment_id}"', "Cache-Control": "private, no-store",
        "Content-Security-Policy": "default-src 'none'; img-src 'self'; sandbox",
    })


# --------------------------------------------------------------------------- map


def _open_cases(t: DeskText) -> Any:
    return lambda n: t.ngettext("{n} open case", "{n} open cases", n)


@desk_route(*CASE_READERS)
async def map_page(request: web.Request) -> web.Response:
    settings, t = request.app[SETTINGS], desk_text(request)

    cases, counts, base = await asyncio.gather(
        run_storage(request.app[DB], open_cases), run_storage(request.app[DB], open_by_neighbourhood),
        asyncio.to_thread(load_base_map, settings.neighbourhoods_geojson))
    points = [MapPoint(
        ref=c.ref, latitude=c.latitude, longitude=c.longitude, priority=c.priority, href=f"/desk/cases/{c.ref}",
        label=" · ".join(part for part in (
            c.ref, t.category(c.category), t.priority(c.priority), t.status(c.status),
            c.address or c.neighbourhood_name or "", approximate_label(t.gettext, c.location_radius)) if part),
        radius_m=c.location_radius,
    ) for c in cases if c.latitude is not None and c.longitude is not None]
    names = {area.code: (area.name, area.district) for area in base.areas}
    ranking = sorted(((n, *names.get(code, (code, ""))) for code, n in counts.items()), key=lambda r: (-r[0], r[1]))
    svg = city_map(base, counts, points, open_cases=_open_cases(t),
                   label=t.gettext("Map of the neighbourhoods shaded by open cases, with the cases"))
    legend = shade_legend(counts, none_text=t.gettext("No open case"),
                          or_more=lambda n: t.gettext("{n} or more", n=t.number(n)))
    return render(request, "map.html", {
        "section": "map", "svg": svg, "legend": legend, "ranking": ranking[:12],
        "open_total": len(cases), "located": len(points), "unlocated": len(cases) - len(points),
        "urgent": sum(1 for c in cases if c.priority == "urgent"),
    })


# --------------------------------------------------------------------------- stats


@desk_route(*CASE_READERS)
async def stats_page(request: web.Request) -> web.Response:
    settings, t = request.app[SETTINGS], desk_text(request)
    try:
        weeks = int(request.query.get("weeks", "12"))
    except ValueError:
        weeks = 12
    if weeks not in STATS_PERIODS:
        weeks = 12
    now = utcnow()

    names = {item.code: item.name for item in request.app[NEIGHBOURHOODS].all()}

    view = await run_storage(request.app[DB], stats_view, zone=settings.zone, weeks=weeks, now=now,
                             not_located=NOT_LOCATED)
    safety = await run_storage(request.app[DB], safety_view, zone=settings.zone, weeks=view.weeks, since=view.since,
                               names=names, not_located=NOT_LOCATED)
    columns = [t.short_day(week.monday) for week in view.weeks]
    titles = [t.week_title(week.monday, week.key) for week in view.weeks]
    used = [c for c in CATEGORIES if any(view.per_week_category.get((w.key, c)) for w in view.weeks)]
    series = [Series(name=t.category(c), css_class=CATEGORY_CLASSES[c],
                     values=[view.per_week_category.get((w.key, c), 0) for w in view.weeks]) for c in used]
    def number(value: float) -> str:  # chart ticks and values: "2,5" in Catalan
        return t.number(value, 0 if value == int(value) else 1)

    weekly = stacked_bars(columns, series, column_titles=titles, number=number,
                          label=t.gettext("Reports per week and category, last {weeks} weeks", weeks=weeks))
    places = horizontal_bars([(t.place(name), n) for name, n in view.per_neighbourhood], number=number,
                             label=t.gettext("Reports per neighbourhood, top 15"))
    medians = view.ack_median_per_week
    hours = t.gettext("h")
    acknowledge = line_chart(columns, medians, unit=" " + hours, column_titles=titles, number=number,
                             value_text=[t.duration(v) for v in medians],
                             label=t.gettext("Median time to acknowledge a report, per week of reporting"))
    resolve = line_chart(columns, view.resolve_median_per_week, unit=" " + hours, column_titles=titles,
                         number=number,
                         value_text=[t.duration(v) for v in view.resolve_median_per_week],
                         label=t.gettext("Median time to resolve a report, per week of reporting"))
    table = [(w, [view.per_week_category.get((w.key, c), 0) for c in used],
              sum(view.per_week_category.get((w.key, c), 0) for c in used), t.duration(m), t.duration(r))
             for w, m, r in zip(view.weeks, medians, view.resolve_median_per_week, strict=True)]
    lines = [LineSeries(name=t.gettext("All neighbourhoods"), css_class="all",
                        values=[c[0] if c else None for c in safety.overall],
                        counts=[c[1] if c else 0 for c in safety.overall])]
    lines += [LineSeries(name=t.place(row.name), css_class=f"cat-{index}",
                         values=[c[0] if c else None for c in row.cells],
                         counts=[c[1] if c else 0 for c in row.cells]) for index, row in enumerate(safety.rows[:5])]
    summary = safety.summary

    def out_of_five(value: float | None) -> str:
        return t.gettext("{value} / 5", value=t.number(value, 1)) if value is not None else "–"

    return render(request, "stats.html", {
        "safety": safety, "safety_lines": lines,
        "safety_chart": scale_lines(
            columns, lines, column_titles=titles,
            label=t.gettext("Perceived safety per week (1 = very unsafe, 5 = very safe): all neighbourhoods and "
                            "the five with the most answers"),
            answers=lambda n: t.ngettext("{n} answer", "{n} answers", n), number=lambda v: t.number(v, 1)),
        "survey_kpis": [
            ("kpi-surveys", t.number(summary.answered), t.gettext("surveys answered")),
            ("kpi-solved", t.percent(summary.solved_rate) if summary.solved_rate is not None else "–",
             t.ngettext("say it was solved ({n} answer)", "say it was solved ({n} answers)",
                        summary.solved_answers)),
            ("kpi-satisfaction", out_of_five(summary.mean_satisfaction),
             t.ngettext("satisfaction ({n} answer)", "satisfaction ({n} answers)", summary.satisfaction_answers)),
            ("kpi-safety", out_of_five(summary.mean_safety),
             t.ngettext("feel safe in their neighbourhood ({n} answer)",
                        "feel safe in their neighbourhood ({n} answers)", summary.safety_answers)),
        ],
        "section": "stats", "weeks": weeks, "periods": STATS_PERIODS, "view": view, "weekly": weekly,
        "week_titles": titles, "week_shorts": columns, "safety_names": [t.place(r.name) for r in safety.rows],
        "places": places, "acknowledge": acknowledge, "resolve": resolve, "legend": series, "table": table,
        "any_ack": any(m is not None for m in medians),
        "any_resolved": any(m is not None for m in view.resolve_median_per_week),
        "median_ack": t.duration(view.median_hours_to_acknowledge),
        "median_resolve": t.duration(view.median_hours_to_resolve),
        "since": t.day(view.since),
    })
