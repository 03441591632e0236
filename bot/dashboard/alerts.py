"""The dashboard's alert pages, for community and admin users: the list with delivery counts,
the form to write one (neighbourhoods grouped by district, severity, text per language, optional
expiry), one alert's delivery report, and cancelling it. The same storage functions as
``POST /api/v1/alerts``; a hidden idempotency key makes a double-submitted form send once."""

from __future__ import annotations

import secrets
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.alerts import AlertComposer
from bot.dashboard.auth import desk_route
from bot.dashboard.base import SIGNED_IN, desk_text, error_page, render, see_other
from bot.dashboard.labels import DeskText
from bot.keys import CATALOGS, DB, NEIGHBOURHOODS, SETTINGS
from common.geo import Neighbourhoods
from common.i18n import N_
from storage import alerts as alert_store
from storage.alerts import AlertIn, DeliveryReport, IdempotencyConflict, InvalidAlert, NotTheAuthor
from storage.db import run_storage
from storage.models import LOCALES, SEVERITIES, Alert

ALERT_ROLES = ("community", "admin")
SEVERITY_NAMES = {"info": N_("Information"), "warning": N_("Warning"), "danger": N_("Danger")}
SEVERITY_HINTS = {
    "info": N_("Useful to know; waits for the end of quiet hours."),
    "warning": N_("Take care; waits for the end of quiet hours."),
    "danger": N_("Act now; sent at once, even at night."),
}
STATE_NAMES = {"active": N_("Active"), "expired": N_("Expired"), "cancelled": N_("Cancelled")}
FIELD_NAMES = {"neighbourhoods": N_("Neighbourhoods"), "severity": N_("Severity"), "texts": N_("Text"),
               "expires_at": N_("Expiry"), "Idempotency-Key": N_("Form")}
NO_ALERT = (N_("No such alert"), N_("There is no alert with this address."))
LIST_LIMIT = 100


@dataclass
class AlertForm:
    """What the form sent, kept to fill it again after an error."""

    codes: list[str] = field(default_factory=list)
    severity: str = "warning"
    texts: dict[str, str] = field(default_factory=dict)
    expires: str = ""
    key: str = field(default_factory=lambda: secrets.token_urlsafe(16))


def _districts(places: Neighbourhoods, t: DeskText) -> list[tuple[str, list[tuple[str, str]]]]:
    groups: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
    for item in sorted(places.all(), key=lambda n: n.code):
        groups[item.district or t.gettext("Other")].append((item.code, item.name))
    return sorted(groups.items(), key=lambda group: group[1][0][0])


def _row(alert: Alert, report: DeliveryReport, places: Neighbourhoods, t: DeskText) -> dict[str, Any]:
    known = {item.code: item.name for item in places.all()}
    texts = alert_store.alert_texts(alert)
    state = alert_store.alert_state(alert)
    return {
        "id": str(alert.id), "url": f"/desk/alerts/{alert.id}", "severity": alert.severity,
        "severity_label": t.named(SEVERITY_NAMES, alert.severity),
        "places": [known.get(code, code) for code in alert_store.alert_codes(alert)],
        "texts": [(t.language(locale), texts[locale]) for locale in LOCALES if locale in texts],
        "created": t.when(alert.created_at), "created_by": alert.created_by,
        "expires": t.when(alert.expires_at) if alert.expires_at else None,
        "cancelled": t.when(alert.cancelled_at) if alert.cancelled_at else None,
        "state": state, "state_label": t.named(STATE_NAMES, state), "report": report.as_dict(),
    }


async def _render_list(request: web.Request, *, form: AlertForm | None = None, status: int = 200,
                       errors: list[str] | None = None) -> web.Response:
    settings, t = request.app[SETTINGS], desk_text(request)
    places = request.app[NEIGHBOURHOODS]

    items, total = await run_storage(request.app[DB], alert_store.list_alerts, limit=LIST_LIMIT)
    return render(request, "alerts.html", {
        "section": "alerts", "rows": [_row(a, r, places, t) for a, r in items], "total": total,
        "districts": _districts(places, t), "form": form or AlertForm(), "errors": errors or [],
        "severities": [(s, t(SEVERITY_NAMES[s]), t(SEVERITY_HINTS[s])) for s in SEVERITIES],
        "languages": [(locale, t.language(locale)) for locale in LOCALES],
        "default_language": t.language(settings.default_locale), "zone": settings.time_zone,
        "created": request.query.get("created"),
    }, status=status)


@desk_route(*ALERT_ROLES)
async def alerts_page(request: web.Request) -> web.Response:
    return await _render_list(request)


@desk_route(*ALERT_ROLES)
async def alerts_create(request: web.Request) -> web.StreamResponse:
    posted = await request.post()
    settings, t = request.app[SETTINGS], desk_text(request)
    form = AlertForm(
        codes=[str(v) for v in posted.getall("neighbourhood", [])][:200],
        severity=str(posted.get("severity", "")),
        texts={locale: str(posted.get(f"text_{locale}", "")) for locale in LOCALES},
        expires=str(posted.get("expires", "")).strip(),
        key=str(posted.get("key", ""))[:100] or secrets.token_urlsafe(16),
    )
    expires_at = None
    if form.expires:
        try:  # <input type="datetime-local"> gives wall time in the deployment's zone
            expires_at = datetime.fromisoformat(form.expires)
        except ValueError:
            return await _render_list(request, form=form, status=422, errors=[
                t.gettext("Expiry: write a date and time, for example 2026-12-01 20:00.")])
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=settings.zone)
    places = request.app[NEIGHBOURHOODS]
    names = {item.code: item.name for item in places.all()}
    compose = AlertComposer(request.app[CATALOGS])
    actor = request[SIGNED_IN].name
    alert_in = AlertIn(neighbourhood_codes=form.codes, severity=form.severity, texts=form.texts,
                       expires_at=expires_at)

    try:
        created = await run_storage(request.app[DB], alert_store.create_alert, alert_in=alert_in, actor=actor,
                                    places=names, compose=compose, default_locale=settings.default_locale,
                                    idempotency_key="desk:" + form.key)
    except InvalidAlert as problem:
        errors = [f"{t.named(FIELD_NAMES, name.split('.')[0])}"
                  f"{' (' + t.language(name.split('.')[1]) + ')' if '.' in name else ''}: {text}."
                  for name, text in problem.problems]
        return await _render_list(request, form=form, status=422, errors=errors)
    except IdempotencyConflict:
        form.key = secrets.token_urlsafe(16)
        return await _render_list(request, form=form, status=409, errors=[
            t.gettext("This form was already sent with other contents. Check the list below, then send it again.")])
    return see_other(f"/desk/alerts/{created.alert.id}?sent=1")


def _alert_id(request: web.Request) -> uuid.UUID | None:
    try:
        return uuid.UUID(request.match_info["alert_id"])
    except ValueError:
        return None


@desk_route(*ALERT_ROLES)
async def alert_page(request: web.Request) -> web.Response:
    alert_id = _alert_id(request)

    found = (None if alert_id is None
             else await run_storage(request.app[DB], alert_store.alert_with_report, alert_id=alert_id))
    if found is None:
        return error_page(request, 404, *NO_ALERT)
    t = desk_text(request)
    row = _row(*found, request.app[NEIGHBOURHOODS], t)
    notice = None
    if request.query.get("sent") == "1":
        notice = t.ngettext("Alert saved: {n} message queued for the subscribers.",
                            "Alert saved: {n} messages queued for the subscribers.", row["report"]["total"])
    elif request.query.get("cancelled", "").isdigit():
        notice = t.ngettext("Alert cancelled: {n} unsent message withdrawn.",
                            "Alert cancelled: {n} unsent messages withdrawn.", int(request.query["cancelled"]))
    signed_in = request[SIGNED_IN]
    may_cancel = signed_in.role == "admin" or found[0].created_by == signed_in.name
    return render(request, "alert.html", {"section": "alerts", "alert": row, "notice": notice,
                                          "may_cancel": may_cancel})


@desk_route(*ALERT_ROLES)
async def alert_cancel(request: web.Request) -> web.StreamResponse:
    alert_id = _alert_id(request)
    signed_in = request[SIGNED_IN]

    try:
        done = (None if alert_id is None
                else await run_storage(request.app[DB], alert_store.cancel_alert, alert_id=alert_id,
                                       actor=signed_in.name, any_author=signed_in.role == "admin"))
    except NotTheAuthor:
        return error_page(request, 403, "Not your alert",
                          "Only the person who wrote this alert, or an admin, may cancel it.")
    if done is None:
        return error_page(request, 404, *NO_ALERT)
    return see_other(f"/desk/alerts/{done[0].id}?cancelled={done[1]}")


def add_routes(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/alerts", alerts_page)
    router.add_post(prefix + "/alerts", alerts_create)
    router.add_get(prefix + "/alerts/{alert_id}", alert_page)
    router.add_post(prefix + "/alerts/{alert_id}/cancel", alert_cancel)
