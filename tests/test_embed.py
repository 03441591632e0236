"""The web chat on a city's own site (bot/embed): /embed.js and the chat page's framing policy
over HTTP; and in headless Chromium, a host page on another site embeds the snippet, the panel
works from the keyboard and on a phone, a whole report is filed inside it against the real
engine, and a site not in EMBED_ORIGINS cannot frame the chat."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import FrameLocator, Page, async_playwright, expect

from bot.app import create_app
from bot.embed.routes import frame_policy
from bot.headers import CONTENT_SECURITY_POLICY
from storage.migrate import upgrade_database
from tests.conftest import Stack, free_port, make_settings
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_webchat import app_settings

REF = re.compile(r"\b(?!SHA-256)[2-9A-Z]{3}-[2-9A-Z]{3}\b")
CITY = "https://www.barcelona.cat"


def frame_ancestors(response_headers) -> str:  # noqa: ANN001
    policy = response_headers["Content-Security-Policy"]
    return next(d.strip() for d in policy.split(";") if d.strip().startswith("frame-ancestors"))


async def test_nobody_frames_the_chat_page_unless_embed_origins_says_so(tmp_path: Path, aiohttp_client) -> None:
    closed = await aiohttp_client(create_app(make_settings(tmp_path)))
    response = await closed.get("/")
    assert frame_ancestors(response.headers) == "frame-ancestors 'none'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "/static/embed/frame.js" not in await response.text()

    opened = await aiohttp_client(create_app(make_settings(tmp_path, embed_origins=[CITY, "https://seu.example.cat/"])))
    response = await opened.get("/?embed=1&lang=ca")
    assert frame_ancestors(response.headers) == f"frame-ancestors 'self' {CITY} https://seu.example.cat"
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"  # for browsers without frame-ancestors
    page = await response.text()
    assert '<html lang="ca"' in page and '<script src="/static/embed/frame.js" defer>' in page
    # the rest of the service stays unframable
    assert frame_ancestors((await opened.get("/livez")).headers) == "frame-ancestors 'none'"
    # a value that would smuggle a directive into the policy never gets in
    with pytest.raises(ValueError, match="EMBED_ORIGINS"):
        make_settings(tmp_path, embed_origins=["https://a.example; script-src *"])
    assert frame_policy(CONTENT_SECURITY_POLICY, ()) == {}


async def test_the_snippet_carries_its_texts_in_three_languages(tmp_path: Path, aiohttp_client) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    response = await client.get("/embed.js")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/javascript")
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    script = await response.text()
    config = json.loads(re.search(r"var CONFIG = (\{.*?\});\n", script).group(1))  # type: ignore[union-attr]
    assert config["fallback"] == "en"
    assert config["strings"]["en"]["open"] == "Chat with Barri"
    assert config["strings"]["es"]["open"] == "Habla con Barri"
    assert config["strings"]["ca"]["close"] == "Tanca el xat"
    assert "__BARRI_CONFIG__" not in script
    assert (await client.get("/static/embed/frame.js")).status == 200


def host_site(barri_url: str, lang: str) -> web.Application:
    """A city's page on another site with the snippet, exactly as the README shows it."""
    page = f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>Seguretat</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'self'; script-src 'self' {barri_url}; frame-src {barri_url}">
</head><body><h1>Seguretat al barri</h1><p><a href="#top">Inici</a></p>
<script src="{barri_url}/embed.js" defer></script></body></html>"""
    app = web.Application()

    async def serve(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/", serve)
    return app


async def serve_city(aiohttp_server, barri_url: str, lang: str) -> str:  # noqa: ANN001
    port = free_port()
    await aiohttp_server(host_site(barri_url, lang), port=port)
    return f"http://localhost:{port}"  # another site than Barri's 127.0.0.1


async def chat_sent(chat: FrameLocator, before: int) -> None:
    await expect(chat.locator(".msg.bot")).not_to_have_count(before, timeout=60_000)


async def send_text(chat: FrameLocator, text: str) -> None:
    before = await chat.locator(".msg.bot").count()
    await chat.locator("#message-input").fill(text)
    await chat.locator("#message-input").press("Enter")
    await chat_sent(chat, before)


async def click_reply(chat: FrameLocator, name: str) -> None:
    before = await chat.locator(".msg.bot").count()
    await chat.get_by_role("button", name=name).last.click()
    await chat_sent(chat, before)


async def eventually(check, timeout: float = 10) -> None:  # noqa: ANN001
    """Wait until ``check()`` (a coroutine function) is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def focused_in_chat(page: Page) -> str:
    """The id of the focused element inside the chat's frame ('' when the frame is not focused)."""
    frame = next(f for f in page.frames if f.url.startswith("http://127.0.0.1"))
    return await frame.evaluate("document.hasFocus() ? (document.activeElement.id || '') : ''")


@pytest.mark.engine
@pytest.mark.browser
async def test_a_city_page_embeds_the_chat_and_a_whole_report_is_filed_in_the_panel(
    stack: Stack, aiohttp_server
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make chromium` installs it")
    city_port = free_port()
    city = f"http://localhost:{city_port}"
    barri = await aiohttp_server(create_app(app_settings(stack, embed_origins=[city])))
    barri_url = str(barri.make_url("")).rstrip("/")
    await aiohttp_server(host_site(barri_url, "es-ES"), port=city_port)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(city + "/")

        # keyboard: the launcher is a real button in the tab order, named in the page's language
        launcher = page.get_by_role("button", name="Habla con Barri")
        await expect(launcher).to_have_attribute("aria-expanded", "false")
        panel_id = await launcher.get_attribute("aria-controls")
        await page.keyboard.press("Tab")  # the page's link
        await page.keyboard.press("Tab")
        await expect(launcher).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(launcher).to_have_attribute("aria-expanded", "true")
        panel = page.get_by_role("dialog", name="Chat de Barri")
        await expect(panel).to_be_visible()
        assert await panel.get_attribute("id") == panel_id
        chat = page.frame_locator("iframe[title='Chat de Barri']")
        await expect(chat.locator("html")).to_have_attribute("lang", "es")  # the host page's language
        await expect(chat.locator("#send-button")).to_be_enabled(timeout=15_000)
        async def input_focused() -> bool:
            return await focused_in_chat(page) == "message-input"

        await eventually(input_focused)
        await page.keyboard.press("Escape")  # pressed inside the chat, another origin
        await expect(panel).to_be_hidden()
        await expect(launcher).to_be_focused()
        await expect(launcher).to_have_attribute("aria-expanded", "false")
        await page.keyboard.press("Enter")
        await expect(panel).to_be_visible()
        await page.get_by_role("button", name="Cerrar el chat").focus()
        await page.keyboard.press("Escape")  # and on the panel's own close button
        await expect(panel).to_be_hidden()
        await expect(launcher).to_be_focused()
        await launcher.click()
        box = await panel.bounding_box()
        assert box is not None and box["width"] < 500 and box["height"] < 900  # a panel, not the page

        # a whole report, inside the panel
        await send_text(chat, "Anoche alguien pintó grafitis en toda la puerta de la escuela")
        await expect(chat.locator(".msg.bot").last).to_contain_text("Dónde", timeout=30_000)
        await send_text(chat, "Mallorca con Pau Claris")
        await expect(chat.locator(".msg.bot").last).to_contain_text("foto")
        await click_reply(chat, "Continuar sin foto")
        await click_reply(chat, "Anónimo")
        await expect(chat.locator(".msg.bot").last).to_contain_text("Pau Claris")
        await click_reply(chat, "Enviar el aviso")
        await expect(chat.locator(".msg.bot", has_text=REF)).to_have_count(1, timeout=30_000)

        # on a phone the panel takes the whole screen
        await page.set_viewport_size({"width": 390, "height": 800})
        box = await panel.bounding_box()
        assert box == {"x": 0, "y": 0, "width": 390, "height": 800}
        assert errors == []
        await browser.close()


@pytest.mark.browser
async def test_a_site_not_in_embed_origins_cannot_frame_the_chat(tmp_path: Path, aiohttp_server) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make chromium` installs it")
    allowed = f"http://localhost:{free_port()}"  # some other site is allowed, not this one
    settings = make_settings(tmp_path, embed_origins=[allowed])
    upgrade_database(settings.database_url)
    barri = await aiohttp_server(create_app(settings))
    barri_url = str(barri.make_url("")).rstrip("/")
    stranger = await serve_city(aiohttp_server, barri_url, "ca")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page()
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        await page.goto(stranger + "/")
        await page.get_by_role("button", name="Parla amb Barri").click()
        await expect(page.get_by_role("dialog", name="Xat de Barri")).to_be_visible()
        async def refused() -> bool:
            return any("frame-ancestors" in line for line in console)

        await eventually(refused)
        chat = page.frame_locator("iframe[title='Xat de Barri']")
        await expect(chat.locator("#message-input")).to_have_count(0)
        await browser.close()
