"""The fake Bot API server, checked with python-telegram-bot's own `telegram.Bot` (no adapter)."""

from __future__ import annotations

import asyncio
import datetime as dtm
import os
import struct
import time
import zlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientSession, web
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllPrivateChats,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    MenuButtonCommands,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, RetryAfter

from tests.telegram_server import BOT_USERNAME, FakeTelegram

TOKEN = "123456789:AAF-test_token_for_the_fake"
USER = 111222333
OTHER = 444555666

# python-telegram-bot 22 warns that int durations (retry_after, voice.duration) will become
# timedelta; the tests accept both.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=fake.base_url, base_file_url=fake.base_file_url) as client:
        yield client


def png(width: int, height: int, padding: int = 50_000) -> bytes:
    """A PNG signature + IHDR with the given size, padded with noise (enough for the fake)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    crc = struct.pack(">I", zlib.crc32(chunk))
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + crc + os.urandom(padding)


def seconds(value: int | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


async def test_get_me(bot: Bot, fake: FakeTelegram) -> None:
    me = await bot.get_me()
    assert me.is_bot is True
    assert me.username == BOT_USERNAME
    assert fake.base_url == f"http://127.0.0.1:{fake.port}/bot"
    assert fake.base_file_url == f"http://127.0.0.1:{fake.port}/file/bot"
    assert fake.tokens == [TOKEN]
    assert [method for method, _ in fake.calls] == ["getMe", "getMe"]  # initialize() + ours


async def test_send_message_with_an_inline_keyboard(bot: Bot, fake: FakeTelegram) -> None:
    fake.send_text(USER, "hola")  # message 1 in the chat is the citizen's
    markup = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Sí", callback_data="yes"),
                InlineKeyboardButton("No", callback_data="no"),
            ]
        ]
    )
    first = await bot.send_message(USER, "¿Lo confirmas?", reply_markup=markup)
    second = await bot.send_message(USER, "Otra cosa")
    assert (first.message_id, second.message_id) == (2, 3)
    assert first.chat.id == USER
    assert first.chat.type == "private"
    assert first.from_user.username == BOT_USERNAME
    assert first.text == "¿Lo confirmas?"
    assert first.reply_markup == markup
    assert second.reply_markup is None
    assert first.date.timestamp() == pytest.approx(time.time(), abs=5)

    sent = fake.sent_messages(USER)
    assert [entry["text"] for entry in sent] == ["¿Lo confirmas?", "Otra cosa"]
    assert sent[0]["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Sí", "callback_data": "yes"}, {"text": "No", "callback_data": "no"}]
        ]
    }
    assert sent[0]["chat_id"] == USER
    assert sent[0]["message_id"] == 2

    # The citizen presses "yes"; the bot answers the query and takes the keyboard away.
    pressed = fake.press_button(USER, sent[0]["result"], "yes")
    updates = await bot.get_updates(offset=pressed["update_id"])
    query = updates[0].callback_query
    assert query.data == "yes"
    assert query.from_user.id == USER
    assert query.message.message_id == first.message_id
    assert await bot.answer_callback_query(query.id, text="Hecho") is True
    assert fake.answered_callbacks == [{"callback_query_id": query.id, "text": "Hecho"}]
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query(query.id)

    edited = await bot.edit_message_reply_markup(USER, first.message_id, reply_markup=None)
    assert edited.reply_markup is None
    assert edited.edit_date is not None
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_reply_markup(USER, first.message_id, reply_markup=None)
    assert fake.sent_messages(USER, "editMessageReplyMarkup")[0]["message_id"] == 2
    with pytest.raises(ValueError, match="(?i)no button"):
        fake.press_button(USER, sent[0]["result"], "yes")  # the keyboard is gone


async def test_reply_keyboards_are_accepted_and_recorded(bot: Bot, fake: FakeTelegram) -> None:
    fake.send_text(USER, "robo")
    keyboard = ReplyKeyboardMarkup(
        [[KeyboardButton("📍 Enviar ubicación", request_location=True)], ["Saltar"]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )
    asked = await bot.send_message(USER, "¿Dónde fue?", reply_markup=keyboard)
    assert asked.reply_markup is None  # Telegram only echoes inline keyboards
    thanks = await bot.send_message(USER, "Gracias", reply_markup=ReplyKeyboardRemove())
    assert thanks.text == "Gracias"
    sent = fake.sent_messages(USER)
    assert sent[0]["reply_markup"]["keyboard"] == [
        [{"text": "📍 Enviar ubicación", "request_location": True}],
        [{"text": "Saltar"}],  # python-telegram-bot sends plain strings as KeyboardButton
    ]
    assert sent[0]["reply_markup"]["one_time_keyboard"] is True
    assert sent[1]["reply_markup"] == {"remove_keyboard": True}


async def test_get_updates_and_offsets(bot: Bot, fake: FakeTelegram) -> None:
    hola = fake.send_text(USER, "hola", language_code="ca")
    start = fake.send_command(USER, "/start")
    updates = await bot.get_updates(timeout=0)
    assert [u.update_id for u in updates] == [hola["update_id"], start["update_id"]]
    assert updates[0].message.text == "hola"
    assert updates[0].message.from_user.language_code == "ca"
    assert updates[0].effective_chat.id == USER
    assert updates[1].message.entities[0].type == "bot_command"
    assert updates[1].message.entities[0].length == len("/start")

    assert len(await bot.get_updates()) == 2  # not confirmed yet
    assert await bot.get_updates(offset=updates[-1].update_id + 1) == ()
    assert fake.pending_updates == []
    assert fake.last_offset == updates[-1].update_id + 1

    later = fake.send_text(USER, "sigo aquí")
    for i in range(3):
        fake.send_text(OTHER, f"mensaje {i}")
    first_batch = await bot.get_updates(offset=updates[-1].update_id + 1, limit=2)
    assert [u.update_id for u in first_batch] == [later["update_id"], later["update_id"] + 1]
    assert first_batch[0].message.text == "sigo aquí"
    rest = await bot.get_updates(offset=first_batch[-1].update_id + 1)
    assert [u.message.text for u in rest] == ["mensaje 1", "mensaje 2"]


async def test_a_long_poll_returns_early_when_a_message_arrives(
    bot: Bot, fake: FakeTelegram
) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert time.monotonic() - started >= 0.9  # an empty long poll waits its timeout

    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.3)
    assert not poll.done()
    fake.send_location(USER, 41.3793, 2.1404)
    updates = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 3
    assert updates[0].message.location.latitude == pytest.approx(41.3793)


async def test_a_second_poller_terminates_the_first(bot: Bot, fake: FakeTelegram) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.2)
    async with Bot(TOKEN, base_url=fake.base_url, base_file_url=fake.base_file_url) as twin:
        second = asyncio.create_task(twin.get_updates(timeout=10))
        with pytest.raises(Conflict, match="(?i)terminated by other getUpdates"):
            await asyncio.wait_for(first, 5)
        fake.send_text(USER, "hola")
        assert (await asyncio.wait_for(second, 5))[0].message.text == "hola"


async def test_download_the_largest_photo_size(bot: Bot, fake: FakeTelegram) -> None:
    data = png(800, 600)
    fake.send_photo(USER, data, caption="farola rota")
    (update,) = await bot.get_updates()
    photo = update.message.photo
    assert update.message.caption == "farola rota"
    assert len(photo) == 3
    assert len({size.file_id for size in photo}) == 3
    assert [size.file_size for size in photo] == sorted(size.file_size for size in photo)
    assert (photo[-1].width, photo[-1].height, photo[-1].file_size) == (800, 600, len(data))
    assert max(photo[0].width, photo[0].height) <= 90

    file = await bot.get_file(photo[-1].file_id)
    assert file.file_size == len(data)
    assert file.file_unique_id == photo[-1].file_unique_id
    assert file.file_path.startswith(f"{fake.base_file_url}{TOKEN}/photos/")
    assert bytes(await file.download_as_bytearray()) == data
    small = await (await bot.get_file(photo[0].file_id)).download_as_bytearray()
    assert len(small) == photo[0].file_size
    assert bytes(small) != data
    assert len(fake.downloads) == 2
    with pytest.raises(BadRequest, match="(?i)invalid file_id"):
        await bot.get_file("nope")


async def test_other_update_kinds_parse_in_python_telegram_bot(
    bot: Bot, fake: FakeTelegram
) -> None:
    fake.send_text(USER, "primero")
    fake.send_sticker(USER)
    fake.send_voice(USER, duration=4)
    fake.send_document(USER, b"%PDF-1.4 fake", "application/pdf", caption="denuncia")
    fake.send_edited_message(USER, "primero (editado)")
    fake.send_channel_post(-1001234567890, "aviso")
    fake.send_group_message(USER, -987654, "hola grupo")
    fake.send_unknown_update()
    updates = await bot.get_updates()
    assert updates[1].message.sticker.emoji == "👍"
    assert updates[2].message.voice.duration in (4, dtm.timedelta(seconds=4))
    assert updates[3].message.document.mime_type == "application/pdf"
    assert updates[3].message.caption == "denuncia"
    assert updates[4].edited_message.text == "primero (editado)"
    assert updates[4].edited_message.message_id == updates[0].message.message_id
    assert updates[5].channel_post.chat.type == "channel"
    assert updates[6].message.chat.type == "group"
    assert updates[6].message.from_user.id == USER
    assert updates[7].business_connection is not None
    assert updates[7].message is None
    voice = await bot.get_file(updates[2].message.voice.file_id)
    assert (await voice.download_as_bytearray()).startswith(b"OggS")


async def test_allowed_updates_filters(bot: Bot, fake: FakeTelegram) -> None:
    fake.send_text(USER, "hola")
    fake.send_unknown_update()
    updates = await bot.get_updates(allowed_updates=["message", "callback_query"])
    assert [u.message.text for u in updates] == ["hola"]
    assert fake.allowed_updates == ["message", "callback_query"]
    assert "business_connection" in fake.dropped_updates[0]


async def test_webhook_blocks_get_updates_and_receives_updates(
    bot: Bot, fake: FakeTelegram
) -> None:
    secret = "s3cret_Token-1"
    received: list[dict] = []

    async def endpoint(request: web.Request) -> web.Response:
        if request.headers.get("X-Telegram-Bot-Api-Secret-Token") != secret:
            return web.Response(status=403)
        received.append(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/telegram/webhook", endpoint)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/telegram/webhook"
    try:
        pending = fake.send_text(USER, "antes del webhook")
        assert await bot.set_webhook(url, secret_token=secret, allowed_updates=["message"])
        assert fake.webhook is not None
        assert fake.webhook["url"] == url
        assert fake.webhook["secret_token"] == secret
        assert fake.webhook["allowed_updates"] == ["message"]
        with pytest.raises(Conflict, match="(?i)webhook is active"):
            await bot.get_updates()

        update = fake.send_text(USER, "por webhook")
        await fake.wait_for_webhook_idle(timeout=10)
        assert received == [pending, update]
        assert await fake.post_update_to_webhook(update, secret_token="wrong") == 403
        assert await fake.post_update_to_webhook(update) == 200

        info = await bot.get_webhook_info()
        assert info.url == url
        assert info.pending_update_count == 0
        assert info.allowed_updates == ("message",)

        assert await bot.delete_webhook()
        assert fake.webhook is None
        assert await bot.get_updates() == ()
        assert (await bot.get_webhook_info()).url == ""
    finally:
        await runner.cleanup()


async def test_set_my_commands_for_two_languages(bot: Bot, fake: FakeTelegram) -> None:
    spanish = [BotCommand("start", "Empezar"), BotCommand("ayuda", "Cómo funciona")]
    english = [BotCommand("start", "Start"), BotCommand("help", "How it works")]
    assert await bot.set_my_commands(spanish, language_code="es")
    assert await bot.set_my_commands(english, language_code="en")
    assert await bot.set_my_commands(
        [("start", "Comença")], scope=BotCommandScopeAllPrivateChats(), language_code="ca"
    )
    assert fake.commands[("es", "default")] == [
        {"command": "start", "description": "Empezar"},
        {"command": "ayuda", "description": "Cómo funciona"},
    ]
    assert fake.commands_for("ca", {"type": "all_private_chats"}) == [
        {"command": "start", "description": "Comença"}
    ]
    assert await bot.get_my_commands(language_code="en") == tuple(english)
    assert await bot.get_my_commands(language_code="fr") == ()
    assert await bot.delete_my_commands(language_code="en")
    assert await bot.get_my_commands(language_code="en") == ()
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("Start!", "no")])
    assert await bot.set_chat_menu_button(menu_button=MenuButtonCommands())
    assert fake.menu_buttons[None] == {"type": "commands"}


async def test_429_surfaces_as_retry_after(bot: Bot, fake: FakeTelegram) -> None:
    fake.send_text(USER, "hola")
    fake.fail_next("sendMessage", error_code=429, retry_after=1)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER, "uno")
    assert seconds(caught.value.retry_after) == 1
    assert (await bot.send_message(USER, "uno")).text == "uno"
    attempts = fake.calls_to("sendMessage")
    assert [call.status for call in attempts] == [429, 200]
    assert attempts[0].response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }
    assert len(fake.attempt_times("sendMessage", USER)) == 2
    assert len(fake.sent_messages(USER)) == 1  # only the delivered one


async def test_403_surfaces_as_forbidden(bot: Bot, fake: FakeTelegram) -> None:
    fake.send_text(USER, "hola")
    fake.block_user(USER)
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(USER, "¿sigues ahí?")
    with pytest.raises(Forbidden):
        await bot.send_chat_action(USER, "typing")
    fake.unblock_user(USER)
    assert await bot.send_chat_action(USER, "typing")
    assert fake.chat_actions[0]["action"] == "typing"


async def test_telegram_refuses_what_telegram_refuses(bot: Bot, fake: FakeTelegram) -> None:
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(OTHER, "nunca me escribió")
    fake.send_text(USER, "hola")
    with pytest.raises(BadRequest, match="(?i)Character '.' is reserved"):
        await bot.send_message(USER, "Gracias.", parse_mode=ParseMode.MARKDOWN_V2)
    ok = await bot.send_message(USER, "*Gracias*\\. _de verdad_", parse_mode=ParseMode.MARKDOWN_V2)
    assert ok.text == "Gracias. de verdad"
    with pytest.raises(BadRequest, match="(?i)Unsupported start tag"):
        await bot.send_message(USER, "a <br> b", parse_mode=ParseMode.HTML)
    ok = await bot.send_message(USER, "<b>Ref</b> A&amp;B &lt;3", parse_mode=ParseMode.HTML)
    assert ok.text == "Ref A&B <3"
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(USER, "x" * 4097)
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(
            USER,
            "x",
            reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("a", callback_data="y" * 65)]]
            ),
        )


async def test_unknown_methods_and_request_encodings(fake: FakeTelegram) -> None:
    fake.send_text(USER, "hola")
    async with ClientSession() as http:
        async with http.post(f"{fake.base_url}{TOKEN}/sendTelepathy", json={}) as response:
            assert response.status == 404
            assert await response.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found: method not found",
            }
        markup = {"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]}
        async with http.post(
            f"{fake.base_url}{TOKEN}/sendMessage",
            json={"chat_id": USER, "text": "json", "reply_markup": markup},
        ) as response:
            body = await response.json()
            assert body["ok"] is True
            assert body["result"]["reply_markup"] == markup
        async with http.get(
            f"{fake.base_url}{TOKEN}/SENDMESSAGE", params={"chat_id": str(USER), "text": "query"}
        ) as response:
            assert (await response.json())["result"]["text"] == "query"
        async with http.post(
            f"{fake.base_url}other:token/sendMessage", data={"chat_id": str(USER), "text": "form"}
        ) as response:
            assert (await response.json())["result"]["chat"]["id"] == USER
        async with http.get(f"{fake.base_file_url}{TOKEN}/photos/missing.jpg") as response:
            assert response.status == 404
    assert [entry["text"] for entry in fake.sent_messages(USER)] == ["json", "query", "form"]
    assert fake.tokens == [TOKEN, "other:token"]


async def test_enforced_limits_answer_429() -> None:
    async with (
        FakeTelegram(enforce_limits=True) as limited,
        Bot(TOKEN, base_url=limited.base_url, base_file_url=limited.base_file_url) as bot,
    ):
        limited.send_text(USER, "hola")
        await bot.send_message(USER, "uno")
        with pytest.raises(RetryAfter):
            await bot.send_message(USER, "dos")
        await asyncio.sleep(1.05)
        await bot.send_message(USER, "dos")
        times = [entry["time"] for entry in limited.sent_messages(USER)]
        assert times[1] - times[0] >= 1.0
        assert len(limited.attempt_times("sendMessage", USER)) == 3


async def test_wait_for_messages(bot: Bot, fake: FakeTelegram) -> None:
    fake.send_text(USER, "hola")

    async def reply_later() -> None:
        await asyncio.sleep(0.2)
        await bot.send_message(USER, "uno")
        await bot.send_message(USER, "dos")

    task = asyncio.create_task(reply_later())
    messages = await fake.wait_for_messages(USER, 2, timeout=5)
    await task
    assert [m["text"] for m in messages] == ["uno", "dos"]
    with pytest.raises(TimeoutError, match="(?i)got 2"):
        await fake.wait_for_messages(USER, 3, timeout=0.3)
