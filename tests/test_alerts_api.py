"""The alerts API on a real bot service and a real database: roles, validation, fan-out once
per subscriber (also when the POST is retried), the delivery report, cancelling, and the
OpenAPI schemas against real responses."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sqlalchemy import update
from sqlmodel import select

from bot.api.openapi import openapi_document
from storage.db import session_scope
from storage.models import AuditLog, OutboxMessage, Reporter, Subscription, SurveyResponse, utcnow
from storage.outbox import decode_payload
from tests.conftest import StaffApp, start_staff_app

ALERT = {"neighbourhoods": ["01-01", "06-31"], "severity": "warning",
         "texts": {"en": "Water cut tomorrow from 8 to 12.", "es": "Corte de agua mañana de 8 a 12."}}


@pytest.fixture
async def staff(tmp_path: Path, aiohttp_client: Any) -> StaffApp:
    return await start_staff_app(tmp_path, aiohttp_client)


def auth(staff: StaffApp, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff.tokens[role]}"}


def subscribe(staff: StaffApp, *codes: str, locale: str = "es", channel: str = "telegram") -> uuid.UUID:
    with session_scope(staff.db) as session:
        reporter = Reporter(channel=channel, sender_id=f"{channel}:{uuid.uuid4().hex[:12]}", locale=locale)
        session.add(reporter)
        session.flush()
        session.add_all([Subscription(reporter_id=reporter.id, neighbourhood_code=code) for code in codes])
        return reporter.id


def outbox(staff: StaffApp, alert_id: str) -> list[OutboxMessage]:
    with session_scope(staff.db) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.alert_id == uuid.UUID(alert_id))).all())


def check_schema(body: Any, name: str) -> None:
    document = openapi_document()
    schema = {**document["components"]["schemas"][name], "components": document["components"]}
    jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)


async def test_only_community_and_admin_users_work_with_alerts(staff: StaffApp) -> None:
    client = staff.client
    for method, path in (("POST", "/api/v1/alerts"), ("GET", "/api/v1/alerts"),
                         ("GET", f"/api/v1/alerts/{uuid.uuid4()}"), ("POST", f"/api/v1/alerts/{uuid.uuid4()}/cancel")):
        kwargs = {"json": ALERT} if path == "/api/v1/alerts" and method == "POST" else {}
        assert (await client.request(method, path, **kwargs)).status == 401
        assert (await client.request(method, path, headers={"Authorization": "Bearer barri_nope"}, **kwargs)).status == 401
        refused = await client.request(method, path, headers=auth(staff, "dispatcher"), **kwargs)
        assert refused.status == 403 and "dispatcher" in (await refused.json())["error"]
    with session_scope(staff.db) as session:
        assert session.exec(select(OutboxMessage)).all() == []
    for role in ("community", "admin"):
        created = await client.post("/api/v1/alerts", json=ALERT, headers=auth(staff, role))
        assert created.status == 201, await created.text()
        assert (await client.get("/api/v1/alerts", headers=auth(staff, role))).status == 200


async def test_fan_out_once_per_subscriber_in_their_language(staff: StaffApp) -> None:
    both = subscribe(staff, "01-01", "06-31", locale="es")
    catalan = subscribe(staff, "06-31", locale="ca", channel="web")
    subscribe(staff, "01-02")  # another neighbourhood
    response = await staff.client.post("/api/v1/alerts", json=ALERT, headers=auth(staff, "community"))
    assert response.status == 201
    body = await response.json()
    check_schema(body, "Alert")
    assert response.headers["Location"] == f"/api/v1/alerts/{body['id']}"
    assert body["recipients"] == 2 and body["state"] == "active" and body["created_by"] == "community1"
    assert body["neighbourhoods"] == [{"code": "01-01", "name": "el Raval", "district": "Ciutat Vella"},
                                      {"code": "06-31", "name": "la Vila de Gràcia", "district": "Gràcia"}]
    assert body["delivery"] == {"sent": 0, "pending": 2, "failed": 0, "unreachable": 0, "cancelled": 0, "total": 2}
    rows = {row.reporter_id: row for row in outbox(staff, body["id"])}
    assert set(rows) == {both, catalan}
    assert decode_payload(rows[both].payload)[0] == (
        "⚠️ Precaución · Aviso para el Raval, la Vila de Gràcia\n\nCorte de agua mañana de 8 a 12.")
    assert decode_payload(rows[catalan].payload)[0] == (
        "⚠️ Precaució · Avís per a la Vila de Gràcia\n\nWater cut tomorrow from 8 to 12.")  # default: English
    assert not any(row.urgent for row in rows.values())

    danger = await staff.client.post("/api/v1/alerts", headers=auth(staff, "admin"),
                                     json={**ALERT, "severity": "danger", "neighbourhoods": ["01-01"]})
    assert [row.urgent for row in outbox(staff, (await danger.json())["id"])] == [True]


async def test_a_retried_post_with_the_same_idempotency_key_creates_nothing_more(staff: StaffApp) -> None:
    for _ in range(3):
        subscribe(staff, "01-01")
    headers = {**auth(staff, "community"), "Idempotency-Key": "form-7f3a"}
    first = await staff.client.post("/api/v1/alerts", json=ALERT, headers=headers)
    again = await staff.client.post("/api/v1/alerts", json=ALERT, headers=headers)
    assert (first.status, again.status) == (201, 200) and again.headers["Idempotent-Replayed"] == "true"
    one, two = await first.json(), await again.json()
    assert one["id"] == two["id"] and two["recipients"] == 3
    assert len(outbox(staff, one["id"])) == 3
    listed = await (await staff.client.get("/api/v1/alerts", headers=auth(staff, "admin"))).json()
    assert listed["total"] == 1
    changed = await staff.client.post("/api/v1/alerts", json={**ALERT, "severity": "info"}, headers=headers)
    assert changed.status == 409 and "Idempotency-Key" in (await changed.json())["error"]
    too_long = await staff.client.post("/api/v1/alerts", json=ALERT,
                                       headers={**auth(staff, "community"), "Idempotency-Key": "k" * 201})
    assert too_long.status == 400
    without = await staff.client.post("/api/v1/alerts", json=ALERT, headers=auth(staff, "community"))
    assert without.status == 201 and (await without.json())["id"] != one["id"]


@pytest.mark.parametrize(("body", "status", "field", "words"), [
    ("not json", 400, None, "JSON"),
    ([1, 2], 422, None, "JSON object"),
    ({**ALERT, "colour": "red"}, 422, "colour", "Extra inputs"),
    ({**ALERT, "neighbourhoods": []}, 422, "neighbourhoods", "at least 1"),
    ({**ALERT, "neighbourhoods": ["01-01", "77-77"]}, 422, "neighbourhoods", "77-77"),
    ({**ALERT, "neighbourhoods": "01-01"}, 422, "neighbourhoods", "valid array"),
    ({**ALERT, "severity": "red"}, 422, "severity", "info, warning, danger"),
    ({**ALERT, "texts": {}}, 422, "texts", "at least 1"),
    ({**ALERT, "texts": {"en": "  "}}, 422, "texts", "at least one language"),
    ({**ALERT, "texts": {"fr": "Attention"}}, 422, "texts.fr", "en, es, ca"),
    ({**ALERT, "texts": {"en": "x" * 1001}}, 422, "texts.en", "at most 1000"),
    ({**ALERT, "expires_at": "2020-01-01T00:00:00+00:00"}, 422, "expires_at", "future"),
    ({**ALERT, "expires_at": "2099-01-01T00:00:00"}, 422, "expires_at", "timezone"),
    ({**ALERT, "expires_at": "tomorrow"}, 422, "expires_at", "datetime"),
])
async def test_bad_alerts_get_clear_answers_and_store_nothing(staff: StaffApp, body: Any, status: int,
                                                              field: str | None, words: str) -> None:
    subscribe(staff, "01-01")
    data = body if isinstance(body, str) else json.dumps(body)
    response = await staff.client.post("/api/v1/alerts", data=data, headers={**auth(staff, "community"),
                                                                            "Content-Type": "application/json"})
    assert response.status == status
    answer = await response.json()
    check_schema(answer, "Error")
    if field is None:
        assert words in answer["error"]
    else:
        assert any(d["field"] == field and words in d["problem"] for d in answer["details"]), answer
    with session_scope(staff.db) as session:
        assert session.exec(select(OutboxMessage)).all() == []
        assert session.exec(select(AuditLog).where(AuditLog.action == "alert.created")).all() == []


async def test_delivery_report_and_cancel(staff: StaffApp) -> None:
    people = [subscribe(staff, "01-01") for _ in range(5)]
    expires = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    created = await (await staff.client.post("/api/v1/alerts", json={**ALERT, "expires_at": expires},
                                             headers=auth(staff, "community"))).json()
    with session_scope(staff.db) as session:
        for person, status in zip(people, ["sent", "sent", "failed", "unreachable", "pending"], strict=True):
            session.execute(update(OutboxMessage).where(OutboxMessage.reporter_id == person).values(status=status))
    url = f"/api/v1/alerts/{created['id']}"
    detail = await (await staff.client.get(url, headers=auth(staff, "admin"))).json()
    check_schema(detail, "Alert")
    assert detail["delivery"] == {"sent": 2, "pending": 1, "failed": 1, "unreachable": 1, "cancelled": 0, "total": 5}
    assert datetime.fromisoformat(detail["expires_at"]) == datetime.fromisoformat(expires)

    cancelled = await staff.client.post(url + "/cancel", headers=auth(staff, "community"))
    assert cancelled.status == 200
    body = await cancelled.json()
    check_schema(body, "Alert")
    assert body["state"] == "cancelled" and body["withdrawn"] == 1 and body["cancelled_at"]
    assert body["delivery"] == {"sent": 2, "pending": 0, "failed": 1, "unreachable": 1, "cancelled": 1, "total": 5}
    assert (await (await staff.client.post(url + "/cancel", headers=auth(staff, "admin"))).json())["withdrawn"] == 0
    assert (await staff.client.get("/api/v1/alerts/not-a-uuid", headers=auth(staff, "admin"))).status == 404
    assert (await staff.client.get(f"/api/v1/alerts/{uuid.uuid4()}", headers=auth(staff, "admin"))).status == 404
    assert (await staff.client.post(f"/api/v1/alerts/{uuid.uuid4()}/cancel",
                                    headers=auth(staff, "admin"))).status == 404

    listed = await staff.client.get("/api/v1/alerts?limit=1", headers=auth(staff, "community"))
    page = await listed.json()
    check_schema(page, "AlertList")
    assert page["total"] == 1 and page["items"][0]["delivery"]["cancelled"] == 1
    assert (await staff.client.get("/api/v1/alerts?limit=0", headers=auth(staff, "admin"))).status == 400
    assert (await staff.client.get("/api/v1/alerts?colour=1", headers=auth(staff, "admin"))).status == 400
    with session_scope(staff.db) as session:
        actions = [a.action for a in session.exec(select(AuditLog).where(AuditLog.subject_type == "alert")).all()]
    assert sorted(actions) == ["alert.cancelled", "alert.cancelled", "alert.created"]


async def test_stats_include_the_surveys_and_perceived_safety(staff: StaffApp) -> None:
    from storage import cases as case_store
    from storage.models import CaseCreate

    with session_scope(staff.db) as session:
        answers = [("01-01", 2, True, 4), ("01-01", 4, False, 2), ("06-31", 5, True, 5), (None, None, None, None)]
        for index, (code, safety, solved, satisfaction) in enumerate(answers):
            case = case_store.create_case(session=session, case_in=CaseCreate(
                sender_id=f"web:s{index}", channel="web", locale="en", category="noise", neighbourhood_code=code))
            session.add(SurveyResponse(case_id=case.id, neighbourhood_code=code, safety=safety, solved=solved,
                                       satisfaction=satisfaction, answered_at=utcnow() if safety else None))
    stats = await (await staff.client.get("/api/v1/stats", headers=auth(staff, "dispatcher"))).json()
    check_schema(stats, "Stats")
    assert stats["surveys"] == {"answered": 3, "mean_satisfaction": 3.67, "satisfaction_answers": 3,
                                "solved_rate": 0.667, "solved_answers": 3, "mean_safety": 3.67, "safety_answers": 3}
    week = stats["safety_by_neighbourhood_week"]
    assert [(p["neighbourhood"], p["mean"], p["answers"]) for p in week] == [("01-01", 3.0, 2), ("06-31", 5.0, 1)]
