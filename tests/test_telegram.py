"""The Telegram channel: the real python-telegram-bot Application inside the real bot
service, against a Bot API server on loopback (tests/telegram_server.py) that plays
Telegram and the citizen."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from sqlmodel import select

from bot.app import create_app
from bot.keys import CHANNELS, SETTINGS
from storage import attachments as attachment_store
from storage import cases as case_store
from storage import reporters as reporter_store
from storage import users
from storage.db import create_db_engine, session_scope
from storage.migrate import upgrade_database
from storage.models import AuditLog, CaseCreate, Reporter
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
        assert len(attachment_store.get_attachments(session=session, case_id=case.id)) == 1
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
    channel = server.app[CHANNELS]["telegram"]

    fake.add_user(USER)
    fake.fail_next("sendMessage", error_code=429, retry_after=1, times=1)
    from bot.channels.base import OutgoingMessage

    await channel.respond(f"telegram:{USER}", [OutgoingMessage(text="Your report K7Q-4M2 is now in progress.")])
    attempts = fake.attempt_times("sendMessage", USER)
    assert len(attempts) == 2 and attempts[1] - attempts[0] >= 1.0
    assert texts(fake, USER) == ["Your report K7Q-4M2 is now in progress."]

    engine = create_db_engine(settings.database_url)
    with session_scope(engine) as session:
        reporter_store.get_or_create_reporter(session=session, sender_id="telegram:777", channel="telegram", locale="en")
    fake.add_user(777)
    fake.block_user(777)
    await channel.respond("telegram:777", [OutgoingMessage(text="news"), OutgoingMessage(text="more news")])
    assert len(fake.attempt_times("sendMessage", 777)) == 1  # not retried, not sent again
    with session_scope(engine) as session:
        reporter = session.exec(select(Reporter).where(Reporter.sender_id == "telegram:777")).one()
        assert reporter.unreachable is True
    await server.close()


async def test_a_question_with_choices_and_a_location_key_sends_the_key_in_a_second_message(
        tmp_path: Path, fake_telegram: FakeTelegram, aiohttp_server) -> None:  # noqa: F811
    """Telegram shows a message's inline buttons or its reply keyboard, never both: the
    neighbourhood buttons of the ambiguous-street question stay inline, and the "share my
    location" key (a reply keyboard) comes with a second message in the citizen's language."""
    fake = fake_telegram
    server = await start_bot(tmp_path, fake, aiohttp_server)
    channel = server.app[CHANNELS]["telegram"]
    fake.add_user(USER)
    from bot.channels.base import Button, OutgoingMessage

    question = OutgoingMessage(
        text="Carrer de Mallorca pasa por varios barrios. ¿En cuál ocurrió?",
        buttons=(Button("la Sagrada Família", '/inform{"neighbourhood_code":"02-06"}'),
                 Button("la Dreta de l'Eixample", '/inform{"neighbourhood_code":"02-07"}'),
                 Button("Una esquina o un número", '/inform{"correct":"place"}')),
        request="location")
    assert await channel.respond(f"telegram:{USER}", [question]) is True
    first, second = fake.sent_messages(USER, method="sendMessage")
    assert first["text"] == question.text
    assert [row[0]["text"] for row in first["reply_markup"]["inline_keyboard"]] == [b.title for b in question.buttons]
    assert second["text"] == "O comparte tu ubicación con el botón de abajo."
    [[key]] = second["reply_markup"]["keyboard"]
    assert key == {"text": "📍 Compartir mi ubicación", "request_location": True}
    # a location question without choices keeps its key on the question itself, in one message
    plain = OutgoingMessage(text="Please give me a street and number, or share your location.", request="location")
    assert await channel.respond(f"telegram:{USER}", [plain]) is True
    third = fake.sent_messages(USER, method="sendMessage")[2]
    assert third["text"] == plain.text and third["reply_markup"]["keyboard"][0][0]["request_location"] is True
    assert len(fake.sent_messages(USER, method="sendMessage")) == 3
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
    group, ana, stranger, community = -100777, 555, 556, 557
    fake.send_group_message(ana, group, "hello team", language_code="en")  # the group exists; the bot ignores chatter
    server = await start_bot(tmp_path, fake, aiohttp_server, dispatch_chat_id=group,
                             public_url="https://barri.example.org")
    settings = server.app[SETTINGS]
    db = create_db_engine(settings.database_url)
    with session_scope(db) as session:
        users.create_user(session=session, name="ana", role="dispatcher")
        users.link_telegram(session=session, name="ana", telegram_id=ana)
        users.create_user(session=session, name="pau", role="community")
        users.link_telegram(session=session, name="pau", telegram_id=community)
        case = case_store.create_case(session=session, case_in=CaseCreate(
            sender_id="telegram:4242", channel="telegram", locale="es", category="assault", priority="urgent",
            description="Em va pegar en Jordi Puig al portal, truqueu-me al 600 111 222",
            address="Carrer de Blai 12", neighbourhood_name="el Poble-sec", contact_mode="chat"))
        other = case_store.create_case(session=session, case_in=CaseCreate(
            sender_id="telegram:4343", channel="telegram", locale="es", category="noise",
            description="música", neighbourhood_name="el Raval", contact_mode="anonymous"))
    await fake.wait_for_messages(group, 2)
    announcement = next(m for m in fake.sent_messages(group, method="sendMessage") if case.ref in m["text"])
    # only the reference, the category, the neighbourhood and a link to the desk: a group message
    # cannot be erased later, so nothing of the citizen's goes there
    assert announcement["text"] == (f"🚨 URGENT · {case.ref} · Assault or fight\n📍 el Poble-sec\n"
                                    f"https://barri.example.org/desk/cases/{case.ref}")
    assert not announcement.get("parse_mode")
    buttons = [b["callback_data"] for row in announcement["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == [f"desk:ack:{case.ref}", f"desk:take:{case.ref}"]

    def state() -> tuple[str, str | None]:
        with session_scope(db) as session:
            found = case_store.get_case_by_ref(session=session, ref=case.ref)
            return found.status, found.assignee

    async def press(who: int, data: str) -> str:
        before = len(fake.sent_messages(group, method="sendMessage"))
        fake.press_button(who, announcement, data, language_code="en", check=False)
        await fake.wait_for_messages(group, before + 1)
        return fake.sent_messages(group, method="sendMessage")[-1]["text"]

    # refused: a member not linked to a staff account, a community account, an unknown action
    # (forged callback data), and another case's reference under this case's message
    assert f"barri user link-telegram NAME {stranger}" in await press(stranger, f"desk:take:{case.ref}")
    assert "Only dispatchers" in await press(community, f"desk:ack:{case.ref}")
    assert "Unknown action" in await press(ana, f"desk:delete:{case.ref}")
    assert "does not belong" in await press(ana, f"desk:ack:{other.ref}")
    assert state() == ("new", None)
    with session_scope(db) as session:
        assert case_store.get_case_by_ref(session=session, ref=other.ref).status == "new"

    assert await press(ana, f"desk:take:{case.ref}") == f"{case.ref}: taken by ana"
    assert state() == ("acknowledged", "ana")
    with session_scope(db) as session:  # audited in the staff account's name
        audit = session.exec(select(AuditLog).where(AuditLog.action == "case.updated")).all()
        assert [entry.actor for entry in audit] == ["ana"]
    await server.close()

    again = await start_bot(tmp_path, fake, aiohttp_server, dispatch_chat_id=group)
    await _sleep(3)
    assert len([m for m in fake.sent_messages(group, method="sendMessage") if case.ref in m["text"] and "URGENT" in m["text"]]) == 1
    await again.close()


def test_staff_accounts_are_linked_to_telegram_users_from_the_command_line(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    upgrade_database(settings.database_url)
    env = {**os.environ, "DATABASE_URL": settings.database_url}
    env.pop("SECRET_KEY", None)

    def barri(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot.cli", "--log-level", "WARNING", *arguments], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert barri("user", "add", "ana", "--role", "dispatcher").returncode == 0
    assert barri("user", "add", "joan", "--role", "dispatcher").returncode == 0
    linked = barri("user", "link-telegram", "ana", "555")
    assert linked.returncode == 0 and "linked to ana" in linked.stdout
    taken = barri("user", "link-telegram", "joan", "555")
    assert taken.returncode == 1 and "already linked to ana" in taken.stderr
    assert barri("user", "link-telegram", "joan", "-100777").returncode == 1  # a group, not a person
    assert barri("user", "link-telegram", "nobody", "556").returncode == 1
    db = create_db_engine(settings.database_url)
    with session_scope(db) as session:
        assert users.user_for_telegram(session=session, telegram_id=555).name == "ana"
    assert barri("user", "unlink-telegram", "ana").returncode == 0
    with session_scope(db) as session:
        assert users.user_for_telegram(session=session, telegram_id=555) is None
        actions = [e.action for e in session.exec(select(AuditLog)).all()]
        assert actions.count("user.telegram_linked") == 1 and actions.count("user.telegram_unlinked") == 1
