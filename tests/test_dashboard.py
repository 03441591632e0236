"""The dispatcher dashboard (/desk) on a real bot service and a real database: sign-in,
sessions, CSRF and Origin checks, throttling, every route's access rules, the audit of
photos and contact details; and in Debian's headless Chromium the live queue, the case page,
the map, the stats, the escaping of citizen text, and the screenshots (results/screenshots)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from sqlalchemy import update
from sqlmodel import select

from bot.app import create_app
from bot.dashboard import svg
from common.geo import Neighbourhoods
from common.settings import PROJECT_ROOT
from storage import attachments as attachment_store
from storage import cases as case_store
from storage import users
from storage.db import session_scope
from storage.models import StaffSession, utcnow
from tests.desk import PASSWORD, Desk, backdate, csrf_of, sign_in

pytest_plugins = ("tests.desk",)  # the desk fixture

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
# Test runs write their screenshots under results/; `make screenshots` copies them to docs/.
SCREENSHOTS = PROJECT_ROOT / "results" / "screenshots"
# A 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000b4944415478da636000020000050001e9fadcd80000000049454e44ae426082"
)
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
LINK = '<a href="javascript:alert(1)">open</a> javascript:alert(1)'
RAVAL = {"latitude": 41.3809, "longitude": 2.1734, "neighbourhood_code": "01-01",
         "neighbourhood_name": "el Raval", "district_name": "Ciutat Vella"}
GRACIA = {"latitude": 41.4022, "longitude": 2.1570, "neighbourhood_code": "06-31",
          "neighbourhood_name": "la Vila de Gràcia", "district_name": "Gràcia"}


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make chromium` installs it")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@dataclass
class Tab:
    page: Page
    problems: list[str]


def watch(page: Page) -> list[str]:
    """Dialogs (alert, confirm...), console errors and uncaught exceptions of the page."""
    problems: list[str] = []

    def on_dialog(dialog: Any) -> None:
        problems.append(f"dialog: {dialog.message}")
        asyncio.ensure_future(dialog.dismiss())

    page.on("dialog", on_dialog)
    page.on("console", lambda message: problems.append(f"console: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
    return problems


async def open_tab(browser: Browser, desk: Desk, name: str | None = "dispatcher1",
                   viewport: tuple[int, int] = (1280, 800)) -> Tab:
    context = await browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, locale="en-GB",
                                        timezone_id="Europe/Madrid")
    page = await context.new_page()
    problems = watch(page)
    if name is not None:
        await page.goto(desk.url("/desk/login"))
        await page.fill("#name", name)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(re.compile(r"/desk/$"))
    return Tab(page, problems)


async def no_injected_markup(page: Page) -> None:
    found = await page.evaluate("""() => ({
        images: document.querySelectorAll('img[src="x"]').length,
        scripts: [...document.scripts].filter(s => !s.src).length,
        links: [...document.querySelectorAll('a')].map(a => a.getAttribute('href') || '')
                   .filter(h => h.trim().toLowerCase().startsWith('javascript:')).length,
        handlers: document.querySelectorAll('[onerror], [onclick], [onload]').length,
    })""")
    assert found == {"images": 0, "scripts": 0, "links": 0, "handlers": 0}, found


# --------------------------------------------------------------------------- sign-in, sessions, CSRF


async def test_sign_in_sets_a_strict_session_cookie_and_sessions_end(desk: Desk, aiohttp_server, aiohttp_client) -> None:
    client = await desk.client()
    response = await sign_in(client, "dispatcher1")
    assert response.status == 303 and response.headers["Location"] == "/desk/"
    cookie = next(c for c in response.headers.getall("Set-Cookie") if c.startswith("barri_desk="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/desk" in cookie
    assert "Secure" not in cookie  # public_url is not https here
    assert (await client.get("/desk/")).status == 200
    assert [a.actor for a in desk.audit("user.signed_in")] == ["dispatcher1"]

    # 8 hours idle: the session is over and its row is gone
    with session_scope(desk.db) as session:
        session.execute(update(StaffSession).values(last_seen_at=utcnow() - timedelta(hours=8, minutes=1)))
        session.commit()
    expired = await client.get("/desk/", allow_redirects=False)
    assert expired.status == 303 and expired.headers["Location"].startswith("/desk/login?next=")
    with session_scope(desk.db) as session:
        assert session.exec(select(StaffSession)).all() == []

    # logout (POST with the token) ends the session at once
    assert (await sign_in(client, "dispatcher1")).status == 303
    token = csrf_of(await (await client.get("/desk/")).text())
    out = await client.post("/desk/logout", data={"csrf": token}, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/desk/login"
    assert (await client.get("/desk/", allow_redirects=False)).status == 303
    assert [a.actor for a in desk.audit("user.signed_out")] == ["dispatcher1"]

    # a deactivated user is signed out on their next request
    assert (await sign_in(client, "dispatcher1")).status == 303
    with session_scope(desk.db) as session:
        users.deactivate_user(session=session, name="dispatcher1")
    assert (await client.get("/desk/", allow_redirects=False)).status == 303

    # behind https the cookie is Secure
    secure = await aiohttp_server(create_app(desk.settings.model_copy(update={"public_url": "https://barri.example.org"})))
    other = await aiohttp_client(secure)
    form = await other.get("/desk/login")
    login_cookie = form.cookies["barri_desk_login"]
    assert login_cookie["secure"] and login_cookie["httponly"] and login_cookie["samesite"] == "Strict"
    token = re.search(r'name="login_token" value="([^"]+)"', await form.text()).group(1)
    response = await other.post("/desk/login", data={"login_token": token, "name": "admin1", "password": PASSWORD},
                                headers={"Cookie": f"barri_desk_login={login_cookie.value}"}, allow_redirects=False)
    assert response.status == 303
    assert "Secure" in next(c for c in response.headers.getall("Set-Cookie") if c.startswith("barri_desk="))


@pytest.mark.browser
async def test_five_wrong_passwords_then_429(desk: Desk, browser: Browser) -> None:
    tab = await open_tab(browser, desk, name=None)
    await tab.page.goto(desk.url("/desk/login"))
    await tab.page.fill("#name", "dispatcher1")
    await tab.page.fill("#password", "not the password")
    await tab.page.click("button[type=submit]")
    await expect(tab.page.locator("#login-error")).to_have_text("Wrong name or password.")
    await expect(tab.page.locator("#name")).to_have_value("dispatcher1")
    await tab.page.context.close()

    client = await desk.client()
    for _ in range(4):
        response = await sign_in(client, "dispatcher1", "still wrong!!")
        assert response.status == 401 and "Wrong name or password." in await response.text()
    blocked = await sign_in(client, "dispatcher1")  # even the right password waits now
    assert blocked.status == 429
    assert "Too many failed sign-in attempts" in await blocked.text()
    assert 0 < int(blocked.headers["Retry-After"]) <= 900
    assert "barri_desk=" not in " ".join(blocked.headers.getall("Set-Cookie", []))
    # only that name waits: the desk is not locked for everyone at this address
    assert (await sign_in(client, "admin1")).status == 303


async def test_every_form_carries_a_token_and_posts_without_it_are_refused(desk: Desk) -> None:
    ref = desk.new_case()
    dispatcher = await desk.client("dispatcher1")
    admin = await desk.client("admin1")
    for path in ("/desk/", f"/desk/cases/{ref}", "/desk/map", "/desk/stats"):
        html = await (await dispatcher.get(path)).text()
        forms = html.count("<form")
        assert forms >= 1 and html.count('name="csrf"') == forms, path
    login_html = await (await (await desk.client()).get("/desk/login")).text()
    assert login_html.count("<form") == login_html.count('name="login_token"') == 1

    token = csrf_of(await (await dispatcher.get(f"/desk/cases/{ref}")).text())
    foreign = csrf_of(await (await admin.get("/desk/")).text())
    assert token != foreign
    change = {"status": "acknowledged"}

    async def post(data: dict[str, str], **headers: str) -> int:
        response = await dispatcher.post(f"/desk/cases/{ref}", data=data, headers=headers, allow_redirects=False)
        return response.status

    assert await post(change) == 403
    assert await post({**change, "csrf": "0" * 64}) == 403
    assert await post({**change, "csrf": foreign}) == 403  # another session's token
    assert await post({**change, "csrf": token}, Origin="https://evil.example") == 403
    assert await post({**change, "csrf": token}, Origin="null") == 403
    assert await post({**change, "csrf": token}, Referer="https://evil.example/page") == 403
    assert (await dispatcher.post("/desk/logout", allow_redirects=False)).status == 403
    with session_scope(desk.db) as session:
        assert case_store.get_case_by_ref(session=session, ref=ref).status == "new"
    own_origin = desk.url("/").rstrip("/")
    assert await post({**change, "csrf": token}, Origin=own_origin) == 303
    with session_scope(desk.db) as session:
        assert case_store.get_case_by_ref(session=session, ref=ref).status == "acknowledged"

    # the sign-in form is bound to the browser that loaded it
    stranger = await desk.client()
    refused = await stranger.post("/desk/login", data={"name": "admin1", "password": PASSWORD}, allow_redirects=False)
    assert refused.status == 403 and "expired" in await refused.text()
    form = await (await desk.client()).get("/desk/login")  # a token from another browser
    token = re.search(r'name="login_token" value="([^"]+)"', await form.text()).group(1)
    refused = await stranger.post("/desk/login", data={"login_token": token, "name": "admin1", "password": PASSWORD},
                                  allow_redirects=False)
    assert refused.status == 403


def desk_routes(desk: Desk) -> list[tuple[str, str, tuple[str, ...] | None]]:
    found = []
    for route in desk.server.app.router.routes():
        resource = route.resource
        path = resource.canonical if resource else ""
        if not path.startswith("/desk") or route.method == "HEAD" or path.startswith("/desk/static"):
            continue
        found.append((route.method, path, getattr(route.handler, "required_roles", None)))
    return found


async def test_every_desk_route_needs_a_session_and_the_right_role(desk: Desk) -> None:
    ref = desk.new_case(photo=PNG)
    with session_scope(desk.db) as session:
        case = case_store.get_case_by_ref(session=session, ref=ref)
        photo_id = str(attachment_store.get_attachments(session=session, case_id=case.id)[0].id)
    anonymous = await desk.client()
    community = await desk.client("community1")
    dispatcher = await desk.client("dispatcher1")
    admin = await desk.client("admin1")
    community_token = csrf_of(await (await community.get("/desk/map")).text())
    routes = desk_routes(desk)
    public = {("GET", "/desk/login"), ("POST", "/desk/login"), ("GET", "/desk")}
    # the alert pages are for community and admin users: tests/test_alerts_dashboard.py checks them
    guarded = sorted((r for r in routes if (r[0], r[1]) not in public and not r[1].startswith("/desk/alerts")),
                     key=lambda r: r[1] == "/desk/logout")
    assert {(m, p) for m, p, _ in guarded} == {
        ("POST", "/desk/logout"), ("GET", "/desk/"), ("GET", "/desk/events"), ("GET", "/desk/cases/{ref}"),
        ("POST", "/desk/cases/{ref}"), ("GET", "/desk/cases/{ref}/photos/{attachment_id}"),
        ("GET", "/desk/map"), ("GET", "/desk/stats"), ("POST", "/desk/cases/{ref}/chat"),
        ("POST", "/desk/cases/{ref}/chat/close"), ("GET", "/desk/cases/{ref}/chat/events"),
        ("POST", "/desk/language"),
    }
    assert (await anonymous.get("/desk", allow_redirects=False)).headers["Location"] == "/desk/"
    for method, path, roles in guarded:
        assert roles is not None, f"{method} {path} is not guarded by desk_route"
        url = path.replace("{ref}", ref).replace("{attachment_id}", photo_id)
        if path.endswith("/chat/events"):
            url += "?" + urlencode({"after": utcnow().isoformat()})
        data = {"internal_note": "route check", "text": "route check"}
        nobody = await anonymous.request(method, url, data=data if method == "POST" else None, allow_redirects=False)
        if method == "GET":
            assert nobody.status == 303, (method, path, nobody.status)
            assert nobody.headers["Location"].startswith("/desk/login?next=/desk")
            script = await anonymous.request(method, url, headers={"Accept": "text/event-stream"})
            assert script.status == 401, (method, path)
        else:
            assert nobody.status == 401, (method, path, nobody.status)
        as_community = await community.request(
            method, url, data={**data, "csrf": community_token} if method == "POST" else None, allow_redirects=False)
        if roles:  # case pages: dispatchers and admins only
            assert "community" not in roles and set(roles) == {"dispatcher", "admin"}
            assert as_community.status == 403, (method, path, as_community.status)
        else:
            assert as_community.status not in (401, 403), (method, path)
        for client in (dispatcher, admin) if roles else ():
            if path.endswith("events"):
                stream = await client.get(url, headers={"Accept": "text/event-stream"})
                assert stream.status == 200 and stream.content_type == "text/event-stream"
                assert (await stream.content.readuntil(b"\n\n")).startswith(b"retry:")
                stream.close()
                continue
            token = csrf_of(await (await client.get("/desk/map")).text())
            allowed = await client.request(method, url, data={**data, "csrf": token} if method == "POST" else None,
                                           allow_redirects=False)
            assert allowed.status in (200, 303), (method, path, allowed.status)
    community = await desk.client("community1")  # signed out by the logout route above
    community_page = await community.get("/desk/")
    assert community_page.status == 403 and "community" in await community_page.text()


async def test_the_event_stream_catches_up_then_pushes_changes(desk: Desk) -> None:
    dispatcher = await desk.client("dispatcher1")
    since = (utcnow() - timedelta(minutes=1)).isoformat()
    missed = desk.new_case(category="theft")  # between the page and its stream

    async def events(stream: Any) -> AsyncIterator[tuple[str, str]]:
        while True:
            block = (await asyncio.wait_for(stream.content.readuntil(b"\n\n"), timeout=20)).decode()
            if not block:
                return  # the server ended the stream
            fields = dict(line.split(": ", 1) for line in block.strip().splitlines() if ": " in line)
            if "event" in fields:
                yield fields["event"], fields.get("data", "")

    async def next_about(ref: str) -> dict[str, Any]:
        """The next event about this case (an event may come twice: the page upserts)."""
        async for kind, data in received:
            row = json.loads(data)
            if kind == "case" and row["ref"] == ref and row["updated_at"] not in seen.get(ref, ()):
                seen.setdefault(ref, set()).add(row["updated_at"])
                return row
        raise AssertionError("the stream ended")

    stream = await dispatcher.get("/desk/events", params={"since": since}, headers={"Accept": "text/event-stream"})
    received = events(stream)
    seen: dict[str, set[str]] = {}
    assert (await anext(received))[0] == "ready"
    assert (await next_about(missed))["category_label"] == "Theft"
    later = desk.new_case(category="noise", priority="urgent")
    row = await next_about(later)
    assert row["open"] is True and row["priority"] == "urgent" and row["status_label"] == "New"
    desk.change(later, status="rejected")
    assert (await next_about(later))["open"] is False
    stream.close()

    old = (utcnow() - timedelta(hours=2)).isoformat()
    stale = await dispatcher.get("/desk/events", params={"since": old}, headers={"Accept": "text/event-stream"})
    assert [kind async for kind, _ in events(stale) if kind != "ready"][:1] == ["stale"]


async def test_photos_and_contact_details_are_served_to_staff_and_audited(desk: Desk) -> None:
    ref = desk.new_case(photo=PNG, contact_mode="contact", contact_name="Laia Soler", contact_phone="600111222",
                        contact_email="laia@example.org")
    quiet = desk.new_case(contact_mode="anonymous", contact_name="Not stored")
    dispatcher = await desk.client("dispatcher1")
    page = await (await dispatcher.get(f"/desk/cases/{ref}")).text()
    assert "Laia Soler" in page and "600111222" in page and "laia@example.org" in page
    assert [(a.actor, a.action) for a in desk.audit("case.read_contact")] == [("dispatcher1", "case.read_contact")]
    assert any(a.actor == "dispatcher1" for a in desk.audit("case.read"))
    photo_url = re.search(r'<img src="(/desk/cases/[^"]+/photos/[^"]+)"', page).group(1)
    photo = await dispatcher.get(photo_url)
    assert photo.status == 200 and await photo.read() == PNG and photo.content_type == "image/png"
    assert photo.headers["Cache-Control"].startswith("private") and "sandbox" in photo.headers["Content-Security-Policy"]
    assert [a.actor for a in desk.audit("attachment.read")] == ["dispatcher1"]
    other = await (await dispatcher.get(f"/desk/cases/{quiet}")).text()
    assert "Contact details" not in other and "Not stored" not in other
    assert len(desk.audit("case.read_contact")) == 1
    assert (await dispatcher.get("/desk/cases/ZZZ-999")).status == 404
    assert (await dispatcher.get(f"/desk/cases/{ref}/photos/0f8fad5b-d9cb-469f-a165-70867728950e")).status == 404
    assert (await dispatcher.get(f"/desk/cases/{ref}/photos/not-a-uuid")).status == 404


async def test_the_update_form_checks_its_fields(desk: Desk) -> None:
    ref = desk.new_case(contact_mode="anonymous")
    dispatcher = await desk.client("dispatcher1")
    token = csrf_of(await (await dispatcher.get(f"/desk/cases/{ref}")).text())

    async def post(**data: str) -> tuple[int, str]:
        response = await dispatcher.post(f"/desk/cases/{ref}", data={"csrf": token, **data})
        return response.status, await response.text()

    status, html = await post(priority="normal", assignee="")
    assert status == 422 and "Nothing to save" in html
    status, html = await post(internal_note="x" * 4001)
    assert status == 422 and "internal note" in html
    status, html = await post(status="closed")
    assert status == 409 and "a new case cannot become closed" in html
    status, html = await post(status="duplicate", duplicate_of="", internal_note="keep me")
    assert status == 409 and "needs duplicate_of" in html and "keep me" in html
    response = await dispatcher.post(f"/desk/cases/{ref}", data={
        "csrf": token, "priority": "urgent", "assignee": "Patrol 7", "public_note": "We are on it."},
        allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == f"/desk/cases/{ref}?saved=1&told=anonymous"
    html = await (await dispatcher.get(response.headers["Location"])).text()
    assert "Changes saved. The citizen chose no contact" in html and "Patrol 7" in html
    with session_scope(desk.db) as session:
        case = case_store.get_case_by_ref(session=session, ref=ref)
        assert (case.priority, case.assignee, case.status) == ("urgent", "Patrol 7", "new")


# --------------------------------------------------------------------------- SVG


def test_svg_projection_and_escaping() -> None:
    projection = svg.Projection.fit((2.05, 41.32, 2.23, 41.47), width=1000, margin=0)
    west, east = projection.xy(2.05, 41.4), projection.xy(2.23, 41.4)
    north, south = projection.xy(2.1, 41.47), projection.xy(2.1, 41.32)
    assert west[0] == pytest.approx(0) and east[0] == pytest.approx(1000)
    assert north[1] == pytest.approx(0) and south[1] > north[1]
    # a degree of longitude is cos(latitude) as long as a degree of latitude
    assert projection.height / projection.width == pytest.approx(0.15 / (0.18 * 0.7501), rel=0.01)

    base = svg.load_base_map(PROJECT_ROOT / "data" / "barcelona-barris.geojson")
    assert len(base.areas) == 73 and len(base.districts) == 10
    drawn = str(svg.city_map(base, {"01-01": 4}, [svg.MapPoint("ABC-234", 41.38, 2.17, "urgent", SCRIPT,
                                                               "/desk/cases/ABC-234")], label=IMG))
    assert "<script>" not in drawn and "&lt;script&gt;alert(1)&lt;/script&gt;" in drawn
    assert "<img" not in drawn and 'aria-label="&#34;&gt;&lt;img' in drawn
    assert drawn.count('<path class="area') == 73 and 'class="area shade-4" data-code="01-01"' in drawn  # 1 shade per case up to 5
    bars = str(svg.horizontal_bars([(SCRIPT, 3), ("el Raval", 1)], label="top"))
    assert "<script>" not in bars and bars.count('<rect class="bar"') == 2
    chart = str(svg.stacked_bars(["1 Dec", "8 Dec"], [svg.Series(IMG, "cat-0", [1, 2]),
                                                      svg.Series("b", "cat-1", [0, 3])], label="weeks"))
    assert chart.count('<rect class="segment') == 3 and "<img" not in chart
    line = str(svg.line_chart(["a", "b", "c", "d"], [1.0, None, 2.0, 3.0], label="ack", unit=" h"))
    assert line.count("<polyline") == 1 and line.count('<circle class="dot"') == 3
    assert svg.nice_step(7) == 2 and svg.nice_step(0.9) == 0.2 and svg.nice_step(130) == 50


# --------------------------------------------------------------------------- in the browser


@pytest.mark.browser
async def test_the_queue_shows_new_cases_live_urgent_first(desk: Desk, browser: Browser) -> None:
    older = desk.new_case(category="vandalism", age=timedelta(hours=3), **GRACIA)
    urgent = desk.new_case(category="assault", priority="urgent", age=timedelta(hours=5), **RAVAL)
    closed = desk.new_case(category="theft")
    desk.change(closed, status="rejected")
    tab = await open_tab(browser, desk)
    page = tab.page
    rows = page.locator("#queue-body tr.case-row")
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_have_attribute("id", f"case-{urgent}")
    await expect(rows.first).to_have_class(re.compile("priority-urgent"))
    await expect(rows.first.locator(".badge.priority")).to_have_text("Urgent")
    await expect(rows.first.locator(".c-category")).to_have_text("Assault or fight")
    await expect(rows.nth(1).locator(".c-neighbourhood")).to_have_text("la Vila de Gràcia")
    await expect(rows.first.locator(".c-age")).to_have_text(re.compile(r"^5 h 0\d min$"))
    urgent_bg = await rows.first.evaluate("row => getComputedStyle(row).backgroundColor")
    normal_bg = await rows.nth(1).evaluate("row => getComputedStyle(row).backgroundColor")
    assert urgent_bg != normal_bg
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    await page.evaluate("window.__sameDocument = true")

    fresh = desk.new_case(category="drugs", description="Venta de droga en el parque por la tarde.")  # another "process"
    row = page.locator(f"#case-{fresh}")
    await expect(row).to_be_visible(timeout=15_000)
    await expect(row.locator(".c-category")).to_have_text("Drugs")
    await expect(row.locator(".c-status .badge")).to_have_text("New")
    await expect(rows).to_have_count(3)
    await expect(rows.nth(1)).to_have_attribute("id", f"case-{fresh}")  # after urgent, newest first
    await expect(page.locator("#count-open")).to_have_text("3")

    second_urgent = desk.new_case(category="harassment", priority="urgent")
    await expect(rows.first).to_have_attribute("id", f"case-{second_urgent}", timeout=15_000)
    await expect(page.locator("#count-urgent")).to_have_text("2")
    with session_scope(desk.db) as session:
        case_store.request_handoff(session=session, case=case_store.get_case_by_ref(session=session, ref=older))
    await expect(page.locator(f"#case-{older} .badge.handoff")).to_be_visible(timeout=15_000)
    desk.change(older, status="acknowledged")
    await expect(page.locator(f"#case-{older} .c-status .badge")).to_have_text("Acknowledged", timeout=15_000)
    desk.change(older, status="rejected")
    await expect(page.locator(f"#case-{older}")).to_have_count(0, timeout=15_000)
    await expect(page.locator("#count-open")).to_have_text("3")
    assert await page.evaluate("window.__sameDocument") is True  # never reloaded
    assert tab.problems == []
    await page.context.close()


@pytest.mark.browser
async def test_the_case_page_changes_status_and_shows_illegal_transitions(desk: Desk, browser: Browser) -> None:
    ref = desk.new_case(photo=PNG, contact_mode="contact", contact_name="Jordi Puig", contact_phone="611222333",
                        address="Carrer de Joaquín Costa 32", occurred_text="ayer por la noche", **RAVAL)
    tab = await open_tab(browser, desk)
    page = tab.page
    await page.goto(desk.url(f"/desk/cases/{ref}"))
    await expect(page.locator("h1")).to_contain_text(ref)
    await expect(page.locator("#contact-name")).to_have_text("Jordi Puig")
    await expect(page.locator(".photos img")).to_have_count(1)
    assert await page.locator(".photos img").evaluate("img => img.complete && img.naturalWidth") == 1
    await expect(page.locator(".mini-map svg path.area.highlight")).to_have_count(1)
    options = await page.locator("#status option").evaluate_all("options => options.map(o => o.value)")
    assert options == ["", "acknowledged", "in_progress", "rejected", "duplicate"]
    await expect(page.locator("#duplicate-field")).to_be_hidden()
    await page.select_option("#status", "duplicate")
    await expect(page.locator("#duplicate-field")).to_be_visible()

    await page.select_option("#status", "acknowledged")
    await page.fill("#assignee", "Guàrdia Urbana – Ciutat Vella")
    await page.fill("#internal_note", "Second report about this bar this month.")
    await page.fill("#public_note", "Una patrulla pasará esta noche.")
    await page.click("#update-form button[type=submit]")
    await expect(page.locator("#case-notice")).to_contain_text("Changes saved.")
    await expect(page.locator(".case-head .badge.status")).to_have_text("Acknowledged")
    history = page.locator("#history")
    await expect(history.locator(".event.kind-status_changed .transition")).to_have_text(re.compile(r"New\s*→\s*Acknowledged"))
    await expect(history.locator(".event.kind-note_internal")).to_contain_text("Second report about this bar this month.")
    await expect(history.locator(".event.kind-note_public")).to_contain_text("Una patrulla pasará esta noche.")
    await expect(history.locator(".event.kind-citizen_notified")).to_have_count(1)
    await expect(history.locator(".event").first).to_contain_text("by ")
    options = await page.locator("#status option").evaluate_all("options => options.map(o => o.value)")
    assert options == ["", "in_progress", "resolved", "rejected", "duplicate"]

    desk.change(ref, actor="admin1", status="resolved")  # meanwhile, in another tab
    await page.select_option("#status", "rejected")  # still offered by this (stale) page
    await page.fill("#internal_note", "Not a police matter.")
    await page.click("#update-form button[type=submit]")
    error = page.locator("#case-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("a resolved case cannot become rejected")
    await expect(page.locator("#internal_note")).to_have_value("Not a police matter.")  # nothing typed is lost
    await expect(page.locator(".case-head .badge.status")).to_have_text("Resolved")
    with session_scope(desk.db) as session:
        assert case_store.get_case_by_ref(session=session, ref=ref).status == "resolved"
    assert [p for p in tab.problems if "409" not in p] == []
    await page.context.close()


@pytest.mark.browser
async def test_map_and_stats_are_svg_drawn_on_the_server(desk: Desk, browser: Browser) -> None:
    raval = desk.new_case(category="theft", priority="urgent", **RAVAL)
    desk.new_case(category="theft", **RAVAL)
    desk.new_case(category="noise", age=timedelta(days=8), **GRACIA)
    desk.new_case(category="other")  # no location
    done = desk.new_case(category="vandalism", **GRACIA)
    desk.change(raval, status="acknowledged")
    desk.change(done, status="rejected")
    tab = await open_tab(browser, desk)
    page = tab.page
    await page.goto(desk.url("/desk/map"))
    drawn = page.locator("svg.city-map")
    await expect(drawn).to_have_count(1)
    await expect(drawn.locator("path.area")).to_have_count(73)
    await expect(drawn.locator("g.district-labels text")).to_have_count(10)
    await expect(drawn.locator("circle.point")).to_have_count(3)  # open cases with a location
    await expect(drawn.locator("circle.point.priority-urgent")).to_have_count(1)
    assert await drawn.locator('path.area[data-code="01-01"]').get_attribute("class") == "area shade-2"
    assert await drawn.locator('path.area[data-code="06-31"]').get_attribute("class") == "area shade-1"
    assert await drawn.locator('path.area[data-code="08-56"]').get_attribute("class") == "area shade-0"
    raval_title = await drawn.locator('path.area[data-code="01-01"] title').text_content()
    assert raval_title == "el Raval (Ciutat Vella): 2 open cases"
    titles = await drawn.locator("a.point-link title").all_text_contents()
    assert any(t.startswith(f"{raval} · Theft · Urgent · Acknowledged") for t in titles)
    assert await drawn.locator(f'a.point-link:has(circle[data-ref="{raval}"])').get_attribute("href") == f"/desk/cases/{raval}"
    box = await drawn.bounding_box()
    assert box and box["width"] > 400 and box["height"] > 400
    await expect(page.locator("#map-located")).to_have_text("3")
    await expect(page.locator(".ranking li").first).to_contain_text("el Raval")

    await page.goto(desk.url("/desk/stats"))
    await expect(page.locator(".charts svg.chart")).to_have_count(3)
    await expect(page.locator("#chart-resolve")).to_contain_text("No report of this period has been resolved yet.")
    weekly = page.locator("#chart-weekly svg")
    await expect(weekly.locator("rect.segment")).to_have_count(4)  # theft, vandalism this week; noise last week
    await expect(page.locator("#chart-weekly .legend li")).to_have_text(["Theft", "Vandalism", "Noise", "Other"])
    bars = page.locator("#chart-places svg rect.bar")
    await expect(bars).to_have_count(3)
    await expect(page.locator("#chart-places svg text.name").first).to_have_text("el Raval")
    await expect(page.locator("#chart-ack svg circle.dot")).to_have_count(1)
    await expect(page.locator("#kpi-total")).to_have_text("5")
    await page.click("text=4 weeks")
    await expect(page.locator(".periods a[aria-current=page]")).to_have_text("4 weeks")
    await expect(page.locator("#chart-weekly svg g.x-labels text")).to_have_count(4)
    assert tab.problems == []
    await page.context.close()


@pytest.mark.browser
async def test_citizen_text_never_runs_as_script(desk: Desk, browser: Browser) -> None:
    hostile = {"description": f"{SCRIPT} {IMG} {LINK}", "address": f"{IMG} {LINK}", "occurred_text": SCRIPT[:100],
               "neighbourhood_name": IMG, "district_name": SCRIPT, "neighbourhood_code": "01-01",
               "latitude": 41.3809, "longitude": 2.1734}
    ref = desk.new_case(photo=PNG, contact_mode="contact", contact_name=IMG, contact_email=LINK[:200],
                        priority="urgent", **hostile)
    desk.change(ref, status="acknowledged", assignee=IMG[:60], public_note=LINK, internal_note=SCRIPT + IMG)
    tab = await open_tab(browser, desk)
    page = tab.page
    await expect(page.locator(f"#case-{ref} .c-excerpt")).to_contain_text(SCRIPT)
    await page.evaluate("window.__sameDocument = true")
    live = desk.new_case(**hostile)  # inserted by the page's script, not by the server's template
    await expect(page.locator(f"#case-{live} .c-excerpt")).to_contain_text(SCRIPT, timeout=15_000)
    await expect(page.locator(f"#case-{live} .c-neighbourhood")).to_have_text(IMG)
    assert await page.evaluate("window.__sameDocument") is True
    await no_injected_markup(page)
    for path in (f"/desk/cases/{ref}", "/desk/map", "/desk/stats"):
        await page.goto(desk.url(path))
        await page.wait_for_load_state("networkidle")
        await no_injected_markup(page)
    await page.goto(desk.url(f"/desk/cases/{ref}"))
    await expect(page.locator(".description")).to_contain_text(f"{SCRIPT} {IMG} {LINK}")
    await expect(page.locator("#contact-name")).to_have_text(IMG)
    await expect(page.locator("#history .kind-note_internal .event-text")).to_have_text(SCRIPT + IMG)
    await page.goto(desk.url("/desk/stats"))
    await expect(page.locator("#chart-places svg text.name").first).to_have_text(IMG[:27] + "…")  # shortened
    await expect(page.locator("#chart-places svg rect.bar title").first).to_have_text(f"{IMG}: 2")
    await page.goto(desk.url("/desk/map"))
    titles = await page.locator("svg.city-map a.point-link title").all_text_contents()
    assert any(IMG in t for t in titles)
    await asyncio.sleep(0.5)  # a dialog would have opened by now
    assert tab.problems == []
    await page.context.close()


# --------------------------------------------------------------------------- screenshots


SAMPLES = [
    # category, priority, (lat, lon), address, description, locale, age in hours, status, contact, handoff
    ("assault", "urgent", (41.38021, 2.17529), "Plaça Reial, next to the fountain",
     "Two men are fighting outside the bar, one of them has a bottle. People are shouting.", "en", 0.3, "new", "chat",
     False),
    ("harassment", "urgent", (41.37920, 2.14010), "Estació de Sants, main hall",
     "Un hombre está siguiendo a una chica por la estación y no la deja en paz.", "es", 1.2, "acknowledged",
     "contact", True),
    ("theft", "high", (41.38700, 2.17010), "Plaça de Catalunya, metro L3 exit",
     "Me han robado el móvil del bolsillo al salir del metro. Eran dos chicos jóvenes.", "es", 2.5, "in_progress",
     "chat", False),
    ("theft", "normal", (41.37950, 2.16900), "Carrer de l'Hospital 56",
     "Pickpocket on the 59 bus, my wallet is gone and my cards with it.", "en", 3.6, "new", "chat", False),
    ("noise", "normal", (41.40210, 2.15650), "Carrer de Verdi 18",
     "Música altíssima cada nit fins a les 4 des del local de baix.", "ca", 5, "new", "chat", False),
    ("incivility", "normal", (41.38260, 2.16650), "Plaça dels Àngels, in front of the MACBA",
     "Group drinking and throwing bottles against the wall every evening.", "en", 7.2, "new", "anonymous", False),
    ("vandalism", "normal", (41.40350, 2.20400), "Rambla del Poblenou 70",
     "Someone sprayed graffiti all over the door of the school last night.", "en", 9, "acknowledged", "anonymous",
     False),
    ("noise", "normal", (41.38320, 2.17650), "Plaça de Sant Felip Neri",
     "Festa a un pis turístic, crits i música des de les 11 de la nit.", "ca", 11.5, "acknowledged", "chat", False),
    ("drugs", "high", (41.38090, 2.17340), "Carrer de Joaquín Costa 32",
     "Venta de droga en el portal todas las tardes, hay jeringuillas en el suelo.", "es", 14, "in_progress",
     "contact", False),
    ("vandalism", "normal", (41.38170, 2.17170), "La Rambla 91, next to the Boqueria",
     "Han quemado dos contenedores esta madrugada, todavía huele a humo.", "es", 18, "new", "chat", False),
    ("suspicious_activity", "normal", (41.38530, 2.18300), "Passeig del Born 12",
     "A van has been parked for three days and people unload boxes at night.", "en", 20, "new", "chat", True),
    ("traffic", "normal", (41.40360, 2.17440), "Carrer de Mallorca with Carrer de Sardenya",
     "Motos circulando por la acera a toda velocidad delante de la Sagrada Família.", "es", 26, "new", "anonymous",
     False),
    ("incivility", "normal", (41.37840, 2.19250), "Passeig Marítim de la Barceloneta",
     "Botellón en la playa cada noche, dejan toda la basura en la arena.", "es", 30, "acknowledged", "chat", False),
    ("theft", "normal", (41.37860, 2.16170), "Mercat de Sant Antoni",
     "Bike stolen from the rack in front of the market, the lock was cut.", "en", 40, "new", "chat", False),
    ("noise", "normal", (41.37370, 2.16200), "Carrer de Blai 25",
     "Terrasses obertes fins molt tard, molt de soroll al carrer.", "ca", 52, "in_progress", "chat", False),
    ("vandalism", "normal", (41.40900, 2.18700), "Plaça del Mercadal, Clot",
     "Han roto las marquesinas de la parada del autobús otra vez.", "es", 70, "new", "anonymous", False),
    ("other", "normal", (41.44100, 2.17700), None,
     "Streetlights off in the whole street since Monday, it's very dark at night.", "en", 90, "acknowledged", "chat",
     False),
]
FEATURED = 8  # the drugs case with a photo, contact details and a history
HISTORY_SAMPLES = [  # closed cases over the last weeks, for the stats
    ("theft", (41.38090, 2.17340)), ("noise", (41.40210, 2.15650)), ("vandalism", (41.40350, 2.20400)),
    ("theft", (41.38700, 2.17010)), ("incivility", (41.37840, 2.19250)), ("noise", (41.37370, 2.16200)),
    ("drugs", (41.38090, 2.17340)), ("theft", (41.37920, 2.14010)), ("harassment", (41.38530, 2.18300)),
    ("noise", (41.43550, 2.19000)), ("traffic", (41.38500, 2.13200)), ("vandalism", (41.39900, 2.12200)),
    ("theft", (41.39600, 2.18200)), ("noise", (41.41500, 2.21500)), ("suspicious_activity", (41.43000, 2.16000)),
    ("theft", (41.37500, 2.14400)), ("incivility", (41.38021, 2.17529)), ("noise", (41.40900, 2.18700)),
]


async def graffiti_photo(browser: Browser) -> bytes:
    """A stand-in street photo: a wall with graffiti, drawn by Chromium itself."""
    page = await browser.new_page(viewport={"width": 640, "height": 480})
    await page.set_content(
        '<body style="margin:0"><svg xmlns="http://www.w3.org/2000/svg" width="640" height="480">'
        '<defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#9cc3e6"/>'
        '<stop offset="1" stop-color="#dfe9f2"/></linearGradient></defs>'
        '<rect width="640" height="480" fill="url(#sky)"/><rect y="90" width="640" height="330" fill="#c9b79c"/>'
        + "".join(f'<rect x="{x}" y="{y}" width="78" height="30" fill="#bfa888" stroke="#a88f6e"/>'
                  for y in range(95, 420, 34) for x in range((y // 34 % 2) * -40, 640, 82))
        + '<rect x="250" y="170" width="150" height="250" fill="#5a3b22" stroke="#3a2414" stroke-width="6"/>'
        '<text x="325" y="290" font-family="Impact, sans-serif" font-size="64" fill="#e0218a" text-anchor="middle" '
        'transform="rotate(-12 325 290)">BRR!</text>'
        '<path d="M60 250 q40 -60 90 0 t90 0" stroke="#1f9d55" stroke-width="14" fill="none"/>'
        '<rect y="420" width="640" height="60" fill="#6b6b6b"/></svg></body>')
    data = await page.screenshot(type="png")
    await page.close()
    return data


def seed_realistic_desk(desk: Desk, photo: bytes) -> str:
    """Open cases of every kind across the city, and closed ones over twelve weeks. Returns
    the reference of the case to show on the case page."""
    places = Neighbourhoods.from_geojson(desk.settings.neighbourhoods_geojson)
    featured = ""
    for index, sample in enumerate(SAMPLES):
        category, priority, (lat, lon), address, text, locale, hours, status, contact, handoff = sample
        where = places.at(lat, lon)
        fields: dict[str, Any] = {"category": category, "priority": priority, "description": text, "address": address,
                                  "latitude": lat, "longitude": lon, "contact_mode": contact, "locale": locale}
        if where:
            fields |= {"neighbourhood_code": where.code, "neighbourhood_name": where.name,
                       "district_name": where.district}
        if contact == "contact":
            fields |= {"contact_name": "Marta Vidal", "contact_phone": "+34 611 204 318",
                       "contact_email": "marta.vidal@example.org"}
        if index == FEATURED:
            fields["occurred_text"] = "todas las tardes, sobre las 6"
        ref = desk.new_case(photo=photo if index == FEATURED else None, **fields)
        if status != "new":
            desk.change(ref, status="acknowledged",
                        assignee="Guàrdia Urbana – Ciutat Vella" if index == FEATURED else None)
        if index == FEATURED:
            desk.change(ref, internal_note="Third report about this doorway in two weeks. "
                        "Coordinate with the social services outreach team.")
            featured = ref
        if status == "in_progress":
            desk.change(ref, status="in_progress",
                        public_note="Una patrulla pasará por la zona esta tarde." if index == FEATURED else None)
        if handoff:
            with session_scope(desk.db) as session:
                case_store.request_handoff(session=session, case=case_store.get_case_by_ref(session=session, ref=ref))
        with session_scope(desk.db) as session:
            backdate(session, ref, timedelta(hours=hours),
                     acknowledged=timedelta(minutes=25 + 7 * index) if status != "new" else None)
    for index, (category, (lat, lon)) in enumerate(HISTORY_SAMPLES * 3):
        where = places.at(lat, lon)
        ref = desk.new_case(category=category, latitude=lat, longitude=lon, description="Earlier report.",
                            **({"neighbourhood_code": where.code, "neighbourhood_name": where.name,
                                "district_name": where.district} if where else {}))
        desk.change(ref, status="acknowledged")
        desk.change(ref, status="resolved")
        desk.change(ref, status="closed")
        weeks = 1 + (index * index + index // 3) % 11  # some weeks busier than others
        with session_scope(desk.db) as session:
            backdate(session, ref, timedelta(weeks=weeks, hours=index * 5 % 90),
                     acknowledged=timedelta(minutes=40 + (index * 37) % (60 * (2 + weeks % 5))),
                     resolved=timedelta(hours=6 + index % 30))
    return featured


@pytest.mark.browser
async def test_a_realistic_desk_fits_down_to_a_tablet(desk: Desk, browser: Browser) -> None:
    """(The README's screenshots, of this desk in Catalan: tests/test_desk_languages.py.)"""
    featured = seed_realistic_desk(desk, await graffiti_photo(browser))
    tab = await open_tab(browser, desk)
    page = tab.page
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#queue-body tr.case-row")).to_have_count(len(SAMPLES))
    # down to a tablet, nothing needs sideways scrolling
    await page.set_viewport_size({"width": 768, "height": 1024})
    for path in ("/desk/", f"/desk/cases/{featured}", "/desk/map", "/desk/stats"):
        await page.goto(desk.url(path))
        await page.wait_for_load_state("networkidle")
        overflow = await page.evaluate("""() => Math.max(
            document.documentElement.scrollWidth - window.innerWidth,
            ...[...document.querySelectorAll('.queue, .card')].map(box => box.scrollWidth - box.clientWidth))""")
        assert overflow <= 0, (path, overflow)
    assert tab.problems == []
    await page.context.close()


async def test_a_live_conversation_from_the_case_page(desk: Desk) -> None:
    """The dispatcher writes from the case page; the citizen on the web chat gets it; the
    citizen's reply shows on the page; handing back tells the citizen."""
    citizen = await desk.client()
    ws = await citizen.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello", "session": None, "locale": "en-GB"})
    sender = (await ws.receive_json(timeout=5))["sender"]
    ref = desk.new_case(sender_id=sender, contact_mode="chat", locale="en")
    dispatcher = await desk.client("dispatcher1")
    token = csrf_of(await (await dispatcher.get(f"/desk/cases/{ref}")).text())
    sent = await dispatcher.post(f"/desk/cases/{ref}/chat", data={"csrf": token, "text": "Is the car still there?"},
                                 allow_redirects=False)
    assert sent.status == 303
    assert "Is the car still there?" in (await ws.receive_json(timeout=5))["text"]
    page = await (await dispatcher.get(f"/desk/cases/{ref}")).text()
    after = re.search(r'data-after="([^"]+)"', page)
    assert after, "the conversation carries the moment it was read"
    stream = await dispatcher.get(f"/desk/cases/{ref}/chat/events", params={"after": after.group(1)},
                                  headers={"Accept": "text/event-stream"})
    await ws.send_json({"type": "text", "text": "yes, a white van <b>now</b>"})
    await ws.receive_json(timeout=5)  # typing on
    await ws.receive_json(timeout=5)  # typing off: no assistant answer
    # the dispatcher's own message may come first (the stream looks back a little; the page
    # skips the ids it shows), then the citizen's, as sent
    received = chat_events(stream)
    lines = [await anext(received), await anext(received)]
    assert lines[-1] == {"id": lines[-1]["id"], "kind": "chat_citizen", "who": "Citizen",
                         "text": "yes, a white van <b>now</b>", "when": lines[-1]["when"]}
    stream.close()
    page = await (await dispatcher.get(f"/desk/cases/{ref}")).text()
    assert "yes, a white van &lt;b&gt;now&lt;/b&gt;" in page and ">Live<" in page
    closed = await dispatcher.post(f"/desk/cases/{ref}/chat/close", data={"csrf": token}, allow_redirects=False)
    assert closed.status == 303
    assert "assistant again" in (await ws.receive_json(timeout=5))["text"]
    await ws.close()



async def chat_events(stream: Any) -> AsyncIterator[dict[str, Any]]:
    """The ``chat`` events of a case page's conversation stream, as they come."""
    while True:
        block = (await asyncio.wait_for(stream.content.readuntil(b"\n\n"), timeout=20)).decode()
        fields = dict(line.split(": ", 1) for line in block.strip().splitlines() if ": " in line)
        if fields.get("event") == "chat":
            yield json.loads(fields["data"])


async def test_the_reporters_replies_appear_on_the_open_case_page(desk: Desk, browser: Browser) -> None:
    """No reload: the citizen's answer shows on the dispatcher's page as text, never as markup."""
    citizen = await desk.client()
    ws = await citizen.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello", "session": None, "locale": "en-GB"})
    sender = (await ws.receive_json(timeout=5))["sender"]
    ref = desk.new_case(sender_id=sender, contact_mode="chat", locale="en")
    tab = await open_tab(browser, desk)
    page = tab.page
    await page.goto(desk.url(f"/desk/cases/{ref}"))
    await expect(page.locator("#chat-empty")).to_be_visible()
    await page.fill("#chat_text", "Can you see the van from your window?")
    await page.click("#chat button[type=submit]")
    assert "Can you see the van" in (await ws.receive_json(timeout=5))["text"]
    await page.evaluate("window.__sameDocument = true")
    await ws.send_json({"type": "text", "text": f"yes {SCRIPT} {IMG}"})
    reply = page.locator("#chat .chat-log li.chat-chat_citizen")
    await expect(reply).to_contain_text(f"yes {SCRIPT} {IMG}", timeout=15_000)
    await expect(reply).to_contain_text("Citizen")
    assert await page.evaluate("window.__sameDocument") is True
    await expect(page.locator("#chat .chat-log li")).to_have_count(2)  # the page's own, then the reply
    await no_injected_markup(page)
    await asyncio.sleep(0.5)  # a dialog would have opened by now
    assert tab.problems == []
    await ws.close()
    await page.context.close()


async def test_open_streams_end_when_the_dispatcher_signs_out(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.dashboard.live.SESSION_CHECK_SECONDS", 0.0)  # check at every round
    ref = desk.new_case()
    dispatcher = await desk.client("dispatcher1")
    token = csrf_of(await (await dispatcher.get(f"/desk/cases/{ref}")).text())
    streams = [
        await dispatcher.get("/desk/events", params={"since": utcnow().isoformat()},
                             headers={"Accept": "text/event-stream"}),
        await dispatcher.get(f"/desk/cases/{ref}/chat/events", params={"after": utcnow().isoformat()},
                             headers={"Accept": "text/event-stream"}),
    ]
    assert (await dispatcher.post("/desk/logout", data={"csrf": token}, allow_redirects=False)).status == 303
    for stream in streams:
        kinds = []
        while "signed_out" not in kinds:
            block = (await asyncio.wait_for(stream.content.readuntil(b"\n\n"), timeout=30)).decode()
            kinds += [line[7:] for line in block.splitlines() if line.startswith("event: ")]
        assert (await stream.content.read()) == b""  # and the server ends it


async def test_the_desk_shows_how_a_case_was_located_and_draws_approximate_points_as_such(desk: Desk) -> None:
    corner = desk.new_case(category="theft", address="Mallorca con Pau Claris", latitude=41.39501, longitude=2.16411,
                           location_source="corner", location_radius=30, neighbourhood_code="02-07",
                           neighbourhood_name="la Dreta de l'Eixample")
    street = desk.new_case(category="theft", address="carrer de Mallorca", latitude=41.4036, longitude=2.1747,
                           location_source="street", location_radius=420, neighbourhood_code="02-06",
                           neighbourhood_name="la Sagrada Família")
    client = await desk.client("dispatcher1")
    page = await (await client.get(f"/desk/cases/{corner}")).text()
    assert "Corner of two streets" in page and "(± 30 m)" in page
    page = await (await client.get(f"/desk/cases/{street}")).text()
    assert "Street, in the neighbourhood the citizen chose" in page
    assert "± 420 m, approximate: not used for the 150 m duplicate check" in page
    assert 'class="approximate-area' in page  # the case's own map too
    drawn = await (await client.get("/desk/map")).text()
    precise = re.search(rf'<circle class="point priority-normal"[^>]*data-ref="{corner}"', drawn)
    approximate = re.search(rf'<circle class="point approximate priority-normal"[^>]*data-ref="{street}" '
                            r'data-approximate="420"', drawn)
    assert precise and approximate, drawn[-3000:]
    assert "approximate, ± 420 m" in drawn  # said in the point's title too
