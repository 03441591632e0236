"""The open-source Rasa web-chat widget, exactly as npm ships it (rasa-webchat 1.0.1, installed
from tests/widget/package-lock.json by `make widget`), on a city's page on another site, with
its socketUrl pointing at Barri: a whole report filed through it in headless Chromium against the
real engine and action server. Nothing of the widget is ours."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Page, async_playwright, expect

from bot.app import create_app
from storage import cases as case_store
from storage.db import create_db_engine, session_scope
from tests.conftest import Stack, free_port
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_webchat import app_settings

WIDGET = Path(__file__).parent / "widget" / "node_modules" / "rasa-webchat" / "lib" / "index.js"
REF = re.compile(r"\b(?!SHA-256)[2-9A-Z]{3}-[2-9A-Z]{3}\b")
# The widget holds each message back 0.8-3 s by default ("typing"); the city's set-up below turns that
# off (the widget's customMessageDelay option), so a turn's answer is whole once nothing new came
# for QUIET_SECONDS, instead of 4 s after every message.
QUIET_SECONDS = 1.5

pytestmark = [pytest.mark.engine, pytest.mark.browser]

HOST_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Ajuntament: seguretat</title></head>
<body><h1>Seguretat al barri</h1><p>The city's own page.</p>
<script src="/rasa-webchat.js"></script><script src="/start.js"></script></body></html>
"""
START = """window.WebChat.default({
  socketUrl: %(barri)s, socketPath: "/socket.io/", customData: {language: "en"},
  title: "Barri", inputTextFieldHint: "Type a message", params: {storage: "local"},
  customMessageDelay: function () { return 0; }
}, null);
"""


def host_site(barri_url: str) -> web.Application:
    """The city's site: its page, the widget's bundle as installed from npm, and the widget's set-up."""
    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=HOST_PAGE, content_type="text/html")

    async def bundle(request: web.Request) -> web.FileResponse:
        return web.FileResponse(WIDGET, headers={"Content-Type": "application/javascript"})

    async def start(request: web.Request) -> web.Response:
        return web.Response(text=START % {"barri": f'"{barri_url}"'}, content_type="application/javascript")

    app.router.add_get("/", page)
    app.router.add_get("/rasa-webchat.js", bundle)
    app.router.add_get("/start.js", start)
    return app


async def bot_said(page: Page) -> list[str]:
    return [text.strip() for text in await page.locator(".rw-response").all_inner_texts()]


async def settle(page: Page, before: int, timeout: float = 60) -> list[str]:
    """Wait for the bot's answer: new messages, then none for QUIET_SECONDS."""
    deadline = time.monotonic() + timeout
    seen, quiet_since = before, time.monotonic()
    while time.monotonic() < deadline:
        count = await page.locator(".rw-response").count()
        if count != seen:
            seen, quiet_since = count, time.monotonic()
        elif count > before and time.monotonic() - quiet_since >= QUIET_SECONDS:
            return (await bot_said(page))[before:]
        await page.wait_for_timeout(250)
    raise AssertionError(f"no answer from Barri in the widget: {await bot_said(page)}")


async def type_text(page: Page, text: str) -> list[str]:
    before = await page.locator(".rw-response").count()
    await page.fill(".rw-new-message", text)
    await page.press(".rw-new-message", "Enter")
    return await settle(page, before)


async def press(page: Page, title: str | re.Pattern[str]) -> list[str]:
    before = await page.locator(".rw-response").count()
    await page.locator(".rw-reply", has_text=title).last.click()
    return await settle(page, before)


async def file_a_report_in_the_widget(page: Page) -> str:
    """From the first account to the receipt, answering what the form asks; returns the reference."""
    said = await type_text(page, "Someone sprayed graffiti all over the door of the school last night")
    places = ["Mallorca and Pau Claris", "Plaça de Catalunya"]
    for _ in range(10):
        text = " ".join(said)
        replies = [t.strip() for t in await page.locator(".rw-reply").all_inner_texts()]
        if REF.search(text):
            return REF.search(text).group(0)  # type: ignore[union-attr]
        if "Send the report" in replies:
            said = await press(page, "Send the report")
        elif "Anonymous" in replies:
            said = await press(page, "Anonymous")
        elif any("without a photo" in r for r in replies):
            said = await press(page, re.compile("without a photo"))
        elif "Just now" in replies and "when" in text.lower():
            said = await press(page, "Just now")
        elif "where" in text.lower() and places:
            said = await type_text(page, places.pop(0))
        else:
            raise AssertionError(f"an unexpected question: {said} {replies}")
    raise AssertionError(f"no receipt: {await bot_said(page)}")


async def test_the_rasa_widget_from_npm_files_a_whole_report_through_barri(
    stack: Stack, aiohttp_server, tmp_path: Path
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make chromium` installs it")
    if not WIDGET.exists():
        pytest.fail("the Rasa widget is missing: `make widget` installs it from npm")
    host_port = free_port()
    city = f"http://localhost:{host_port}"  # another site than Barri's 127.0.0.1
    settings = app_settings(stack, embed_origins=[city])
    barri = await aiohttp_server(create_app(settings))
    await aiohttp_server(host_site(str(barri.make_url("")).rstrip("/")), port=host_port)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(locale="en-GB")
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(city + "/")
        await page.locator(".rw-launcher").click()
        await expect(page.locator(".rw-new-message")).to_be_enabled(timeout=15_000)

        ref = await file_a_report_in_the_widget(page)

        # the widget keeps the session id Barri confirmed; the case is the web chat's, filed by it
        session = await page.evaluate("JSON.parse(localStorage.getItem('chat_session')).session_id")
        sender = session.split(".")[0]
        assert re.fullmatch(r"web:[0-9a-f]{32}", sender)
        db = create_db_engine(settings.database_url)
        with session_scope(db) as db_session:
            [case] = [c for c in case_store.list_cases_for_sender(session=db_session, sender_id=sender)]
            assert (case.ref, case.channel, case.category) == (ref, "web", "vandalism")
        db.dispose()

        # a reload continues the same conversation: the status of the report, by its reference
        await page.reload()  # the widget reopens as it was left (open)
        await expect(page.locator(".rw-launcher")).to_have_count(1, timeout=15_000)
        if not await page.locator(".rw-new-message").is_visible():
            await page.locator(".rw-launcher").click()
        await expect(page.locator(".rw-new-message")).to_be_enabled(timeout=15_000)
        answer = await type_text(page, f"what is the status of {ref}?")
        assert ref in " ".join(answer)
        assert errors == []
        await browser.close()
