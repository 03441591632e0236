"""The OpenAPI 3.1 document of the staff API, served at /api/v1/openapi.json.

Written by hand next to the handlers; tests hold it against the app's real routes and
validate real responses with its schemas.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from storage.models import CATEGORIES, PRIORITIES, SEVERITIES, STATUSES

NULLABLE_STRING = {"type": ["string", "null"]}
TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


AUTH_ERRORS = {"401": _error("no valid API token"), "403": _error("the user's role may not use this route")}
REF = {"name": "ref", "in": "path", "required": True, "schema": {"type": "string", "example": "K7Q-4M2"}}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "string"}, "details": {"type": "array", "items": {"type": "object"}}},
    },
    "Neighbourhood": {
        "type": "object",
        "properties": {"code": NULLABLE_STRING, "name": NULLABLE_STRING, "district": NULLABLE_STRING},
    },
    "CaseSummary": {
        "type": "object",
        "required": ["ref", "status", "priority", "category", "created_at", "channel"],
        "properties": {
            "ref": {"type": "string", "pattern": "^[2-9A-Z]{3}-[2-9A-Z]{3}$"},
            "status": {"enum": list(STATUSES)},
            "priority": {"enum": list(PRIORITIES)},
            "category": {"enum": list(CATEGORIES)},
            "neighbourhood": {"$ref": "#/components/schemas/Neighbourhood"},
            "created_at": {"type": "string", "format": "date-time"},
            "occurred_at": TIMESTAMP,
            "channel": {"type": "string"},
            "assignee": NULLABLE_STRING,
            "handoff_requested": {"type": "boolean"},
        },
    },
    "CaseList": {
        "type": "object", "required": ["total", "limit", "offset", "items"],
        "properties": {
            "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/CaseSummary"}},
        },
    },
    "Attachment": {
        "type": "object", "required": ["id", "sha256", "size", "mime_type", "url"],
        "properties": {
            "id": {"type": "string", "format": "uuid"}, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "size": {"type": "integer"}, "mime_type": {"type": "string"}, "created_at": TIMESTAMP,
            "url": {"type": "string"},
        },
    },
    "HistoryEntry": {
        "type": "object", "required": ["at", "kind", "actor"],
        "properties": {"at": {"type": "string", "format": "date-time"}, "kind": {"type": "string"},
                       "actor": {"type": "string"}, "from_status": NULLABLE_STRING, "to_status": NULLABLE_STRING,
                       "text": NULLABLE_STRING},
    },
    "CaseDetail": {
        "allOf": [{"$ref": "#/components/schemas/CaseSummary"}],
        "type": "object",
        "required": ["description", "contact_mode", "attachments", "history"],
        "properties": {
            "description": NULLABLE_STRING, "address": NULLABLE_STRING,
            "location": {"type": ["object", "null"],
                         "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}}},
            "occurred_text": NULLABLE_STRING, "locale": {"enum": ["en", "es", "ca"]},
            "contact_mode": {"enum": ["anonymous", "chat", "contact"]},
            "contact": {"type": ["object", "null"], "description": "only when the citizen chose to leave it; "
                        "every read is audited",
                        "properties": {"name": NULLABLE_STRING, "phone": NULLABLE_STRING, "email": NULLABLE_STRING}},
            "updated_at": TIMESTAMP, "acknowledged_at": TIMESTAMP, "resolved_at": TIMESTAMP, "closed_at": TIMESTAMP,
            "erased_at": TIMESTAMP,
            "attachments": {"type": "array", "items": {"$ref": "#/components/schemas/Attachment"}},
            "history": {"type": "array", "items": {"$ref": "#/components/schemas/HistoryEntry"}},
            "citizen_notified": {"type": "string", "description": "after a PATCH: what reached the citizen"},
            "duplicate_candidates": {"type": "array", "items": {"type": "string"},
                                     "description": "open cases of the same category within 150 m and 48 h: "
                                                    "PATCH status duplicate with duplicate_of to join them"},
        },
    },
    "Stats": {
        "type": "object",
        "required": ["total", "by_category_neighbourhood_week", "median_hours_to_acknowledge",
                     "median_hours_to_resolve"],
        "properties": {
            "total": {"type": "integer"},
            "by_category_neighbourhood_week": {"type": "array", "items": {
                "type": "object", "required": ["category", "neighbourhood", "week", "cases"],
                "properties": {"category": {"type": "string"}, "neighbourhood": {"type": "string"},
                               "week": {"type": "string", "pattern": "^[0-9]{4}-W[0-9]{2}$"},
                               "cases": {"type": "integer"}}}},
            "median_hours_to_acknowledge": {"type": ["number", "null"]},
            "median_hours_to_resolve": {"type": ["number", "null"]},
            "surveys": {"type": "object", "description": "after-resolution surveys answered since `since`",
                        "required": ["answered", "mean_satisfaction", "solved_rate", "mean_safety"],
                        "properties": {"answered": {"type": "integer"},
                                       "mean_satisfaction": {"type": ["number", "null"]},
                                       "satisfaction_answers": {"type": "integer"},
                                       "solved_rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                                       "solved_answers": {"type": "integer"},
                                       "mean_safety": {"type": ["number", "null"]},
                                       "safety_answers": {"type": "integer"}}},
            "safety_by_neighbourhood_week": {"type": "array", "description": "perceived safety (1 to 5) per "
                                             "neighbourhood code and ISO week of the answer", "items": {
                "type": "object", "required": ["neighbourhood", "period", "mean", "answers"],
                "properties": {"neighbourhood": {"type": "string"},
                               "period": {"type": "string", "pattern": "^[0-9]{4}-W[0-9]{2}$"},
                               "mean": {"type": "number", "minimum": 1, "maximum": 5},
                               "answers": {"type": "integer", "minimum": 1}}}},
        },
    },
    "AuditList": {
        "type": "object", "required": ["items", "limit", "offset"],
        "properties": {"limit": {"type": "integer"}, "offset": {"type": "integer"},
                       "items": {"type": "array", "items": {
            "type": "object", "required": ["at", "actor", "action", "subject_type", "subject_id"],
            "properties": {"at": {"type": "string", "format": "date-time"}, "actor": {"type": "string"},
                           "action": {"type": "string"}, "subject_type": {"type": "string"},
                           "subject_id": {"type": "string"}, "detail": {"type": ["object", "null"]}}}}},
    },
    "FeatureCollection": {
        "type": "object", "required": ["type", "features"],
        "properties": {"type": {"const": "FeatureCollection"}, "features": {"type": "array", "items": {
            "type": "object", "required": ["type", "geometry", "properties"],
            "properties": {"type": {"const": "Feature"}, "geometry": {"type": ["object", "null"]},
                           "properties": {"$ref": "#/components/schemas/CaseSummary"}}}}},
    },
    "Chat": {
        "type": "object", "required": ["ref", "live", "messages"],
        "properties": {"ref": {"type": "string"}, "live": {"type": "boolean"}, "messages": {"type": "array", "items": {
            "type": "object", "required": ["at", "kind", "actor"],
            "properties": {"at": {"type": "string"}, "kind": {"type": "string"}, "actor": {"type": "string"},
                           "text": NULLABLE_STRING}}}},
    },
    "CasePatch": {
        "type": "object", "additionalProperties": False, "minProperties": 1,
        "properties": {
            "status": {"enum": list(STATUSES), "description": "new → acknowledged → in_progress → resolved → closed, "
                       "or rejected, or duplicate (with duplicate_of)"},
            "duplicate_of": {"type": "string", "description": "reference of the original case"},
            "priority": {"enum": list(PRIORITIES)},
            "assignee": {"type": "string", "maxLength": 64},
            "public_note": {"type": "string", "minLength": 1, "maxLength": 2000,
                            "description": "sent to the citizen in their language"},
            "internal_note": {"type": "string", "minLength": 1, "maxLength": 4000},
        },
    },
}


ALERT_ID = {"name": "alert_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
SCHEMAS.update({
    "DeliveryReport": {
        "type": "object", "required": ["sent", "pending", "failed", "unreachable", "cancelled", "total"],
        "description": "outbox messages of the alert by status; pending includes those being sent now",
        "properties": {name: {"type": "integer", "minimum": 0}
                       for name in ("sent", "pending", "failed", "unreachable", "cancelled", "total")},
    },
    "Alert": {
        "type": "object",
        "required": ["id", "created_by", "created_at", "severity", "neighbourhoods", "texts", "state", "delivery"],
        "properties": {
            "id": {"type": "string", "format": "uuid"}, "created_by": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"}, "severity": {"enum": list(SEVERITIES)},
            "neighbourhoods": {"type": "array", "items": {"$ref": "#/components/schemas/Neighbourhood"}},
            "texts": {"type": "object", "propertyNames": {"enum": ["en", "es", "ca"]},
                      "additionalProperties": {"type": "string"}},
            "expires_at": TIMESTAMP, "cancelled_at": TIMESTAMP,
            "state": {"enum": ["active", "expired", "cancelled"]},
            "delivery": {"$ref": "#/components/schemas/DeliveryReport"},
            "recipients": {"type": "integer", "description": "after a POST: messages queued for this alert"},
            "withdrawn": {"type": "integer", "description": "after a cancel: unsent messages withdrawn now"},
        },
    },
    "AlertList": {
        "type": "object", "required": ["total", "limit", "offset", "items"],
        "properties": {"total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
                       "items": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}}},
    },
    "AlertCreate": {
        "type": "object", "additionalProperties": False, "required": ["neighbourhoods", "severity", "texts"],
        "properties": {
            "neighbourhoods": {"type": "array", "minItems": 1, "maxItems": 100, "items": {"type": "string"},
                               "description": "neighbourhood codes, e.g. 01-01 (el Raval)"},
            "severity": {"enum": list(SEVERITIES), "description": "danger is sent at once, even in quiet hours"},
            "texts": {"type": "object", "minProperties": 1, "propertyNames": {"enum": ["en", "es", "ca"]},
                      "additionalProperties": {"type": "string", "maxLength": 1000},
                      "description": "the text per language; each subscriber gets theirs, else the default "
                                     "language's, else any"},
            "expires_at": {"type": ["string", "null"], "format": "date-time",
                           "description": "in the future, with a time zone; unsent messages are dropped then"},
        },
    },
})


def openapi_document() -> dict[str, Any]:
    filters = [
        {"name": "status", "in": "query", "schema": {"enum": list(STATUSES)}},
        {"name": "category", "in": "query", "schema": {"enum": list(CATEGORIES)}},
        {"name": "neighbourhood", "in": "query", "schema": {"type": "string"}, "description": "code or name"},
        {"name": "priority", "in": "query", "schema": {"enum": list(PRIORITIES)}},
        {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 1_000_000,
                                                     "default": 0}},
    ]
    # exports take up to 10,000 rows and default to all of them (EXPORT_MAX in cases.py)
    export_filters = [*filters[:-2], {"name": "limit", "in": "query", "schema": {
        "type": "integer", "minimum": 1, "maximum": 10_000, "default": 10_000}}, filters[-1]]
    json_of = lambda name: {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}  # noqa: E731
    return {
        "openapi": "3.1.0",
        "info": {"title": "Barri staff API", "version": "1",
                 "description": "Structured citizen reports for dispatchers. Every route needs a Bearer API "
                                "token (`barri user add NAME --role dispatcher`)."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": SCHEMAS},
        "paths": {
            "/api/v1/cases": {"get": {
                "summary": "Cases, urgent first then newest", "operationId": "listCases", "parameters": filters,
                "responses": {"200": {"description": "a page of cases", "content": json_of("CaseList")},
                              "400": _error("a filter or the pagination is out of range"), **AUTH_ERRORS},
            }},
            "/api/v1/cases/{ref}": {
                "get": {
                    "summary": "One case with its photos and history", "operationId": "getCase", "parameters": [REF],
                    "responses": {"200": {"description": "the case", "content": json_of("CaseDetail")},
                                  "404": _error("no such case"), **AUTH_ERRORS},
                },
                "patch": {
                    "summary": "Change status, priority or assignee; write a public or internal note",
                    "operationId": "updateCase", "parameters": [REF],
                    "requestBody": {"required": True, "content": json_of("CasePatch")},
                    "responses": {"200": {"description": "the changed case", "content": json_of("CaseDetail")},
                                  "400": _error("the body is not JSON"), "404": _error("no such case"),
                                  "409": _error("the status change is not allowed; the message says why"),
                                  "422": _error("unknown fields or wrong types"), **AUTH_ERRORS},
                },
            },
            "/api/v1/cases/{ref}/attachments/{attachment_id}": {"get": {
                "summary": "A photo of the case (every download is audited)", "operationId": "getAttachment",
                "parameters": [REF, {"name": "attachment_id", "in": "path", "required": True,
                                     "schema": {"type": "string", "format": "uuid"}}],
                "responses": {"200": {"description": "the image", "content": {"image/*": {}}},
                              "404": _error("no such attachment"), **AUTH_ERRORS},
            }},
            "/api/v1/cases.csv": {"get": {
                "summary": "Cases as CSV (same filters; up to 10,000 rows; every export is audited)",
                "operationId": "exportCsv", "parameters": export_filters,
                "responses": {"200": {"description": "CSV, cells that look like formulas are quoted",
                                      "content": {"text/csv": {}}},
                              "400": _error("a filter is out of range"), **AUTH_ERRORS},
            }},
            "/api/v1/cases.geojson": {"get": {
                "summary": "Cases as GeoJSON points (same filters; audited)", "operationId": "exportGeojson",
                "parameters": export_filters,
                "responses": {"200": {"description": "a FeatureCollection",
                                      "content": {"application/geo+json": {"schema": {
                                          "$ref": "#/components/schemas/FeatureCollection"}}}},
                              "400": _error("a filter is out of range"), **AUTH_ERRORS},
            }},
            "/api/v1/stats": {"get": {
                "summary": "Counts by category × neighbourhood × ISO week; median hours to acknowledge and resolve",
                "operationId": "stats", "parameters": filters,
                "responses": {"200": {"description": "figures", "content": json_of("Stats")},
                              "400": _error("a filter is out of range"), **AUTH_ERRORS},
            }},
            "/api/v1/audit": {"get": {
                "summary": "Every read of personal data and every change, newest first (admin only)",
                "operationId": "audit",
                "parameters": [{"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                               {"name": "actor", "in": "query", "schema": {"type": "string"}},
                               {"name": "action", "in": "query", "schema": {"type": "string"}},
                               {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                         "maximum": 1000}},
                               {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
                "responses": {"200": {"description": "audit entries", "content": json_of("AuditList")},
                              "400": _error("a parameter is out of range"), **AUTH_ERRORS},
            }},
            "/api/v1/cases/{ref}/chat": {
                "get": {"summary": "The live conversation with the reporter (audited)", "operationId": "getChat",
                        "parameters": [REF],
                        "responses": {"200": {"description": "messages and whether a person is talking",
                                              "content": json_of("Chat")},
                                      "404": _error("no such case"), **AUTH_ERRORS}},
                "post": {"summary": "Write to the reporter; the assistant steps aside until the chat is closed",
                         "operationId": "sendChat", "parameters": [REF],
                         "requestBody": {"required": True, "content": {"application/json": {"schema": {
                             "type": "object", "required": ["text"], "additionalProperties": False,
                             "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 4000}}}}}},
                         "responses": {"200": {"description": "what reached the citizen", "content": {
                             "application/json": {"schema": {"type": "object", "properties": {
                                 "delivered": {"type": "string"}}}}}},
                                       "400": _error("the body is not JSON"), "404": _error("no such case"),
                                       "409": _error("the citizen chose no contact, or was erased"),
                                       "422": _error("no text, or too long"), **AUTH_ERRORS}},
                "delete": {"summary": "Hand the conversation back to the assistant", "operationId": "endChat",
                           "parameters": [REF],
                           "responses": {"200": {"description": "closed", "content": {"application/json": {}}},
                                         "404": _error("no such case"), **AUTH_ERRORS}},
            },
            "/api/v1/alerts": {
                "get": {"summary": "Neighbourhood alerts, newest first, with their delivery (community, admin)",
                        "operationId": "listAlerts",
                        "parameters": [{"name": "limit", "in": "query",
                                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
                                       {"name": "offset", "in": "query",
                                        "schema": {"type": "integer", "minimum": 0, "maximum": 1_000_000}}],
                        "responses": {"200": {"description": "a page of alerts", "content": json_of("AlertList")},
                                      "400": _error("the pagination is out of range"), **AUTH_ERRORS}},
                "post": {"summary": "Warn the subscribers of some neighbourhoods, each in their language "
                                    "(community, admin)",
                         "operationId": "createAlert",
                         "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {
                             "type": "string", "minLength": 1, "maxLength": 200},
                             "description": "a retried POST with the same key returns the first alert (200)"}],
                         "requestBody": {"required": True, "content": json_of("AlertCreate")},
                         "responses": {"201": {"description": "stored, and one message queued per subscriber",
                                               "content": json_of("Alert")},
                                       "200": {"description": "a retry: the alert stored with this Idempotency-Key",
                                               "content": json_of("Alert")},
                                       "400": _error("the body is not JSON, or the Idempotency-Key is too long"),
                                       "409": _error("the Idempotency-Key was used for a different alert"),
                                       "422": _error("unknown neighbourhood, severity or language, no text, a text "
                                                     "over 1000 characters, or an expiry in the past"),
                                       **AUTH_ERRORS}},
            },
            "/api/v1/alerts/{alert_id}": {"get": {
                "summary": "One alert and its delivery report (community, admin)", "operationId": "getAlert",
                "parameters": [ALERT_ID],
                "responses": {"200": {"description": "the alert", "content": json_of("Alert")},
                              "404": _error("no such alert"), **AUTH_ERRORS},
            }},
            "/api/v1/alerts/{alert_id}/cancel": {"post": {
                "summary": "Cancel an alert: its unsent messages are withdrawn (its author, or an admin)",
                "operationId": "cancelAlert", "parameters": [ALERT_ID],
                "responses": {"200": {"description": "the cancelled alert", "content": json_of("Alert")},
                              "404": _error("no such alert"), **AUTH_ERRORS},
            }},
            "/api/v1/openapi.json": {"get": {
                "summary": "This document", "operationId": "openapi", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }},
        },
    }


async def serve_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())
