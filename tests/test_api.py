"""The staff REST API on a real bot service and a real database: every route checked for
401/403, filters, transitions, citizen notifications, and the OpenAPI document against the
real routes and real responses."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient
from sqlmodel import select

from bot.api.openapi import openapi_document
from storage import attachments as attachment_store
from storage import cases as case_store
from storage.db import session_scope
from storage.models import AuditLog, CaseCreate
from tests.conftest import start_staff_app

PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 40


class Desk:
    def __init__(self, client: TestClient, tokens: dict[str, str], db: Any) -> None:
        self.client = client
        self.tokens = tokens
        self.db = db

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def new_case(self, sender: str = "web:someone", **fields: Any) -> str:
        values = {"sender_id": sender, "channel": "web", "locale": "es", "category": "noise",
                  "description": "música muy alta cada noche", "contact_mode": "chat", **fields}
        with session_scope(self.db) as session:
            photo = attachment_store.add_pending_attachment(session=session, sender_id=sender, data=PNG, mime_type="image/png")
            case = case_store.create_case(session=session, case_in=CaseCreate(**values, attachment_ids=[photo.id]))
            return case.ref


@pytest.fixture
async def desk(tmp_path: Path, aiohttp_client) -> Desk:
    # no quiet hours: status messages go through the outbox, which would hold them at night
    app = await start_staff_app(tmp_path, aiohttp_client, quiet_hours_start="00:00", quiet_hours_end="00:00")
    return Desk(app.client, app.tokens, app.db)


def api_routes(client: TestClient) -> list[tuple[str, str]]:
    found = []
    for route in client.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith("/api/v1") and route.method != "HEAD" and not path.endswith("openapi.json"):
            found.append((route.method, path))
    return found


async def test_every_staff_route_needs_a_token_and_the_right_role(desk: Desk) -> None:
    ref = desk.new_case()
    # the alert routes are for community and admin users: tests/test_alerts_api.py checks them
    routes = [route for route in api_routes(desk.client) if not route[1].startswith("/api/v1/alerts")]
    assert len(routes) >= 4
    for method, path in routes:
        url = path.replace("{ref}", ref).replace("{attachment_id}", "0f8fad5b-d9cb-469f-a165-70867728950e")
        kwargs = {"json": {"priority": "high"}} if method == "PATCH" else {}
        anonymous = await desk.client.request(method, url, **kwargs)
        assert anonymous.status == 401, (method, path)
        wrong = await desk.client.request(method, url, headers={"Authorization": "Bearer barri_nope"}, **kwargs)
        assert wrong.status == 401, (method, path)
        community = await desk.client.request(method, url, headers=desk.auth("community"), **kwargs)
        assert community.status == 403, (method, path)
        allowed = "admin" if path.endswith("/audit") else "dispatcher"
        if allowed == "admin":
            assert (await desk.client.request(method, url, headers=desk.auth("dispatcher"))).status == 403
        permitted = await desk.client.request(method, url, headers=desk.auth(allowed), **kwargs)
        assert permitted.status not in (401, 403), (method, path)


async def test_list_filters_and_pagination(desk: Desk) -> None:
    desk.new_case(category="theft", priority="urgent", neighbourhood_code="06-31", neighbourhood_name="la Vila de Gràcia")
    desk.new_case(category="noise")
    desk.new_case(category="noise")
    response = await desk.client.get("/api/v1/cases?category=noise&limit=1", headers=desk.auth("dispatcher"))
    body = await response.json()
    assert body["total"] == 2 and len(body["items"]) == 1 and body["items"][0]["category"] == "noise"
    everything = await (await desk.client.get("/api/v1/cases", headers=desk.auth("admin"))).json()
    assert everything["items"][0]["priority"] == "urgent"  # urgent first
    by_place = await (await desk.client.get("/api/v1/cases?neighbourhood=06-31", headers=desk.auth("admin"))).json()
    assert [c["category"] for c in by_place["items"]] == ["theft"]
    for bad in ("limit=0", "limit=500", "offset=-1", "status=lost", "since=yesterday", "colour=red", "limit=abc"):
        response = await desk.client.get(f"/api/v1/cases?{bad}", headers=desk.auth("dispatcher"))
        assert response.status == 400, bad
        assert (await response.json())["error"]


async def test_detail_has_photos_history_and_audited_contact(desk: Desk) -> None:
    ref = desk.new_case(contact_mode="contact", contact_name="Laia Soler", contact_phone="600111222")
    anonymous_ref = desk.new_case(contact_mode="anonymous")
    detail = await (await desk.client.get(f"/api/v1/cases/{ref}", headers=desk.auth("dispatcher"))).json()
    assert detail["contact"] == {"name": "Laia Soler", "phone": "600111222", "email": None}
    assert detail["attachments"][0]["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert [h["kind"] for h in detail["history"]] == ["created"]
    photo = await desk.client.get(detail["attachments"][0]["url"], headers=desk.auth("dispatcher"))
    assert photo.status == 200 and await photo.read() == PNG
    other = await (await desk.client.get(f"/api/v1/cases/{anonymous_ref}", headers=desk.auth("dispatcher"))).json()
    assert other["contact"] is None
    with session_scope(desk.db) as session:
        audit = session.exec(select(AuditLog).where(AuditLog.action == "case.read_contact")).all()
        assert [a.actor for a in audit] == ["dispatcher1"]
    missing = await desk.client.get("/api/v1/cases/ZZZ-999", headers=desk.auth("dispatcher"))
    assert missing.status == 404


async def test_status_life_and_bad_changes(desk: Desk) -> None:
    ref = desk.new_case()
    other = desk.new_case()
    patch = lambda body: desk.client.patch(f"/api/v1/cases/{ref}", json=body, headers=desk.auth("dispatcher"))  # noqa: E731
    ok = await patch({"status": "acknowledged", "assignee": "patrol-7", "internal_note": "send the night patrol"})
    assert ok.status == 200
    body = await ok.json()
    assert body["status"] == "acknowledged" and body["assignee"] == "patrol-7" and body["acknowledged_at"]
    illegal = await patch({"status": "closed"})
    assert illegal.status == 409 and "cannot become closed" in (await illegal.json())["error"]
    assert (await patch({"status": "duplicate"})).status == 409
    assert (await patch({"status": "duplicate", "duplicate_of": ref})).status == 409
    assert (await patch({"colour": "red"})).status == 422
    assert (await patch({"priority": 3})).status == 422
    assert (await patch({})).status == 422
    raw = await desk.client.patch(f"/api/v1/cases/{ref}", data=b"{not json", headers={
        **desk.auth("dispatcher"), "Content-Type": "application/json"})
    assert raw.status == 400
    joined = await patch({"status": "duplicate", "duplicate_of": other.lower().replace("-", "")})
    assert joined.status == 200 and (await joined.json())["status"] == "duplicate"


async def test_the_citizen_hears_back_in_their_language_unless_anonymous(desk: Desk) -> None:
    ws = await desk.client.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello", "session": None, "locale": "es-ES"})
    sender = (await ws.receive_json(timeout=5))["sender"]
    ref = desk.new_case(sender=sender, locale="es", contact_mode="chat")
    response = await desk.client.patch(f"/api/v1/cases/{ref}", headers=desk.auth("dispatcher"),
                                       json={"status": "in_progress", "public_note": "Una patrulla pasará esta noche."})
    body = await response.json()
    assert body["citizen_notified"] == "queued"  # in the outbox; the web-chat worker sends it at once
    message = await ws.receive_json(timeout=5)
    assert message["type"] == "message" and message["kind"] == "status"
    assert message["text"].startswith(f"Tu aviso {ref} está ahora: en curso.")
    assert "Una patrulla pasará esta noche." in message["text"]
    assert any(h["kind"] == "citizen_notified" for h in body["history"])

    quiet = desk.new_case(sender=sender, contact_mode="anonymous")
    response = await desk.client.patch(f"/api/v1/cases/{quiet}", headers=desk.auth("dispatcher"), json={"status": "acknowledged"})
    assert (await response.json())["citizen_notified"].startswith("not sent")
    await ws.close()


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "components": document["components"]}


async def test_openapi_document_matches_the_real_routes_and_responses(desk: Desk) -> None:
    document = await (await desk.client.get("/api/v1/openapi.json")).json()
    assert document == openapi_document()
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item
                  if not path.endswith("openapi.json")}
    assert documented == set(api_routes(desk.client))
    for path in document["paths"]:
        assert re.fullmatch(r"/api/v1/[a-z0-9/{}_.]+", path)

    ref = desk.new_case()
    schemas = document["components"]["schemas"]

    def check(payload: Any, name: str) -> None:
        jsonschema.validate(payload, {"$ref": f"#/components/schemas/{name}", "components": {"schemas": schemas}})

    check(await (await desk.client.get("/api/v1/cases", headers=desk.auth("admin"))).json(), "CaseList")
    check(await (await desk.client.get(f"/api/v1/cases/{ref}", headers=desk.auth("admin"))).json(), "CaseDetail")
    changed = await desk.client.patch(f"/api/v1/cases/{ref}", json={"priority": "high"}, headers=desk.auth("admin"))
    check(await changed.json(), "CaseDetail")
    check(await (await desk.client.get("/api/v1/cases/ZZZ-999", headers=desk.auth("admin"))).json(), "Error")
    check(await (await desk.client.get("/api/v1/stats", headers=desk.auth("admin"))).json(), "Stats")
    check(await (await desk.client.get("/api/v1/audit", headers=desk.auth("admin"))).json(), "AuditList")
    check(await (await desk.client.get("/api/v1/cases.geojson", headers=desk.auth("admin"))).json(), "FeatureCollection")


async def test_stats_exports_and_audit(desk: Desk) -> None:
    ref = desk.new_case(category="vandalism", neighbourhood_name="el Raval", neighbourhood_code="01-01",
                        description='=HYPERLINK("http://evil.example","click") <script>alert(1)</script>',
                        latitude=41.3809, longitude=2.1734)
    desk.new_case(category="vandalism", neighbourhood_name="el Raval", neighbourhood_code="01-01")
    await desk.client.patch(f"/api/v1/cases/{ref}", json={"status": "acknowledged"}, headers=desk.auth("dispatcher"))
    stats = await (await desk.client.get("/api/v1/stats", headers=desk.auth("dispatcher"))).json()
    row = stats["by_category_neighbourhood_week"][0]
    assert (row["category"], row["neighbourhood"], row["cases"]) == ("vandalism", "el Raval", 2)
    assert stats["median_hours_to_acknowledge"] is not None and stats["median_hours_to_resolve"] is None

    exported = await desk.client.get("/api/v1/cases.csv?category=vandalism", headers=desk.auth("dispatcher"))
    assert exported.status == 200 and exported.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO(await exported.text())))
    assert rows[0][0] == "ref" and len(rows) == 3
    cell = next(r for r in rows if r[0] == ref)[rows[0].index("description")]
    assert cell.startswith("'=HYPERLINK")  # inert in a spreadsheet
    geo = await (await desk.client.get("/api/v1/cases.geojson", headers=desk.auth("dispatcher"))).json()
    point = next(f for f in geo["features"] if f["properties"]["ref"] == ref)
    assert point["geometry"]["coordinates"] == [2.1734, 41.3809]

    assert (await desk.client.get("/api/v1/audit", headers=desk.auth("dispatcher"))).status == 403
    audit = await (await desk.client.get("/api/v1/audit?limit=50", headers=desk.auth("admin"))).json()
    actions = {(e["actor"], e["action"]) for e in audit["items"]}
    assert {("dispatcher1", "case.updated"), ("dispatcher1", "cases.exported_csv"),
            ("dispatcher1", "cases.exported_geojson")} <= actions
    assert (await desk.client.get("/api/v1/audit?limit=0", headers=desk.auth("admin"))).status == 400


async def test_likely_duplicates_within_150_m_and_48_h(desk: Desk) -> None:
    first = desk.new_case(category="vandalism", latitude=41.38090, longitude=2.17340)
    near = desk.new_case(category="vandalism", latitude=41.38150, longitude=2.17400)  # about 80 m away
    far = desk.new_case(category="vandalism", latitude=41.39000, longitude=2.17340)  # about 1 km away
    other_kind = desk.new_case(category="noise", latitude=41.38090, longitude=2.17340)
    detail = await (await desk.client.get(f"/api/v1/cases/{near}", headers=desk.auth("dispatcher"))).json()
    assert detail["duplicate_candidates"] == [first]
    assert far not in detail["duplicate_candidates"] and other_kind not in detail["duplicate_candidates"]
    joined = await desk.client.patch(f"/api/v1/cases/{near}", headers=desk.auth("dispatcher"),
                                     json={"status": "duplicate", "duplicate_of": first})
    assert (await joined.json())["status"] == "duplicate"
    detail = await (await desk.client.get(f"/api/v1/cases/{first}", headers=desk.auth("dispatcher"))).json()
    assert detail["duplicate_candidates"] == []  # a joined case is no longer open


async def test_live_conversation_between_a_dispatcher_and_the_citizen(desk: Desk) -> None:
    ws = await desk.client.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello", "session": None, "locale": "ca-ES"})
    sender = (await ws.receive_json(timeout=5))["sender"]
    ref = desk.new_case(sender=sender, locale="ca", contact_mode="chat")

    sent = await desk.client.post(f"/api/v1/cases/{ref}/chat", json={"text": "Hola, de quin color era el cotxe?"},
                                  headers=desk.auth("dispatcher"))
    assert (await sent.json())["delivered"] == "delivered"
    message = await ws.receive_json(timeout=5)
    assert ref in message["text"] and "de quin color era el cotxe?" in message["text"]

    await ws.send_json({"type": "text", "text": "era una furgoneta blanca"})
    frames = [await ws.receive_json(timeout=5), await ws.receive_json(timeout=5)]
    assert [f["type"] for f in frames] == ["typing", "typing"]  # no assistant reply while a person talks
    chat = await (await desk.client.get(f"/api/v1/cases/{ref}/chat", headers=desk.auth("dispatcher"))).json()
    assert chat["live"] is True
    assert [(m["kind"], m["text"]) for m in chat["messages"] if m["kind"].startswith("chat")] == [
        ("chat_staff", "Hola, de quin color era el cotxe?"), ("chat_citizen", "era una furgoneta blanca")]

    closed = await desk.client.delete(f"/api/v1/cases/{ref}/chat", headers=desk.auth("dispatcher"))
    assert (await closed.json())["citizen_notified"] == "delivered"
    assert "assistent" in (await ws.receive_json(timeout=5))["text"].lower()
    await ws.send_json({"type": "text", "text": "gràcies"})  # back to the assistant (whose engine is down here)
    frames = [await ws.receive_json(timeout=5) for _ in range(3)]
    assert any(f["type"] == "message" and "no està disponible" in f["text"] for f in frames)

    anonymous = desk.new_case(sender="web:quiet", contact_mode="anonymous")
    refused = await desk.client.post(f"/api/v1/cases/{anonymous}/chat", json={"text": "hola"}, headers=desk.auth("dispatcher"))
    assert refused.status == 409
    await ws.close()
