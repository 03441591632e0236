"""Open311 GeoReport v2 on a real bot service and a real database: services, posting with an
api_key, public reading without personal data, filters, the 90-day window, JSON and XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlmodel import select

from bot.open311 import routes as open311
from storage import cases as case_store
from storage import erasure
from storage.db import session_scope
from storage.models import AuditLog, Case, CaseCreate, Reporter, utcnow
from tests.conftest import start_staff_app

BASE = "/open311/v2"
NINE = ["theft", "vandalism", "noise", "harassment", "assault", "drugs", "suspicious_activity", "traffic",
        "incivility"]
RAVAL = {"lat": "41.380912", "long": "2.173456"}
PERSONAL = {"email": "laia.soler@example.org", "phone": "+34 600 111 222", "first_name": "Laia",
            "last_name": "Solerdefinitely"}
REQUEST_FIELDS = ["service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"]


class City:
    def __init__(self, client: TestClient, tokens: dict[str, str], db: Any) -> None:
        self.client = client
        self.tokens = tokens
        self.db = db

    async def post(self, fmt: str = "json", role: str | None = "dispatcher", **form: str) -> Any:
        data = {"service_code": "noise", **RAVAL, "description": "loud music every night", **form}
        if role is not None:
            data["api_key"] = self.tokens[role]
        return await self.client.post(f"{BASE}/requests.{fmt}", data=data)

    async def new(self, **form: str) -> str:
        response = await self.post(**form)
        assert response.status == 200, await response.text()
        body = await response.json()
        assert body == [{"service_request_id": body[0]["service_request_id"], "service_notice": "",
                         "account_id": None}]
        return body[0]["service_request_id"]

    async def listing(self, query: str = "") -> list[dict[str, Any]]:
        response = await self.client.get(f"{BASE}/requests.json{query}")
        assert response.status == 200, await response.text()
        return await response.json()

    async def one(self, ref: str, staff: bool = False) -> dict[str, Any]:
        """One request as the public sees it, or (staff) with a dispatcher's api_key."""
        query = f"?api_key={self.tokens['dispatcher']}" if staff else ""
        response = await self.client.get(f"{BASE}/requests/{ref}.json{query}")
        assert response.status == 200, await response.text()
        body = await response.json()
        assert len(body) == 1
        return body[0]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def case(self, ref: str) -> Case:
        with session_scope(self.db) as session:
            found = case_store.get_case_by_ref(session=session, ref=ref)
            assert found is not None
            return found

    def age(self, ref: str, days: int) -> None:
        with session_scope(self.db) as session:
            case = case_store.get_case_by_ref(session=session, ref=ref)
            assert case is not None
            case.created_at = utcnow() - timedelta(days=days)
            session.add(case)


@pytest.fixture
async def city(tmp_path: Path, aiohttp_client) -> City:
    app = await start_staff_app(tmp_path, aiohttp_client)
    return City(app.client, app.tokens, app.db)


def parse(body: bytes) -> ET.Element:
    assert body.startswith(b"<?xml") and b"UTF-8" in body[:60]
    return ET.fromstring(body)


def as_dict(element: ET.Element) -> dict[str, str | None]:
    return {child.tag: child.text for child in element}


def errors_of(body: bytes) -> list[tuple[str | None, str | None]]:
    root = parse(body)
    assert root.tag == "errors"
    return [(e.findtext("code"), e.findtext("description")) for e in root.findall("error")]


# --------------------------------------------------------------------------- services


async def test_services_in_json_and_xml(city: City) -> None:
    response = await city.client.get(f"{BASE}/services.json")
    assert response.status == 200 and response.content_type == "application/json"
    services = await response.json()
    assert [s["service_code"] for s in services] == NINE
    traffic = next(s for s in services if s["service_code"] == "traffic")
    assert traffic["service_name"] == "Dangerous traffic"
    for item in services:
        assert set(item) == {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
        assert item["metadata"] is False and item["type"] == "realtime" and item["group"] == "security"
        assert item["description"] and item["keywords"]

    xml = await city.client.get(f"{BASE}/services.xml")
    assert xml.status == 200 and xml.content_type == "text/xml" and xml.charset == "utf-8"
    root = parse(await xml.read())
    assert root.tag == "services"
    listed = [as_dict(s) for s in root.findall("service")]
    assert [s["service_code"] for s in listed] == NINE
    assert all(s["metadata"] == "false" and s["type"] == "realtime" for s in listed)
    assert [s["service_name"] for s in listed] == [s["service_name"] for s in services]

    spanish = await (await city.client.get(f"{BASE}/services.json?lang=es")).json()
    assert next(s for s in spanish if s["service_code"] == "traffic")["service_name"] == "Tráfico peligroso"
    catalan = await (await city.client.get(f"{BASE}/services.json?lang=ca")).json()
    assert next(s for s in catalan if s["service_code"] == "traffic")["service_name"] == "Trànsit perillós"


async def test_service_definition_unknown_code_and_format(city: City) -> None:
    definition = await (await city.client.get(f"{BASE}/services/theft.json")).json()
    assert definition == {"service_code": "theft", "attributes": []}
    root = parse(await (await city.client.get(f"{BASE}/services/theft.xml")).read())
    assert root.tag == "service_definition" and root.findtext("service_code") == "theft"
    assert root.find("attributes") is not None and len(root.find("attributes")) == 0

    for code in ("parking", "other"):
        missing = await city.client.get(f"{BASE}/services/{code}.json")
        assert missing.status == 404
        body = await missing.json()
        assert len(body) == 1 and body[0]["code"] == 404 and code in body[0]["description"]
    missing_xml = await city.client.get(f"{BASE}/services/parking.xml")
    assert missing_xml.status == 404 and errors_of(await missing_xml.read())[0][0] == "404"

    for path in ("/services.yaml", "/services/theft.html", "/requests.csv", "/requests/ABC-DEF.txt"):
        wrong = await city.client.get(BASE + path)
        assert wrong.status == 404, path
        assert (await wrong.json())[0]["code"] == 404
    assert (await city.client.post(f"{BASE}/requests.csv", data={})).status == 404


# --------------------------------------------------------------------------- posting


async def test_post_with_coordinates_keeps_contact_private(city: City) -> None:
    ref = await city.new(**PERSONAL, address_string="Carrer de l'Hospital 56, 2n 1a")
    case = city.case(ref)
    assert case.channel == "open311" and case.category == "noise" and case.contact_mode == "contact"
    assert case.neighbourhood_name == "el Raval" and case.latitude == pytest.approx(41.380912)
    assert case.locale == "en"
    with session_scope(city.db) as session:
        reporter = session.get(Reporter, case.reporter_id)
        assert reporter.sender_id.startswith("open311:") and len(reporter.sender_id) == len("open311:") + 36
        assert (reporter.contact_email, reporter.contact_phone, reporter.contact_name) == (
            "laia.soler@example.org", "+34 600 111 222", "Laia Solerdefinitely")
        audit = session.exec(select(AuditLog).where(AuditLog.action == "open311.request_created")).all()
        assert [a.actor for a in audit] == ["dispatcher1"]
    staff = await (await city.client.get(f"/api/v1/cases/{ref}", headers=city.auth("dispatcher"))).json()
    assert staff["contact"]["email"] == "laia.soler@example.org"

    public = await city.one(ref)
    assert list(public) == REQUEST_FIELDS
    assert public["service_request_id"] == ref and public["status"] == "open" and public["status_notes"] == ""
    assert public["service_code"] == "noise" and public["service_name"] == "Noise"
    assert public["description"] == "Noise"  # the citizen's words are not public
    assert (await city.one(ref, staff=True))["description"] == "loud music every night"
    assert (public["lat"], public["long"]) == (41.381, 2.173)
    assert public["address"] == "el Raval"
    assert public["expected_datetime"] is None and public["media_url"] is None
    assert public["requested_datetime"].endswith(("+01:00", "+02:00"))

    json_text = await (await city.client.get(f"{BASE}/requests/{ref}.json")).text()
    list_text = await (await city.client.get(f"{BASE}/requests.json")).text()
    xml_text = (await (await city.client.get(f"{BASE}/requests.xml")).read()).decode()
    one_xml = (await (await city.client.get(f"{BASE}/requests/{ref}.xml")).read()).decode()
    for text in (json_text, list_text, xml_text, one_xml):
        assert ref in text
        for secret in ("laia", "soler", "600", "example.org", "open311:", "Hospital", "41.380912", "2.173456",
                       "contact", "sender", "dispatcher"):
            assert secret.lower() not in text.lower(), secret
    request = parse(one_xml.encode()).find("request")
    assert [child.tag for child in request] == REQUEST_FIELDS
    assert as_dict(request)["lat"] == "41.381" and as_dict(request)["address"] == "el Raval"


async def test_post_with_an_address_in_xml(city: City) -> None:
    response = await city.client.post(f"{BASE}/requests.xml", data={
        "api_key": city.tokens["admin"], "service_code": "vandalism", "address_string": "Carrer de Verdi 20, Gràcia",
        "description": "bancs trencats a la plaça", "jurisdiction_id": "barcelona.cat"})
    assert response.status == 200 and response.content_type == "text/xml"
    root = parse(await response.read())
    assert root.tag == "service_requests"
    created = as_dict(root.find("request"))
    ref = created["service_request_id"]
    assert created["service_notice"] is None and created["account_id"] is None  # empty elements
    case = city.case(ref)
    assert case.neighbourhood_code == "06-31" and case.contact_mode == "anonymous"
    # the address read by the chat's resolver: a point on Verdi near its start, in Gràcia
    assert case.address == "Carrer de Verdi 20, Gràcia" and case.location_source == "street_number"
    assert case.latitude is not None and 41.40 < case.latitude < 41.41 and case.location_radius is not None
    public = await city.one(ref)
    assert public["address"] == "la Vila de Gràcia" and public["lat"] is not None
    assert "Verdi" not in await (await city.client.get(f"{BASE}/requests.xml")).text()


@pytest.mark.parametrize(
    ("address", "source", "neighbourhood"),
    [
        ("Mallorca con Pau Claris", "corner", "02-07"),  # where the two streets meet
        ("cantonada Aribau i Diputació", "corner", "02-08"),
        ("davant del Liceu", "landmark", "01-01"),
        ("Gran Via de les Corts Catalanes", "street", None),  # crosses many: no guess, no point
        ("avinguda de Sarrià", "street", None),  # the street, never the neighbourhood Sarrià
        ("Sarrià", "neighbourhood", "05-23"),
        ("en algún sitio", "not_located", None),
    ],
)
async def test_address_string_is_read_like_the_chat_reads_it(
    city: City, address: str, source: str, neighbourhood: str | None
) -> None:
    response = await city.client.post(f"{BASE}/requests.json", data={
        "api_key": city.tokens["dispatcher"], "service_code": "noise", "address_string": address})
    assert response.status == 200, await response.text()
    case = city.case((await response.json())[0]["service_request_id"])
    assert (case.location_source, case.neighbourhood_code) == (source, neighbourhood)
    assert (case.latitude is not None) == (source in ("corner", "landmark"))
    assert case.address == address


async def test_api_key_and_role(city: City) -> None:
    missing = await city.post(role=None)
    assert missing.status == 401
    assert await missing.json() == [{"code": 401, "description": "api_key is required"}]
    wrong = await city.post(role=None, api_key="barri_not-a-real-token")
    assert wrong.status == 401 and (await wrong.json())[0]["code"] == 401
    community = await city.post(role="community")
    assert community.status == 403 and (await community.json())[0]["code"] == 403
    community_xml = await city.post(fmt="xml", role="community")
    assert community_xml.status == 403 and errors_of(await community_xml.read())[0][0] == "403"
    assert (await city.post(role="admin")).status == 200
    with session_scope(city.db) as session:
        assert len(session.exec(select(Case)).all()) == 1


@pytest.mark.parametrize(("form", "problem"), [
    ({"description": "x" * 4001}, "4000"),
    ({"lat": "", "long": ""}, "location"),
    ({"long": ""}, "together"),
    ({"lat": "91"}, "lat"),
    ({"long": "-180.5"}, "long"),
    ({"lat": "nan"}, "lat"),
    ({"lat": "north"}, "lat"),
    ({"service_code": "parking"}, "service_code"),
    ({"service_code": "other"}, "service_code"),
    ({"service_code": ""}, "service_code"),
    ({"email": "not-an-address"}, "email"),
    ({"phone": "6" * 41}, "phone"),
    ({"address_string": "a" * 501, "lat": "", "long": ""}, "address_string"),
])
async def test_invalid_requests_are_refused(city: City, form: dict[str, str], problem: str) -> None:
    response = await city.post(**form)
    assert response.status == 400
    body = await response.json()
    assert len(body) == 1 and body[0]["code"] == 400 and problem in body[0]["description"]
    with session_scope(city.db) as session:
        assert session.exec(select(Case)).all() == []


async def test_the_longest_description_and_no_description(city: City) -> None:
    longest = await city.new(description="y" * 4000)
    assert city.case(longest).description == "y" * 4000
    silent = await city.new(description="")
    assert city.case(silent).description is None and (await city.one(silent, staff=True))["description"] is None


# --------------------------------------------------------------------------- reading


async def test_filters_by_status_code_dates_and_ids(city: City) -> None:
    theft = await city.new(service_code="theft")
    noise = await city.new(service_code="noise")
    drugs = await city.new(service_code="drugs")
    older = await city.new(service_code="noise")
    city.age(older, 10)
    patch = await city.client.patch(f"/api/v1/cases/{drugs}", json={"status": "rejected"},
                                    headers=city.auth("dispatcher"))
    assert patch.status == 200

    refs = lambda items: {i["service_request_id"] for i in items}  # noqa: E731
    assert refs(await city.listing()) == {theft, noise, drugs, older}
    listed = await city.listing()
    assert [i["service_request_id"] for i in listed][-1] == older  # newest first
    assert refs(await city.listing("?status=open")) == {theft, noise, older}
    assert refs(await city.listing("?status=closed")) == {drugs}
    assert refs(await city.listing("?status=open,closed")) == {theft, noise, drugs, older}
    assert refs(await city.listing("?service_code=noise")) == {noise, older}
    assert refs(await city.listing("?service_code=noise,theft&status=open")) == {theft, noise, older}
    five_days_ago = (utcnow() - timedelta(days=5)).isoformat()
    assert refs(await city.listing(f"?start_date={five_days_ago.replace('+', '%2B')}")) == {theft, noise, drugs}
    assert refs(await city.listing(f"?end_date={five_days_ago.replace('+', '%2B')}")) == {older}
    # an unencoded "+" arrives as a space: still understood
    assert refs(await city.listing(f"?end_date={five_days_ago}")) == {older}
    day = (utcnow() - timedelta(days=10)).date().isoformat()
    assert older in refs(await city.listing(f"?start_date={day}T00:00:00Z&end_date={day}T23:59:59Z"))
    ids = f"{theft},{older.lower().replace('-', '')}, nonsense"
    assert refs(await city.listing(f"?service_request_id={ids}")) == {theft, older}
    # service_request_id overrides every other filter
    assert refs(await city.listing(f"?service_request_id={drugs}&status=open&service_code=theft")) == {drugs}

    for bad in ("status=pending", "service_code=parking", "start_date=yesterday", "end_date=2024-13-01",
                "start_date=2024-01-01T00:00:00Z&end_date=2024-06-01T00:00:00Z",
                "start_date=2024-06-01T00:00:00Z&end_date=2024-05-01T00:00:00Z"):
        response = await city.client.get(f"{BASE}/requests.json?{bad}")
        assert response.status == 400, bad
        assert (await response.json())[0]["code"] == 400
    xml_error = await city.client.get(f"{BASE}/requests.xml?status=pending")
    assert xml_error.status == 400 and errors_of(await xml_error.read())[0][0] == "400"


async def test_the_default_window_is_ninety_days_and_at_most_the_limit(
    city: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    recent = await city.new()
    ancient = await city.new()
    city.age(ancient, 100)
    assert [i["service_request_id"] for i in await city.listing()] == [recent]
    since = (utcnow() - timedelta(days=120)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [i["service_request_id"] for i in await city.listing(f"?start_date={since}")] == [ancient]
    assert (await city.one(ancient))["service_request_id"] == ancient
    assert [i["service_request_id"] for i in await city.listing(f"?service_request_id={ancient}")] == [ancient]

    monkeypatch.setattr(open311, "MAX_RESULTS", 2)
    for _ in range(2):
        await city.new()
    assert len(await city.listing()) == 2


async def test_status_follows_the_dispatchers(city: City) -> None:
    ref = await city.new(**PERSONAL)
    staff = {"headers": city.auth("dispatcher")}
    note = "A patrol will pass tonight."
    steps = [({"status": "acknowledged"}, "open", ""),
             ({"status": "in_progress", "public_note": note}, "open", note),
             ({"internal_note": "neighbour at 2n 1a keeps complaining"}, "open", note),
             ({"status": "resolved"}, "closed", note),
             ({"status": "closed"}, "closed", note)]
    for change, public, notes in steps:
        response = await city.client.patch(f"/api/v1/cases/{ref}", json=change, **staff)
        assert response.status == 200, await response.text()
        seen = await city.one(ref, staff=True)
        assert (seen["status"], seen["status_notes"]) == (public, notes), change
        assert (await city.one(ref))["status_notes"] == ""  # the note is for the citizen, not the public
    final = await city.one(ref)
    assert final["status_notes"] == ""
    assert "2n 1a" not in await (await city.client.get(f"{BASE}/requests/{ref}.json")).text()
    assert final["updated_datetime"] >= final["requested_datetime"]

    other = await city.new()
    await city.client.patch(f"/api/v1/cases/{other}", json={"status": "duplicate", "duplicate_of": ref}, **staff)
    assert (await city.one(other))["status"] == "closed"


async def test_unknown_other_and_erased_requests(city: City) -> None:
    missing = await city.client.get(f"{BASE}/requests/ZZZ-999.json")
    assert missing.status == 404 and (await missing.json())[0]["code"] == 404
    assert (await city.client.get(f"{BASE}/requests/nonsense.xml")).status == 404
    with session_scope(city.db) as session:
        other = case_store.create_case(session=session, case_in=CaseCreate(
            sender_id="web:other", channel="web", locale="ca", category="other", description="alguna cosa"))
        chatted = case_store.create_case(session=session, case_in=CaseCreate(
            sender_id="web:erased", channel="web", locale="ca", category="theft", description="em van robar",
            latitude=41.380912, longitude=2.173456, neighbourhood_name="el Raval"))
    assert (await city.client.get(f"{BASE}/requests/{other.ref}.json")).status == 404
    assert other.ref not in {i["service_request_id"] for i in await city.listing()}
    assert (await city.one(chatted.ref))["description"] == "Theft"
    assert (await city.one(chatted.ref, staff=True))["description"] == "em van robar"
    with session_scope(city.db) as session:
        erasure.erase_reporter(session=session, sender_id="web:erased")
    erased = await city.one(chatted.ref, staff=True)
    assert erased["description"] == "Theft" and erased["lat"] == 41.381 and erased["address"] == "el Raval"


async def test_xml_escaping_round_trips(city: City) -> None:
    nasty = '<script>alert("x")</script> & Tom & Jerry ]]> <![CDATA[ x ]]> \'quoted\' — Gràcia'
    ref = await city.new(description=nasty + "\x01\x0b")
    key = f"?api_key={city.tokens['dispatcher']}"
    body = await (await city.client.get(f"{BASE}/requests/{ref}.xml{key}")).read()
    assert b"<script>" not in body
    assert parse(body).find("request").findtext("description") == nasty
    listing = parse(await (await city.client.get(f"{BASE}/requests.xml{key}")).read())
    assert listing.find("request").findtext("description") == nasty
    assert (await city.one(ref, staff=True))["description"] == nasty

    # text stored by another channel with characters XML cannot carry still gives valid XML
    with session_scope(city.db) as session:
        raw = case_store.create_case(session=session, case_in=CaseCreate(
            sender_id="web:raw", channel="web", locale="en", category="noise", description="bell\x07 & <b>"))
    body = await (await city.client.get(f"{BASE}/requests/{raw.ref}.xml{key}")).read()
    assert parse(body).find("request").findtext("description") == "bell & <b>"
