"""Issue #13, privacy: what staff tools, exports and public reads must not leak, on a real bot
service and a real database (sessions and roles of the desk, alerts, the CSV export, Open311
public reads, HSTS and the Telegram webhook secret)."""

from __future__ import annotations

import asyncio
import csv
import hmac
import io
import re
from datetime import datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update
from sqlmodel import select

from bot.app import create_app
from storage import users
from storage.db import create_db_engine, session_scope
from storage.migrate import upgrade_database
from storage.models import Case, StaffSession, StaffUser, utcnow
from tests.conftest import StaffApp, make_settings, start_staff_app
from tests.desk import Desk, csrf_of, sign_in

pytest_plugins = ("tests.desk",)  # the desk fixture

# --------------------------------------------------------------------------- CSV export

FORMULAS = [
    "Robo;=cmd|' /C calc'!A0",
    "Robo,=HYPERLINK(\"http://evil.example\",\"x\")",
    "Robo\t+SUM(1;2)",
    "Robo\n@SUM(A1)",
    "Robo; -2+3",
    "=1+1",
]


@pytest.fixture
async def staff(tmp_path: Path, aiohttp_client: Any) -> StaffApp:
    return await start_staff_app(tmp_path, aiohttp_client)


def auth(staff: StaffApp, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff.tokens[role]}"}


def file_case(staff: StaffApp, **fields: Any) -> str:
    from storage import cases as case_store
    from storage.models import CaseCreate

    values = {"sender_id": f"web:{utcnow().timestamp()}", "channel": "web", "locale": "es", "category": "theft",
              "description": "robo", "contact_mode": "anonymous", **fields}
    with session_scope(staff.db) as session:
        return case_store.create_case(session=session, case_in=CaseCreate(**values)).ref


async def test_the_csv_export_quotes_every_cell_and_defuses_formulas_after_separators(staff: StaffApp) -> None:
    refs = {file_case(staff, description=text): text for text in FORMULAS}
    response = await staff.client.get("/api/v1/cases.csv", headers=auth(staff, "dispatcher"))
    assert response.status == 200
    raw = await response.text()
    # every cell is quoted, so a spreadsheet that splits on ";" (es, ca) cannot cut a cell open
    first_line = raw.split("\r\n", 1)[0]
    assert first_line.startswith('"ref","status"') and first_line.count('"') == 2 * first_line.count(",") + 2
    rows = list(csv.DictReader(io.StringIO(raw)))
    assert {row["ref"] for row in rows} == set(refs)
    for row in rows:
        cell = row["description"]
        # no formula trigger at the start of the cell or right after any separator
        assert not re.search(r"(^|[;,\t\r\n])\s*[=+\-@]", cell), cell
        # ... and nothing else was lost: only an apostrophe was added before each trigger
        assert cell.replace("'", "") == refs[row["ref"]].replace("'", "")


# --------------------------------------------------------------------------- alerts


ALERT = {"neighbourhoods": ["01-01"], "severity": "info", "texts": {"en": "Water cut tomorrow."}}


async def test_a_community_user_cannot_cancel_another_users_alert(staff: StaffApp) -> None:
    with session_scope(staff.db) as session:
        _, other = users.create_user(session=session, name="community2", role="community")
    created = await (await staff.client.post("/api/v1/alerts", json=ALERT, headers=auth(staff, "community"))).json()
    url = f"/api/v1/alerts/{created['id']}/cancel"
    refused = await staff.client.post(url, headers={"Authorization": f"Bearer {other}"})
    assert refused.status == 403
    assert "your own" in (await refused.json())["error"]
    still = await (await staff.client.get(f"/api/v1/alerts/{created['id']}", headers=auth(staff, "admin"))).json()
    assert still["state"] == "active"
    # the author may, and so may an admin
    assert (await staff.client.post(url, headers=auth(staff, "community"))).status == 200
    second = await (await staff.client.post("/api/v1/alerts", json=ALERT, headers=auth(staff, "community"))).json()
    assert (await staff.client.post(f"/api/v1/alerts/{second['id']}/cancel", headers=auth(staff, "admin"))).status == 200


async def test_the_desk_refuses_to_cancel_another_community_users_alert(desk: Desk) -> None:
    with session_scope(desk.db) as session:
        users.create_user(session=session, name="community2", role="community")
        users.set_password(session=session, name="community2", password="correct horse battery staple")
    author = await desk.client("community1")
    page = await (await author.get("/desk/alerts")).text()
    form = {"csrf": csrf_of(page), "severity": "info", "text_en": "Water cut tomorrow.", "neighbourhood": "01-01",
            "key": "k-1"}
    created = await author.post("/desk/alerts", data=form, allow_redirects=False)
    assert created.status == 303, await created.text()
    alert_path = created.headers["Location"].split("?")[0]
    other = await desk.client("community2")
    other_page = await (await other.get(alert_path)).text()
    assert 'id="cancel-form"' not in other_page  # no button for someone else's alert
    refused = await other.post(alert_path + "/cancel", data={"csrf": csrf_of(other_page)}, allow_redirects=False)
    assert refused.status == 403
    own_page = await (await author.get(alert_path)).text()
    assert 'id="cancel-form"' in own_page
    done = await author.post(alert_path + "/cancel", data={"csrf": csrf_of(own_page)}, allow_redirects=False)
    assert done.status == 303


# --------------------------------------------------------------------------- desk sessions and roles


async def test_a_password_change_ends_the_users_other_sessions(desk: Desk) -> None:
    laptop = await desk.client("dispatcher1")
    phone = await desk.client("dispatcher1")
    colleague = await desk.client("admin1")
    with session_scope(desk.db) as session:
        users.set_password(session=session, name="dispatcher1", password="a brand new long password")
    for client in (laptop, phone):
        assert (await client.get("/desk/", allow_redirects=False)).status == 303  # back to sign-in
    assert (await colleague.get("/desk/", allow_redirects=False)).status == 200
    with session_scope(desk.db) as session:
        user = session.exec(select(StaffUser).where(StaffUser.name == "dispatcher1")).one()
        assert session.exec(select(StaffSession).where(StaffSession.user_id == user.id)).all() == []
    assert (await sign_in(await desk.client(), "dispatcher1", "a brand new long password")).status == 303


async def test_live_streams_end_when_the_users_role_no_longer_allows_them(
    desk: Desk, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setattr("bot.dashboard.live.SESSION_CHECK_SECONDS", 0.0)
    ref = desk.new_case()
    dispatcher = await desk.client("dispatcher1")
    streams = [
        await dispatcher.get("/desk/events", headers={"Accept": "text/event-stream"}),
        await dispatcher.get(f"/desk/cases/{ref}/chat/events", params={"after": utcnow().isoformat()},
                             headers={"Accept": "text/event-stream"}),
    ]
    for stream in streams:
        assert stream.status == 200
        assert b"event: ready" in await asyncio.wait_for(stream.content.readuntil(b"event: ready"), timeout=30)
    with session_scope(desk.db) as session:  # an admin moves them to the community team
        session.execute(update(StaffUser).where(StaffUser.name == "dispatcher1").values(role="community"))
        session.commit()
    desk.new_case()  # something to push on the queue stream
    for stream in streams:
        kinds: list[str] = []
        while "signed_out" not in kinds and "forbidden" not in kinds:
            block = (await asyncio.wait_for(stream.content.readuntil(b"\n\n"), timeout=30)).decode()
            kinds += [line[7:] for line in block.splitlines() if line.startswith("event: ")]
            assert "case" not in kinds, "a case was pushed to a user whose role may not read cases"
        assert (await asyncio.wait_for(stream.content.read(), timeout=30)) == b""


# --------------------------------------------------------------------------- headers and webhook secret


async def test_hsts_only_when_the_public_url_is_https(tmp_path: Path, aiohttp_client: Any) -> None:
    plain = await aiohttp_client(create_app(make_settings(tmp_path)))
    assert "Strict-Transport-Security" not in (await plain.get("/desk/login")).headers
    secure = await aiohttp_client(create_app(make_settings(tmp_path, public_url="https://barri.example.org")))
    for path in ("/", "/desk/login", "/no/such/page"):
        header = (await secure.get(path)).headers.get("Strict-Transport-Security", "")
        assert re.fullmatch(r"max-age=(\d+); includeSubDomains", header), (path, header)
        assert int(header.split("=")[1].split(";")[0]) >= 180 * 24 * 3600


def test_the_telegram_webhook_secret_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    from aiohttp.test_utils import make_mocked_request

    from bot.channels.telegram import channel as telegram_channel

    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(telegram_channel.hmac, "compare_digest", spy)
    settings = make_settings(tmp_path, telegram_token="123:abc")
    channel = telegram_channel.TelegramChannel.__new__(telegram_channel.TelegramChannel)
    channel.settings = settings
    channel.application = None
    wrong = make_mocked_request("POST", "/telegram/webhook", headers={"X-Telegram-Bot-Api-Secret-Token": "nope"})
    assert asyncio.run(channel.webhook(wrong)).status == 403
    right = make_mocked_request("POST", "/telegram/webhook",
                                headers={"X-Telegram-Bot-Api-Secret-Token": settings.webhook_secret})
    assert asyncio.run(channel.webhook(right)).status == 503  # past the secret; no bot in this test
    assert len(calls) == 2
    missing = make_mocked_request("POST", "/telegram/webhook")
    assert asyncio.run(channel.webhook(missing)).status == 403



# --------------------------------------------------------------------------- Open311 public reads

OPEN311 = "/open311/v2"


def backdated_case(staff: StaffApp, category: str, at: datetime, **fields: Any) -> str:
    from storage import cases as case_store

    ref = file_case(staff, category=category, latitude=41.380912, longitude=2.173456,
                    neighbourhood_name="el Raval", neighbourhood_code="01-01", **fields)
    with session_scope(staff.db) as session:
        case = case_store.get_case_by_ref(session=session, ref=ref)
        assert case is not None
        case.created_at = case.updated_at = at
        session.add(case)
        session.commit()
    return ref


async def test_open311_public_reads_keep_notes_private_and_coarsen_sensitive_cases(staff: StaffApp) -> None:
    zone = ZoneInfo("Europe/Madrid")
    noon = datetime.combine(datetime.now(zone).date() - timedelta(days=1), dt_time(12, 0), zone)
    at = noon + timedelta(minutes=7, seconds=31)
    sensitive = {category: backdated_case(staff, category, at) for category in ("harassment", "assault", "drugs")}
    theft = backdated_case(staff, "theft", at + timedelta(minutes=1))
    note = "Laia, a patrol will pass by your door at 22:00."
    for ref in (*sensitive.values(), theft):
        response = await staff.client.patch(f"/api/v1/cases/{ref}", json={"public_note": note},
                                            headers=auth(staff, "dispatcher"))
        assert response.status == 200
        with session_scope(staff.db) as session:  # the note must not move the time either
            session.execute(update(Case).where(Case.ref == ref).values(updated_at=at))
            session.commit()

    listing = await (await staff.client.get(f"{OPEN311}/requests.json")).json()
    by_ref = {item["service_request_id"]: item for item in listing}
    assert set(by_ref) == {*sensitive.values(), theft}
    for item in listing:
        assert item["status_notes"] == "", item  # public: the dispatcher's note stays private
    for category, ref in sensitive.items():
        for item in (by_ref[ref], (await (await staff.client.get(f"{OPEN311}/requests/{ref}.json")).json())[0]):
            assert item["requested_datetime"] == noon.replace(hour=0, minute=0).isoformat(), category
            assert item["updated_datetime"] == item["requested_datetime"]
            assert (item["lat"], item["long"]) == (None, None)
            assert item["address"] == "el Raval"
        xml = await (await staff.client.get(f"{OPEN311}/requests/{ref}.xml")).text()
        assert "12:07" not in xml and "41.381" not in xml and "2.173" not in xml
    # other categories keep the time and the point rounded to about 100 m
    assert by_ref[theft]["requested_datetime"].startswith(noon.date().isoformat() + "T12:08:31")
    assert (by_ref[theft]["lat"], by_ref[theft]["long"]) == (41.381, 2.173)
    # a public listing is ordered by day and reference, so its order tells no time
    assert [i["service_request_id"] for i in listing] == sorted(by_ref)
    # nor can a narrow time window find the minute: a sensitive case matches its whole day
    for start, end in ((at - timedelta(seconds=1), at + timedelta(seconds=1)),
                       (at + timedelta(hours=3), at + timedelta(hours=4)),
                       (noon.replace(hour=0, minute=0), noon.replace(hour=0, minute=1))):
        window = {"start_date": start.isoformat(), "end_date": end.isoformat()}
        found = {i["service_request_id"] for i in
                 await (await staff.client.get(f"{OPEN311}/requests.json", params=window)).json()}
        assert set(sensitive.values()) <= found, window
        assert (theft in found) == (start <= at + timedelta(minutes=1) <= end), window
    # staff reads (a dispatcher's api_key) see the note
    staff_read = await (await staff.client.get(f"{OPEN311}/requests/{sensitive['harassment']}.json",
                                               params={"api_key": staff.tokens["dispatcher"]})).json()
    assert staff_read[0]["status_notes"] == note


# --------------------------------------------------------------------------- web chat after retention


def converse_in_tracker(settings: Any, sender_id: str) -> None:
    from tests.test_retention import say_in_tracker

    tracker = create_db_engine(settings.tracker_store_url)
    say_in_tracker(tracker, sender_id, "hola", ago=timedelta(minutes=5))
    tracker.dispose()


async def test_the_welcome_says_whether_the_sessions_conversation_is_still_kept(tmp_path: Path,
                                                                               aiohttp_client: Any) -> None:
    from bot.channels.webchat.channel import SessionTokens
    from storage.inbox import keep_message

    settings = make_settings(tmp_path)
    upgrade_database(settings.database_url)
    client = await aiohttp_client(create_app(settings))
    tokens = SessionTokens(settings.secret_key, settings.webchat_session_idle_days * 24 * 3600)
    (talking, talking_token), (erased, erased_token), (waiting, waiting_token) = (tokens.issue() for _ in range(3))
    converse_in_tracker(settings, talking)
    db = create_db_engine(settings.database_url)
    with session_scope(db) as session:  # typed while the engine was down: kept for replay
        keep_message(session=session, sender_id=waiting, channel="web", text="hola", metadata={})
    db.dispose()

    async def welcome_for(token: str | None) -> dict[str, Any]:
        ws = await client.ws_connect("/webchat/ws")
        await ws.send_json({"type": "hello", "session": token, "locale": "ca"})
        answer = await ws.receive_json(timeout=10)
        await ws.close()
        return answer

    for token in (talking_token, waiting_token):
        welcome = await welcome_for(token)
        assert (welcome["session"], welcome["conversation"]) == (token, True)
    # erased by retention: the session goes on (a subscriber's alerts still reach it), but the
    # page is told that nothing of its conversation is kept, so it forgets its copy
    welcome = await welcome_for(erased_token)
    assert (welcome["type"], welcome["session"], welcome["sender"], welcome["conversation"]) == \
        ("welcome", erased_token, erased, False)
    fresh = await welcome_for(None)
    assert fresh["conversation"] is False and fresh["session"] != erased_token


@pytest.mark.browser
async def test_the_page_forgets_its_transcript_when_the_session_is_gone(tmp_path: Path, aiohttp_server: Any) -> None:
    from playwright.async_api import async_playwright, expect

    from bot.channels.webchat.channel import SessionTokens
    from tests.test_dashboard import CHROMIUM, CHROMIUM_ARGS

    settings = make_settings(tmp_path)
    upgrade_database(settings.database_url)
    server = await aiohttp_server(create_app(settings))
    _, erased_token = SessionTokens(settings.secret_key, settings.webchat_session_idle_days * 24 * 3600).issue()  # its conversation is gone
    transcript = [{"id": 1, "kind": "user", "text": "Em dic Montserrat Ferrer, 612 345 678", "buttons": []},
                  {"id": 2, "kind": "bot", "text": "Gràcies", "buttons": [{"title": "Sí", "payload": "/affirm"}]}]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await (await browser.new_context(locale="ca-ES")).new_page()
        await page.goto(str(server.make_url("/static/webchat/favicon.svg")))  # same origin, to seed storage
        await page.evaluate("([token, transcript]) => { localStorage.setItem('barri.session', token);"
                            " localStorage.setItem('barri.transcript', JSON.stringify(transcript)); }",
                            [erased_token, transcript])
        await page.goto(str(server.make_url("/?lang=ca")))
        await expect(page.locator("#send-button")).to_be_enabled(timeout=15_000)
        await expect(page.locator(".msg.notice")).to_have_text("La teva conversa anterior ja no es conserva. "
                                                               "En pots començar una de nova.")
        await expect(page.locator("#messages")).not_to_contain_text("Montserrat")
        stored = await page.evaluate("() => [localStorage.getItem('barri.session'),"
                                     " localStorage.getItem('barri.transcript') || '']")
        # the session goes on (the same sender id, its token renewed); its old transcript does not
        assert stored[0].split(".")[0] == erased_token.split(".")[0]
        assert "Montserrat" not in stored[1] and "612" not in stored[1]
        await page.reload()  # it does not come back, and the notice is not repeated at every visit
        await expect(page.locator("#send-button")).to_be_enabled(timeout=15_000)
        await expect(page.locator(".msg.notice")).to_have_count(0)
        await expect(page.locator("#messages")).not_to_contain_text("Montserrat")
        await browser.close()
