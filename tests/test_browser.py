"""A citizen files a whole report in a real headless Chromium (Debian's), on a phone-sized
screen, through the real bot service, engine and action server."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from bot.app import create_app
from tests.conftest import Stack
from tests.test_webchat import app_settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
REF = re.compile(r"\b(?!SHA-256)[2-9A-Z]{3}-[2-9A-Z]{3}\b")
# A 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000b4944415478da636000020000050001e9fadcd80000000049454e44ae426082"
)

pytestmark = [pytest.mark.engine, pytest.mark.browser]


async def bot_messages(page: Page) -> int:
    return await page.locator(".msg.bot").count()


async def send_text(page: Page, text: str) -> None:
    before = await bot_messages(page)
    await page.fill("#message-input", text)
    await page.press("#message-input", "Enter")
    await expect(page.locator(".msg.bot")).not_to_have_count(before, timeout=60_000)


async def click_reply(page: Page, name: str | re.Pattern[str]) -> None:
    before = await bot_messages(page)
    await page.get_by_role("button", name=name).last.click()
    await expect(page.locator(".msg.bot")).not_to_have_count(before, timeout=60_000)


async def test_a_citizen_files_a_whole_report_in_the_browser(stack: Stack, aiohttp_server, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make chromium` installs it")
    server = await aiohttp_server(create_app(app_settings(stack)))
    photo = tmp_path / "graffiti.png"
    photo.write_bytes(PNG)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(
            viewport={"width": 390, "height": 800}, locale="en-GB",
            geolocation={"latitude": 41.3809, "longitude": 2.1734}, permissions=["geolocation"],
        )
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(str(server.make_url("/")))
        await expect(page.locator("#send-button")).to_be_enabled(timeout=15_000)

        await send_text(page, "Someone sprayed graffiti all over the door of the school last night")
        await expect(page.locator(".msg.bot").last).to_contain_text("Where", timeout=30_000)
        await click_reply(page, re.compile("location", re.I))  # the browser shares its position
        await expect(page.locator(".msg.bot").last).to_contain_text(re.compile("photo", re.I))

        before = await bot_messages(page)
        await page.set_input_files("#photo-input", str(photo))
        await expect(page.locator(".msg.bot")).not_to_have_count(before, timeout=60_000)
        await click_reply(page, "Continue")
        await click_reply(page, "Anonymous")
        await expect(page.locator(".msg.bot").last).to_contain_text("el Raval")
        await click_reply(page, "Send the report")

        receipt = page.locator(".msg.bot", has_text=REF)
        await expect(receipt).to_have_count(1, timeout=30_000)
        await expect(page.locator(".msg.bot", has_text="SHA-256")).to_have_count(1)
        ref = REF.search(await receipt.inner_text()).group(0)

        await page.reload()  # the conversation survives a reload
        await expect(page.locator(".msg.bot", has_text=ref)).to_have_count(1, timeout=15_000)
        await expect(page.locator("#send-button")).to_be_enabled(timeout=15_000)
        await send_text(page, f"what is the status of {ref}?")
        await expect(page.locator(".msg.bot").last).to_contain_text(ref)
        assert errors == []
        await browser.close()
