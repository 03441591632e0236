"""REST API for neighbourhood alerts under /api/v1/alerts (community and admin users).

``POST /api/v1/alerts`` stores the alert and queues one message per reachable subscriber of
its neighbourhoods in one transaction; the outbox worker sends them. An optional
``Idempotency-Key`` header makes a retried POST return the first alert instead of a second one.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from bot.alerts import AlertComposer
from bot.api.auth import error, require, staff_of
from bot.keys import CATALOGS, DB, NEIGHBOURHOODS, SETTINGS
from common.geo import Neighbourhoods
from storage import alerts as alert_store
from storage.alerts import MAX_NEIGHBOURHOODS, AlertIn, DeliveryReport, IdempotencyConflict, InvalidAlert, NotTheAuthor
from storage.db import run_storage
from storage.models import Alert

ALERT_ROLES = ("community", "admin")
MAX_PAGE = 200


class AlertBody(BaseModel):
    """A new alert (unknown fields are refused)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    neighbourhoods: list[str] = Field(min_length=1, max_length=MAX_NEIGHBOURHOODS)
    severity: str
    texts: dict[str, str] = Field(min_length=1)
    expires_at: AwareDatetime | None = None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _neighbourhood_json(code: str, places: Neighbourhoods) -> dict[str, str | None]:
    place = places.by_code(code)
    return {"code": code, "name": place.name if place else None, "district": place.district if place else None}


def alert_json(alert: Alert, report: DeliveryReport, places: Neighbourhoods) -> dict[str, Any]:
    return {
        "id": str(alert.id),
        "created_by": alert.created_by,
        "created_at": _iso(alert.created_at),
        "severity": alert.severity,
        "neighbourhoods": [_neighbourhood_json(code, places) for code in alert_store.alert_codes(alert)],
        "texts": alert_store.alert_texts(alert),
        "expires_at": _iso(alert.expires_at),
        "cancelled_at": _iso(alert.cancelled_at),
        "state": alert_store.alert_state(alert),
        "delivery": report.as_dict(),
    }


def _details(problem: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]) or "body", "problem": e["msg"]} for e in problem.errors()]


def _alert_id(request: web.Request) -> uuid.UUID | None:
    try:
        return uuid.UUID(request.match_info["alert_id"])
    except ValueError:
        return None


@require(*ALERT_ROLES, db_key=DB)
async def post_alert(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        body = AlertBody.model_validate_json(raw)
    except ValidationError as problem:
        if any(e["type"] == "json_invalid" for e in problem.errors()):
            return error(400, "the body must be JSON")
        if any(e["type"] == "model_type" for e in problem.errors()):
            return error(422, "send a JSON object with neighbourhoods, severity and texts")
        return error(422, "invalid alert", details=_details(problem))
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= alert_store.IDEMPOTENCY_KEY_MAX and key.isprintable()):
        return error(400, f"Idempotency-Key must be 1 to {alert_store.IDEMPOTENCY_KEY_MAX} printable characters")
    user = staff_of(request)
    places = request.app[NEIGHBOURHOODS]
    names = places.names_by_code
    compose = AlertComposer(request.app[CATALOGS])
    default_locale = request.app[SETTINGS].default_locale
    alert_in = AlertIn(neighbourhood_codes=body.neighbourhoods, severity=body.severity, texts=body.texts,
                       expires_at=body.expires_at)

    try:
        created = await run_storage(request.app[DB], alert_store.create_alert, alert_in=alert_in, actor=user.name,
                                    places=names, compose=compose, default_locale=default_locale,
                                    idempotency_key=key)
    except InvalidAlert as problem:
        return error(422, "invalid alert", details=[{"field": f, "problem": p} for f, p in problem.problems])
    except IdempotencyConflict as problem:
        return error(409, str(problem))
    payload = {**alert_json(created.alert, created.report, places), "recipients": created.report.total}
    response = web.json_response(payload, status=200 if created.replayed else 201)
    response.headers["Location"] = f"/api/v1/alerts/{created.alert.id}"
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@require(*ALERT_ROLES, db_key=DB)
async def get_alerts(request: web.Request) -> web.Response:
    query = request.query
    unknown = set(query) - {"limit", "offset"}
    try:
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        limit, offset = int(query.get("limit", "50")), int(query.get("offset", "0"))
    except ValueError as problem:
        message = str(problem) if unknown else "limit and offset must be whole numbers"
        return error(400, message)
    if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= 1_000_000:
        return error(400, f"limit must be between 1 and {MAX_PAGE} and offset between 0 and 1000000")

    items, total = await run_storage(request.app[DB], alert_store.list_alerts, limit=limit, offset=offset)
    places = request.app[NEIGHBOURHOODS]
    return web.json_response({"total": total, "limit": limit, "offset": offset,
                              "items": [alert_json(alert, report, places) for alert, report in items]})


@require(*ALERT_ROLES, db_key=DB)
async def get_alert(request: web.Request) -> web.Response:
    alert_id = _alert_id(request)
    if alert_id is None:
        return error(404, "no such alert")

    found = await run_storage(request.app[DB], alert_store.alert_with_report, alert_id=alert_id)
    if found is None:
        return error(404, "no such alert")
    return web.json_response(alert_json(*found, request.app[NEIGHBOURHOODS]))


@require(*ALERT_ROLES, db_key=DB)
async def cancel_alert(request: web.Request) -> web.Response:
    alert_id = _alert_id(request)
    if alert_id is None:
        return error(404, "no such alert")
    staff = staff_of(request)

    try:
        found = await run_storage(request.app[DB], alert_store.cancel_alert_with_report, alert_id=alert_id,
                                  actor=staff.name, any_author=staff.role == "admin")
    except NotTheAuthor:
        return error(403, "you may cancel only your own alerts (an admin may cancel any)")
    if found is None:
        return error(404, "no such alert")
    alert, withdrawn, report = found
    return web.json_response({**alert_json(alert, report, request.app[NEIGHBOURHOODS]), "withdrawn": withdrawn})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/alerts", post_alert)
    app.router.add_get("/api/v1/alerts", get_alerts)
    app.router.add_get("/api/v1/alerts/{alert_id}", get_alert)
    app.router.add_post("/api/v1/alerts/{alert_id}/cancel", cancel_alert)
