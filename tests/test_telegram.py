"""The Telegram channel: the real python-telegram-bot Application inside the real bot
service, against a Bot API server on loopback (tests/telegram_server.py) that plays
Telegram and the citizen."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from sqlmodel import select

from bot.app import create_app
from bot.keys import SETTINGS, TELEGRAM
from storage import cases as case_store
from storage.db import create_db_engine, session_scope
from storage.migrate import upgrade_database
from storage.models import CaseCreate, Reporter
from tests.conftest import Stack, free_port, make_settings
from tests.telegram_server import FakeTelegram, fake_telegram  # noqa: F401 - the fixture
from tests.test_webchat import app_settings

REF = re.compile(r"\b(?!SHA-256)[2-9A-Z]{3}-[2-9A-Z]{3}\b")
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000b4944415478da636000020000050001e9fadcd80000000049454e44ae426082"
)
USER = 4242


async def next_reply(fake: FakeTelegram, chat_id: int, seen: int, timeout: float = 60) -> dict:
    """Wait for the bot's next message to the chat after `seen` earlier ones."""
    await fake.wait_for_messages(chat_id, seen + 1, timeout=timeout)
    return fake.sent_messages(chat_id, method="sendMessage")[seen]


def texts(fake: FakeTelegram, chat_id: int) -> list[str]:
    return [m.get("text", "") for m in fake.sent_messages(chat_id, method="sendMessage")]


async def settle(fake: FakeTelegram, chat_id: int, quiet: float = 1.5, timeout: float = 60) -> list[dict]:
    """Wait until the bot stops writing to the chat; returns its messages so far."""
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        now = len(fake.sent_messages(chat_id, method="sendMessage"))
        if now == count and now > 0:
            break
        count = now
        await _sleep(quiet)
    return fake.sent_messages(chat_id, method="sendMessage")


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def start_bot(tmp_path: Path, fake: FakeTelegram, aiohttp_server, **overrides: object) -> TestServer:
    """The bot service with Telegram on, its engine ports pointing nowhere (not needed here)."""
    settings = make_settings(tmp_path, telegram_token="123:ABC", telegram_api_url=fake.base_url,
                             rasa_port=free_port(), actions_port=free_port(), **overrides)
    upgrade_database(settings.database_url)
    return await aiohttp_server(create_app(settings))


@pytest.mark.engine
async def test_a_whole_report_through_telegram(stack: Stack, fake_telegram: FakeTelegram, aiohttp_server) -> None:  # noqa: F811
    fake = fake_telegram
    settings = app_settings(stack, telegram_token="123:ABC", telegram_api_url=fake.base_url)
    server = await aiohttp_server(create_app(settings))
    assert fake.commands_for("ca") and fake.commands_for("es") and fake.commands_for("")
    assert {c["command"] for c in fake.commands_for("ca")} >= {"start", "help", "language", "status", "alerts", "forget", "cancel"}

    fake.send_text(USER, "m'han robat la bicicleta aquest matí davant de casa meva, l'havia lligat amb cadenat", language_code="ca")
    messages = await settle(fake, USER)
    assert messages, "no answer"
    for _ in range(10):
        last = messages[-1]
        markup = last.get("reply_markup") or {}
        if markup.get("keyboard"):  # "share my location" reply keyboard
            assert markup["keyboard"][0][0]["request_location"] is True
            fake.send_location(USER, 41.4036, 2.1590, language_code="ca")
        elif any('"photos_done"' in b.get("callback_data", "") for row in markup.get("inline_keyboard", []) for b in row):
            if not any("SHA" in t for t in texts(fake, USER)) and fake.downloads == []:
                fake.send_photo(USER, PNG, caption=None, language_code="ca")
            else:
                fake.press_button(USER, last, '/inform{"photos_done":"yes"}', language_code="ca")
        elif any('"contact_mode"' in b.get("callback_data", "") for row in markup.get("inline_keyboard", []) for b in row):
            fake.press_button(USER, last, '/inform{"contact_mode":"chat"}', language_code="ca")
        elif any(b.get("callback_data") == "/affirm" for row in markup.get("inline_keyboard", []) for b in row):
            fake.press_button(USER, last, "/affirm", language_code="ca")
            break
        else:
            fake.send_text(USER, "cap a les nou del matí", language_code="ca")
        before = len(messages)
        await next_reply(fake, USER, before)
        messages = await settle(fake, USER)
    final = await settle(fake, USER)
    joined = "\n".join(m.get("text", "") for m in final)
    ref = REF.search(joined)
    assert ref, joined
    assert "SHA-256" in joined
    assert fake.answered_callbacks, "callback queries must be answered"
    engine = create_db_engine(settings.database_url)
    with session_scope(engine) as session:
        case = case_store.get_case_for_sender(session=session, ref=ref.group(0), sender_id=f"telegram:{USER}")
        assert case is not None and case.channel == "telegram" and case.locale == "ca"
        assert case.neighbourhood_name == "la Vila de Gràcia"
        assert len(case_store.get_attachments(session=session, case_id=case.id)) == 1
    await server.close()


async def test_webhook_mode_needs_the_secret(tmp_path: Path, fake_telegram: FakeTelegram) -> None:  # noqa: F811
    fake = fake_telegram
    port = free_port()
    settings = make_settings(
        tmp_path, bot_port=port, telegram_token="123:ABC", telegram_api_url=fake.base_url,
        telegram_webhook_url=f"http://127.0.0.1:{port}/telegram/hook", rasa_port=free_port(), actions_port=free_port(),
    )
    upgrade_database(settings.database_url)
    server = TestServer(create_app(settings), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        assert fake.webhook is not None and fake.webhook["url"].endswith("/telegram/hook")
        assert fake.webhook["secret_token"] == settings.webhook_secret
        update = fake.send_sticker(USER)  # delivered through the webhook with the right secret
        await fake.wait_for_messages(USER, 1)
        assert "text, photos and locations" in texts(fake, USER)[0] or "texto, fotos" in texts(fake, USER)[0]
        status = await fake.post_update_to_webhook({**update, "update_id": update["update_id"] + 100}, secret_token="wrong")
        assert status == 403
        await _sleep(1)
        assert len(texts(fake, USER)) == 1  # the forged update was not processed
    finally:
        await server.close()


async def test_unsupported_messages_get_a_polite_answer_and_channel_posts_none(tmp_path: Path, fake_telegram: FakeTelegram, aiohttp_server) -> None:  # noqa: F811
    fake = fake_telegram
    server = await start_bot(tmp_path, fake, aiohttp_server)
    fake.send_voice(USER, language_code="en")
    fake.send_document(USER, b"%PDF-1.4", "application/pdf", language_code="en")
    fake.send_edited_message(USER, "I meant yesterday", language_code="en")
    fake.send_channel_post(-100555, "news")
    fake.send_unknown_update()
    await fake.wait_for_messages(USER, 3)
    await _sleep(1)
    sent = texts(fake, USER)
    assert sent[0] == sent[1] == "I can read text, photos and locations. Please write your message."
    assert "new message" in sent[2]
    assert fake.sent_messages(-100555) == []
    await server.close()


async def test_a_429_is_obeyed_and_a_blocked_citizen_is_marked_unreachable(tmp_path: Path, fake_telegram: FakeTelegram, aiohttp_server) -> None:  # noqa: F811
    fake = fake_telegram
    server = await start_bot(tmp_path, fake, aiohttp_server)
    settings = server.app[SETTINGS]
    channel = server.app[TELEGRAM]

    fake.add_user(USER)
    fake.fail_next("sendMessage", error_code=429, retry_after=1, times=1)
    from bot.channels.base import OutgoingMessage

    await channel.respond(f"telegram:{USER}", [OutgoingMessage(text="Your report K7Q-4M2 is now in progress.")])
    attempts = fake.attempt_times("sendMessage", USER)
    assert len(attempts) == 2 and attempts[1] - attempts[0] >= 1.0
    assert texts(fake, USER) == ["Your report K7Q-4M2 is now in progress."]

    engine = create_db_engine(settings.database_url)
    with session_scope(engine) as session:
        case_store.get_or_create_reporter(session=session, sender_id="telegram:777", channel="telegram", locale="en")
    fake.add_user(777)
    fake.block_user(777)
    await channel.respond("telegram:777", [OutgoingMessage(text="news"), OutgoingMessage(text="more news")])
    assert len(fake.attempt_times("sendMessage", 777)) == 1  # not retried, not sent again
    with session_scope(engine) as session:
        reporter = session.exec(select(Reporter).where(Reporter.sender_id == "telegram:777")).one()
        assert reporter.unreachable is True
    await server.close()


async def test_an_oversize_photo_gets_a_clear_message(tmp_path: Path, fake_telegram: FakeTelegram, aiohttp_server) -> None:  # noqa: F811
    fake = fake_telegram
    server = await start_bot(tmp_path, fake, aiohttp_server, max_photo_bytes=1000)
    fake.send_photo(USER, PNG + b"\0" * 5000, language_code="es")
    await fake.wait_for_messages(USER, 1)
    assert "demasiado grande" in texts(fake, USER)[0].lower()
    await server.close()


async def test_new_cases_reach_the_dispatch_group_once_with_working_buttons(tmp_path: Path, fake_telegram: FakeTelegram, aiohttp_server) -> None:  # noqa: F811
    fake = fake_telegram
    group = -100777
    fake.send_group_message(555, group, "hello team", language_code="en")  # the group exists; the bot ignores chatter
    server = await start_bot(tmp_path, fake, aiohttp_server, dispatch_chat_id=group)
    settings = server.app[SETTINGS]
    db = create_db_engine(settings.database_url)
    with session_scope(db) as session:
        case = case_store.create_case(session=session, case_in=CaseCreate(
            sender_id="telegram:4242", channel="telegram", locale="es", category="assault", priority="urgent",
            description='<script>alert(1)</script> "><img src=x onerror=alert(1)> javascript:alert(1)',
            address="Carrer de Blai 12", neighbourhood_name="el Poble-sec", contact_mode="chat"))
    await fake.wait_for_messages(group, 1)
    announcement = fake.sent_messages(group, method="sendMessage")[0]
    assert announcement["text"].startswith(f"🚨 URGENT · {case.ref}")
    assert "<script>alert(1)</script>" in announcement["text"] and not announcement.get("parse_mode")
    buttons = [b["callback_data"] for row in announcement["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == [f"desk:ack:{case.ref}", f"desk:take:{case.ref}"]

    fake.press_button(555, announcement, f"desk:take:{case.ref}", language_code="en")
    await fake.wait_for_messages(group, 2)
    assert "taken by" in fake.sent_messages(group, method="sendMessage")[1]["text"]
    with session_scope(db) as session:
        taken = case_store.get_case_by_ref(session=session, ref=case.ref)
        assert taken.status == "acknowledged" and taken.assignee.startswith("@")
    await server.close()

    again = await start_bot(tmp_path, fake, aiohttp_server, dispatch_chat_id=group)
    await _sleep(3)
    assert len([m for m in fake.sent_messages(group, method="sendMessage") if case.ref in m["text"] and "URGENT" in m["text"]]) == 1
    await again.close()
