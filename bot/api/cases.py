"""REST API for dispatchers under /api/v1: cases, their history and photos, and changes
that go back to the citizen."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.api.auth import error, require, staff_of
from bot.api.openapi import serve_openapi
from bot.keys import DB, NOTIFIER, SETTINGS
from storage.dashboard import figures
from storage.db import run_storage
from storage.desk import (
    CaseChange,
    CaseChat,
    CaseFilters,
    CaseRecord,
    ChatRefused,
    IllegalTransition,
    end_live_chat,
    export_cases,
    list_cases,
    read_case,
    read_case_photo,
    read_chat,
    start_live_chat,
    update_case_by_ref,
)
from storage.models import CATEGORIES, PRIORITIES, STATUSES, Case
from storage.stats import audit_entries

READERS = ("dispatcher", "admin")
MAX_PAGE = 200
EXPORT_MAX = 10_000


class CasePatch(BaseModel):
    """A dispatcher's change to a case (unknown fields are refused)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    status: str | None = None
    duplicate_of: str | None = Field(default=None, max_length=16)
    priority: str | None = None
    assignee: str | None = Field(default=None, max_length=64)
    public_note: str | None = Field(default=None, min_length=1, max_length=2000)
    internal_note: str | None = Field(default=None, min_length=1, max_length=4000)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def case_summary(case: Case) -> dict[str, Any]:
    return {
        "ref": case.ref,
        "status": case.status,
        "priority": case.priority,
        "category": case.category,
        "neighbourhood": {"code": case.neighbourhood_code, "name": case.neighbourhood_name,
                          "district": case.district_name},
        "created_at": _iso(case.created_at),
        "occurred_at": _iso(case.occurred_at),
        "channel": case.channel,
        "assignee": case.assignee,
        "handoff_requested": case.handoff_requested_at is not None,
    }


def case_detail(record: CaseRecord) -> dict[str, Any]:
    """The API's JSON of a case as a dispatcher reads it (the desk's case page shows the same)."""
    case, contact = record.case, record.contact
    return {
        **case_summary(case),
        "description": case.description,
        "address": case.address,
        "location": {"latitude": case.latitude, "longitude": case.longitude} if case.latitude is not None else None,
        "occurred_text": case.occurred_text,
        "locale": case.locale,
        "contact_mode": case.contact_mode,
        "contact": {"name": contact.contact_name, "phone": contact.contact_phone, "email": contact.contact_email}
        if contact is not None else None,
        "updated_at": _iso(case.updated_at),
        "acknowledged_at": _iso(case.acknowledged_at),
        "resolved_at": _iso(case.resolved_at),
        "closed_at": _iso(case.closed_at),
        "erased_at": _iso(case.erased_at),
        "attachments": [
            {"id": str(a.id), "sha256": a.sha256, "size": a.size, "mime_type": a.mime_type,
             "created_at": _iso(a.created_at), "url": f"/api/v1/cases/{case.ref}/attachments/{a.id}"}
            for a in record.attachments
        ],
        "history": [
            {"at": _iso(e.at), "kind": e.kind, "actor": e.actor, "from_status": e.from_status,
             "to_status": e.to_status, "text": e.text}
            for e in record.events
        ],
        "duplicate_candidates": record.duplicates,
    }


def _filters(request: web.Request, max_limit: int = MAX_PAGE) -> tuple[CaseFilters, int, int]:
    """Query parameters, refused with a message when out of range (ValueError)."""
    query = request.query
    unknown = set(query) - {"status", "category", "neighbourhood", "priority", "since", "limit", "offset"}
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    for name, allowed in (("status", STATUSES), ("category", CATEGORIES), ("priority", PRIORITIES)):
        if name in query and query[name] not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}")
    since = None
    if "since" in query:
        try:
            since = datetime.fromisoformat(query["since"])
        except ValueError:
            raise ValueError("since must be an ISO 8601 date or date-time") from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=request.app[SETTINGS].zone)
    try:
        limit = int(query.get("limit", "50" if max_limit == MAX_PAGE else str(max_limit)))
        offset = int(query.get("offset", "0"))
    except ValueError:
        raise ValueError("limit and offset must be whole numbers") from None
    if not 1 <= limit <= max_limit:
        raise ValueError(f"limit must be between 1 and {max_limit}")
    if not 0 <= offset <= 1_000_000:
        raise ValueError("offset must be between 0 and 1000000")
    filters = CaseFilters(status=query.get("status"), category=query.get("category"),
                          neighbourhood=query.get("neighbourhood"), priority=query.get("priority"), since=since)
    return filters, limit, offset


@require(*READERS, db_key=DB)
async def get_cases(request: web.Request) -> web.Response:
    try:
        filters, limit, offset = _filters(request)
    except ValueError as problem:
        return error(400, str(problem))

    cases, total = await run_storage(request.app[DB], list_cases, filters=filters, limit=limit, offset=offset)
    return web.json_response({"total": total, "limit": limit, "offset": offset,
                              "items": [case_summary(c) for c in cases]})


@require(*READERS, db_key=DB)
async def get_case(request: web.Request) -> web.Response:
    record = await run_storage(request.app[DB], read_case, ref=request.match_info["ref"],
                               reader=staff_of(request).name)
    if record is None:
        return error(404, "no such case")
    return web.json_response(case_detail(record))


@require(*READERS, db_key=DB)
async def patch_case(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error(400, "the body must be JSON")
    if not isinstance(body, dict) or not body:
        return error(422, "send a JSON object with at least one field to change")
    try:
        patch = CasePatch.model_validate(body)
    except ValidationError as problem:
        details = [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in problem.errors()]
        return error(422, "invalid change", details=details)
    user = staff_of(request)
    change = CaseChange(status=patch.status, duplicate_of=patch.duplicate_of, priority=patch.priority,
                        assignee=patch.assignee, public_note=patch.public_note, internal_note=patch.internal_note)

    try:
        done = await run_storage(request.app[DB], update_case_by_ref, ref=request.match_info["ref"], change=change,
                                 actor=user.name)
    except IllegalTransition as problem:
        return error(409, str(problem))
    if done is None:
        return error(404, "no such case")
    case = done[0]
    outcome = await request.app[NOTIFIER].case_changed(case, new_status=patch.status, public_note=patch.public_note)
    record = await run_storage(request.app[DB], read_case, ref=case.ref, reader=user.name)
    detail = case_detail(record) if record is not None else {}
    return web.json_response({**detail, "citizen_notified": outcome})


@require(*READERS, db_key=DB)
async def get_attachment(request: web.Request) -> web.StreamResponse:
    try:
        attachment_id = uuid.UUID(request.match_info["attachment_id"])
    except ValueError:
        return error(404, "no such attachment")

    found = await run_storage(request.app[DB], read_case_photo, ref=request.match_info["ref"],
                              attachment_id=attachment_id, actor=staff_of(request).name, via="api")
    if found is None:
        return error(404, "no such attachment")
    mime, data = found
    return web.Response(body=data, content_type=mime, headers={
        "Content-Disposition": f'attachment; filename="{attachment_id}"', "Cache-Control": "no-store"})


CSV_COLUMNS = ("ref", "status", "priority", "category", "neighbourhood_code", "neighbourhood_name", "district",
               "created_at", "occurred_at", "latitude", "longitude", "address", "description", "contact_mode",
               "assignee", "acknowledged_at", "resolved_at", "closed_at")


# A formula trigger at the start of the text or after anything a spreadsheet may split cells
# on: Spanish and Catalan Excel read ";" as the separator, others a comma, a tab or a line.
_FORMULA_TRIGGER = re.compile(r"(^|[;,\t\r\n])(\s*)(?=[=+\-@])")


def csv_cell(value: object) -> str:
    """A spreadsheet cannot run citizen text: an apostrophe goes before every formula trigger
    that could start a cell, wherever the reading program splits (every cell is also quoted)."""
    text = "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)
    return _FORMULA_TRIGGER.sub(r"\1\2'", text)


async def _export_rows(request: web.Request, action: str) -> list[Case]:
    filters, limit, offset = _filters(request, max_limit=EXPORT_MAX)
    return await run_storage(request.app[DB], export_cases, filters=filters, limit=limit, offset=offset,
                             actor=staff_of(request).name, action=action, query=dict(request.query))


@require(*READERS, db_key=DB)
async def export_csv(request: web.Request) -> web.StreamResponse:
    try:
        cases = await _export_rows(request, "cases.exported_csv")
    except ValueError as problem:
        return error(400, str(problem))
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL)
    writer.writerow(CSV_COLUMNS)
    for case in cases:
        writer.writerow([csv_cell(value) for value in (
            case.ref, case.status, case.priority, case.category, case.neighbourhood_code, case.neighbourhood_name,
            case.district_name, case.created_at, case.occurred_at, case.latitude, case.longitude, case.address,
            case.description, case.contact_mode, case.assignee, case.acknowledged_at, case.resolved_at, case.closed_at,
        )])
    return web.Response(text=buffer.getvalue(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": 'attachment; filename="barri-cases.csv"'})


@require(*READERS, db_key=DB)
async def export_geojson(request: web.Request) -> web.StreamResponse:
    try:
        cases = await _export_rows(request, "cases.exported_geojson")
    except ValueError as problem:
        return error(400, str(problem))
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [case.longitude, case.latitude]}
            if case.latitude is not None and case.longitude is not None else None,
            "properties": {**case_summary(case), "description": case.description, "address": case.address},
        }
        for case in cases
    ]
    return web.json_response({"type": "FeatureCollection", "features": features}, content_type="application/geo+json")


@require(*READERS, db_key=DB)
async def get_stats(request: web.Request) -> web.Response:
    try:
        filters, _, _ = _filters(request)
    except ValueError as problem:
        return error(400, str(problem))
    zone = request.app[SETTINGS].zone

    found = await run_storage(request.app[DB], figures, filters=filters, zone=zone)
    stats = found.cases
    return web.json_response({
        "total": stats.total, "by_category_neighbourhood_week": stats.counts,
        "median_hours_to_acknowledge": stats.median_hours_to_acknowledge,
        "median_hours_to_resolve": stats.median_hours_to_resolve,
        # survey answers given since ``since`` (the other filters are about cases)
        "surveys": asdict(found.surveys),
        "safety_by_neighbourhood_week": [asdict(point) for point in found.safety],
    })


@require("admin", db_key=DB)
async def get_audit(request: web.Request) -> web.Response:
    query = request.query
    unknown = set(query) - {"since", "actor", "action", "limit", "offset"}
    try:
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        limit, offset = int(query.get("limit", "100")), int(query.get("offset", "0"))
        if not 1 <= limit <= 1000 or offset < 0:
            raise ValueError("limit must be between 1 and 1000 and offset at least 0")
        since = datetime.fromisoformat(query["since"]) if "since" in query else None
    except ValueError as problem:
        return error(400, str(problem))
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=request.app[SETTINGS].zone)

    entries = await run_storage(request.app[DB], audit_entries, since=since, actor=query.get("actor"),
                                action=query.get("action"), limit=limit, offset=offset)
    items = [{"at": _iso(e.at), "actor": e.actor, "action": e.action, "subject_type": e.subject_type,
              "subject_id": e.subject_id, "detail": json.loads(e.detail) if e.detail else None} for e in entries]
    return web.json_response({"items": items, "limit": limit, "offset": offset})


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    text: str = Field(min_length=1, max_length=4000)


def _chat_state(case: Case, chat: CaseChat) -> dict[str, Any]:
    return {
        "ref": case.ref,
        "live": chat.live,
        "messages": [{"at": _iso(e.at), "kind": e.kind, "actor": e.actor, "text": e.text} for e in chat.messages],
    }


@require(*READERS, db_key=DB)
async def get_chat(request: web.Request) -> web.Response:
    found = await run_storage(request.app[DB], read_chat, ref=request.match_info["ref"], reader=staff_of(request).name)
    return error(404, "no such case") if found is None else web.json_response(_chat_state(*found))


@require(*READERS, db_key=DB)
async def post_chat(request: web.Request) -> web.Response:
    """Write to the citizen in the case's chat; the chat becomes live (the assistant steps aside)."""
    try:
        message = ChatMessage.model_validate(await request.json())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error(400, "the body must be JSON")
    except ValidationError as problem:
        return error(422, "invalid message", details=[{"field": ".".join(map(str, e["loc"])), "problem": e["msg"]}
                                                       for e in problem.errors()])
    user = staff_of(request)

    try:
        case = await run_storage(request.app[DB], start_live_chat, ref=request.match_info["ref"], text=message.text,
                                 actor=user.name)
    except ChatRefused as refused:
        return error(409, str(refused))
    if case is None:
        return error(404, "no such case")
    outcome = await request.app[NOTIFIER].chat(case, message.text)
    return web.json_response({"delivered": outcome})


@require(*READERS, db_key=DB)
async def end_chat(request: web.Request) -> web.Response:
    """Hand the conversation back to the assistant."""
    user = staff_of(request)

    found = await run_storage(request.app[DB], end_live_chat, ref=request.match_info["ref"], actor=user.name)
    if found is None:
        return error(404, "no such case")
    case, changed = found
    outcome = await request.app[NOTIFIER].chat(case, None) if changed else "it was not live"
    return web.json_response({"live": False, "citizen_notified": outcome})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", serve_openapi)
    app.router.add_get("/api/v1/cases", get_cases)
    app.router.add_get("/api/v1/cases.csv", export_csv)
    app.router.add_get("/api/v1/cases.geojson", export_geojson)
    app.router.add_get("/api/v1/stats", get_stats)
    app.router.add_get("/api/v1/audit", get_audit)
    app.router.add_get("/api/v1/cases/{ref}", get_case)
    app.router.add_patch("/api/v1/cases/{ref}", patch_case)
    app.router.add_get("/api/v1/cases/{ref}/attachments/{attachment_id}", get_attachment)
    app.router.add_get("/api/v1/cases/{ref}/chat", get_chat)
    app.router.add_post("/api/v1/cases/{ref}/chat", post_chat)
    app.router.add_delete("/api/v1/cases/{ref}/chat", end_chat)
