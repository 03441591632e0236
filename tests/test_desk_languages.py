"""The desk in the staff's own language: the account's language (else the browser's), dates,
numbers and durations by Babel, the sign-in page by Accept-Language, the dispatch group in
DISPATCH_LOCALE; and in Debian's headless Chromium a Catalan dispatcher goes through the
queue, a case, the map and the stats without meeting one English string of the desk, then
switches the desk to Spanish. The Catalan pages are the README's screenshots."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from babel.messages.pofile import read_po
from playwright.async_api import Browser, Page, expect
from sqlmodel import select

from bot.dashboard.labels import DeskText
from bot.dispatch import dispatch_buttons, dispatch_text
from common.i18n import Catalogs, browser_locale
from common.settings import PROJECT_ROOT, Settings
from storage import users
from storage.db import session_scope
from storage.models import Case, Reporter, StaffUser
from tests.conftest import TEST_SECRET
from tests.desk import PASSWORD, Desk, csrf_of
from tests.test_dashboard import (  # noqa: F401 - browser: the fixture
    PNG,
    RAVAL,
    SAMPLES,
    SCREENSHOTS,
    browser,
    graffiti_photo,
    seed_realistic_desk,
    watch,
)

pytest_plugins = ("tests.desk",)  # the desk fixture

LOCALES = PROJECT_ROOT / "locales"
MADRID = ZoneInfo("Europe/Madrid")
PLACEHOLDER = re.compile(r"\\\{\w*\\\}")  # a {placeholder} once the msgid is escaped for a regex


def catalogs() -> Catalogs:
    return Catalogs.load(LOCALES)


# --------------------------------------------------------------------------- words, dates, numbers


@pytest.mark.parametrize(("header", "expected"), [
    ("ca-ES,ca;q=0.9,es;q=0.8,en;q=0.7", "ca"),
    ("es-ES,es;q=0.9", "es"),
    ("fr-FR,fr;q=0.9,es;q=0.5,ca;q=0.4", "es"),  # the first supported one by quality
    ("en;q=0.1,ca;q=0.8", "ca"),
    ("de-DE", "en"), ("", "en"), (None, "en"), ("ca;q=0", "en"), ("*", "en"), ("ca;q=abc,es", "es"),
])
def test_the_browsers_language_is_read_from_accept_language(header: str | None, expected: str) -> None:
    assert browser_locale(header, "en") == expected


def test_dates_numbers_and_durations_are_written_by_babel_for_the_locale() -> None:
    moment = datetime(2026, 12, 7, 9, 5, tzinfo=UTC)  # 10:05 in Barcelona
    words = {locale: DeskText(catalogs=catalogs(), locale=locale, zone=MADRID) for locale in ("en", "es", "ca")}
    assert words["ca"].when(moment) == "dl., 7 de des. 2026, 10:05"
    assert words["es"].when(moment) == "lun, 7 dic 2026, 10:05"
    assert words["en"].when(moment) == "Mon, Dec 7, 2026, 10:05"
    assert words["ca"].duration(1.5) == "1,5 h" and words["en"].duration(1.5) == "1.5 hr"
    assert words["es"].duration(0.25) == "15 min" and words["ca"].duration(72) == "3 dies"
    assert words["ca"].number(1234.5, 1) == "1.234,5" and words["en"].number(1234.5, 1) == "1,234.5"
    assert words["ca"].percent(0.75) == "75\u00a0%" and words["en"].percent(0.75) == "75%"
    assert words["ca"].age(3 * 3600 + 5 * 60) == "3 h 05 min" and words["ca"].age(10) == "ara mateix"
    assert words["ca"].status("in_progress") == "En curs" and words["es"].priority("urgent") == "Urgente"
    assert words["ca"].category("theft") != words["en"].category("theft")
    assert words["ca"].ngettext("{n} open case", "{n} open cases", 1) == "1 cas obert"
    assert words["es"].ngettext("{n} open case", "{n} open cases", 1200) == "1.200 casos abiertos"


def test_the_dispatch_group_is_written_in_dispatch_locale(tmp_path) -> None:
    case = Case(ref="K7Q-4M2", sender_id="web:x", channel="web", locale="en", category="theft",
                priority="urgent", description="my bike", address="Carrer de Verdi 18",
                neighbourhood_name="la Vila de Gràcia", occurred_at=datetime(2026, 12, 6, 21, 0, tzinfo=UTC))
    spanish = Settings(secret_key=TEST_SECRET, dispatch_locale="es")
    text = dispatch_text(case, catalogs(), spanish)
    assert text.startswith("🚨 URGENTE · K7Q-4M2 · Robo") and "la Vila de Gràcia" in text
    assert "my bike" not in text and "Verdi" not in text  # nothing the citizen wrote (issue #13)
    buttons = dispatch_buttons("K7Q-4M2", catalogs(), "ca").inline_keyboard[0]
    assert [b.text for b in buttons] == ["✅ Rebut", "🙋 M'hi poso"]
    assert Settings(secret_key=TEST_SECRET, default_locale="ca").dispatch_language == "ca"  # default: DEFAULT_LOCALE
    with pytest.raises(ValueError, match="DISPATCH_LOCALE"):
        Settings(secret_key=TEST_SECRET, dispatch_locale="fr")


# --------------------------------------------------------------------------- over HTTP


def add_staff(desk: Desk, name: str, locale: str | None, role: str = "dispatcher") -> None:
    with session_scope(desk.db) as session:
        users.create_user(session=session, name=name, role=role, locale=locale)
        users.set_password(session=session, name=name, password=PASSWORD)


async def test_the_sign_in_page_follows_the_browser_and_the_desk_the_account(desk: Desk) -> None:
    client = await desk.client()
    page = await client.get("/desk/login", headers={"Accept-Language": "ca-ES,ca;q=0.9,en;q=0.5"})
    html = await page.text()
    assert '<html lang="ca">' in html and "Inicia la sessió" in html and "Contrasenya" in html
    page = await client.get("/desk/login", headers={"Accept-Language": "es-ES,es;q=0.9"})
    assert '<html lang="es">' in await page.text()
    refused = await client.post("/desk/login", data={"name": "x", "password": "y"},
                                headers={"Accept-Language": "es"})
    assert refused.status == 403 and "Este formulario de acceso ha caducado" in await refused.text()

    add_staff(desk, "marta", "ca")
    marta = await desk.client("marta")
    queue = await (await marta.get("/desk/", headers={"Accept-Language": "en-GB,en"})).text()
    assert '<html lang="ca">' in queue and "Casos oberts" in queue  # the account's language wins
    token = csrf_of(queue)
    changed = await marta.post("/desk/language", data={"csrf": token, "locale": "es"},
                               headers={"Referer": desk.url("/desk/stats?weeks=4")}, allow_redirects=False)
    assert changed.status == 303 and changed.headers["Location"] == "/desk/stats?weeks=4"
    with session_scope(desk.db) as session:
        assert session.exec(select(StaffUser).where(StaffUser.name == "marta")).one().locale == "es"
    stats = await (await marta.get("/desk/stats")).text()
    assert '<html lang="es">' in stats and "Estadísticas" in stats
    bad = await marta.post("/desk/language", data={"csrf": token, "locale": "fr"})
    assert bad.status == 422 and "Idioma desconocido" in await bad.text()
    forged = await marta.post("/desk/language", data={"csrf": "nope", "locale": "ca"})
    assert forged.status == 403
    # a user with no language of their own gets the browser's
    with session_scope(desk.db) as session:
        users.set_locale(session=session, name="dispatcher1", locale=None)
    plain = await desk.client("dispatcher1")
    spanish = await (await plain.get("/desk/map", headers={"Accept-Language": "es"})).text()
    assert "Mapa de casos abiertos" in spanish


# --------------------------------------------------------------------------- in Chromium


@cache
def english_of_the_desk(locale: str) -> list[tuple[str, re.Pattern[str] | None]]:
    """Every English msgid whose translation in ``locale`` differs, as an exact text or, with
    placeholders, a pattern a whole text must match."""
    with (LOCALES / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    found = []
    for message in catalog:
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        for msgid in ids:
            if not msgid or msgid in strings or len(msgid) < 3:
                continue
            escaped = re.escape(msgid)
            pattern = re.compile(PLACEHOLDER.sub(".+", escaped)) if PLACEHOLDER.search(escaped) else None
            found.append((msgid, pattern))
    return found


VISIBLE_TEXTS = """() => {
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest('script, style, select#desk-language')) continue;
    const text = node.textContent.replace(/\\s+/g, ' ').trim();
    if (text) texts.push(text);
  }
  for (const element of document.querySelectorAll('[title], [aria-label], [placeholder], [alt]')) {
    for (const name of ['title', 'aria-label', 'placeholder', 'alt']) {
      const value = element.getAttribute(name);
      if (value && value.trim()) texts.push(value.trim());
    }
  }
  texts.push(document.title);
  return texts;
}"""


async def english_on(page: Page, locale: str, citizen_words: set[str]) -> list[str]:
    """The English strings of the desk the page shows (citizens' own words excepted)."""
    assert await page.get_attribute("html", "lang") == locale
    hits = []
    for text in await page.evaluate(VISIBLE_TEXTS):
        if any(words and words in text for words in citizen_words):
            continue
        for msgid, pattern in english_of_the_desk(locale):
            if text == msgid or (pattern is not None and pattern.fullmatch(text)) or (
                    pattern is None and len(msgid) > 14 and msgid in text):
                hits.append(f"{msgid!r} in {text!r}")
    return hits


async def test_a_catalan_dispatcher_meets_no_english_on_the_desk(desk: Desk, browser: Browser) -> None:  # noqa: F811
    featured = seed_realistic_desk(desk, await graffiti_photo(browser))
    add_staff(desk, "marta", "ca")
    with session_scope(desk.db) as session:
        citizen_words = {value for case in session.exec(select(Case)).all() for value in (
            case.description, case.address, case.occurred_text, case.assignee) if value}
        citizen_words |= {value for reporter in session.exec(select(Reporter)).all() for value in (
            reporter.contact_name, reporter.contact_phone, reporter.contact_email) if value}
    citizen_words |= {"Third report about this doorway in two weeks. Coordinate with the social services "
                      "outreach team."}
    # the browser says English: the account's Catalan must win
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB",
                                        timezone_id="Europe/Madrid")
    page = await context.new_page()
    problems = watch(page)
    await page.goto(desk.url("/desk/login"))
    await page.fill("#name", "marta")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(re.compile(r"/desk/$"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#live-status")).to_have_text("En directe")
    await expect(page.locator("#queue-body tr.case-row")).to_have_count(len(SAMPLES))
    await expect(page.locator("h1")).to_have_text("Casos oberts")
    await expect(page.locator("#queue-body .badge.priority:visible").first).to_have_text("Urgent")
    assert await english_on(page, "ca", citizen_words) == []
    # a case arriving live is labelled in Catalan too (desk.js and the event stream)
    live = desk.new_case(category="theft", priority="high", description="M'han pres la motxilla al metro.", **RAVAL)
    row = page.locator(f"#case-{live}")
    await expect(row.locator(".c-category")).to_have_text("Robatori", timeout=15_000)
    await expect(row.locator(".c-status .badge")).to_have_text("Nou")
    await expect(row.locator(".c-age")).to_have_text("ara mateix")
    assert await english_on(page, "ca", citizen_words | {"M'han pres la motxilla al metro."}) == []
    await page.screenshot(path=str(SCREENSHOTS / "queue.png"))

    await page.goto(desk.url(f"/desk/cases/{featured}"))
    await page.wait_for_load_state("networkidle")
    await expect(page.locator("#report-title")).to_have_text("Avís")
    await expect(page.locator("#history")).to_contain_text("Canvi d'estat")
    assert await english_on(page, "ca", citizen_words) == []
    await page.screenshot(path=str(SCREENSHOTS / "case.png"))
    # an illegal change is explained in Catalan
    desk.change(featured, status="resolved")
    await page.select_option("#status", "rejected")
    await page.click("#update-form button[type=submit]")
    await expect(page.locator("#case-error")).to_contain_text(
        "No s'ha fet aquest canvi: un cas en «resolt» no pot passar a «rebutjat»")

    await page.goto(desk.url("/desk/map"))
    await expect(page.locator("svg.city-map path.area")).to_have_count(73)
    await expect(page.locator("#legend-title")).to_have_text("Llegenda")
    assert await english_on(page, "ca", citizen_words) == []
    await page.screenshot(path=str(SCREENSHOTS / "map.png"))

    await page.goto(desk.url("/desk/stats"))
    await expect(page.locator("#chart-weekly .legend li").first).to_be_visible()
    await expect(page.locator("h1")).to_have_text("Estadístiques")
    assert await english_on(page, "ca", citizen_words) == []
    await page.screenshot(path=str(SCREENSHOTS / "stats.png"))
    for name in ("queue", "case", "map", "stats"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 20_000

    # the Spanish pass: the desk's own language menu, kept on the account
    await page.select_option("#desk-language", "es")
    await page.wait_for_load_state("load")
    await expect(page.locator("h1")).to_have_text("Estadísticas")
    assert await english_on(page, "es", citizen_words) == []
    for path in ("/desk/", f"/desk/cases/{featured}", "/desk/map"):
        await page.goto(desk.url(path))
        await page.wait_for_load_state("networkidle")
        assert await english_on(page, "es", citizen_words) == [], path
    await page.goto(desk.url("/desk/"))
    await expect(page.locator("#live-status")).to_have_text("En directo")
    with session_scope(desk.db) as session:
        assert session.exec(select(StaffUser).where(StaffUser.name == "marta")).one().locale == "es"
    assert [p for p in problems if "409 (Conflict)" not in p] == []  # the refused change above
    await context.close()
