"""Telegram: python-telegram-bot's Application inside the bot service's event loop.

Updates come by long polling, or by webhook on the bot service's own aiohttp app. Each is
turned into an IncomingMessage for the Conversations hub; the hub's answers are drawn as
Telegram messages (inline keyboards for choices, a location keyboard when the engine asks
where). No ConversationHandler: dialogue state stays in the engine.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import warnings
import weakref
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlparse

from aiohttp import web
from sqlalchemy import Engine
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatAction, ChatType
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, Application, BaseUpdateProcessor, ContextTypes, TypeHandler
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from bot.channels.base import Channel, ChannelParts, DeliveryOutcome, IncomingMessage, OutgoingMessage
from bot.channels.media import PhotoRejected, admit_photo, location_payload, photo_payload, store_photo
from bot.dispatch import DESK_PREFIX, DispatchDesk
from bot.engine import Conversations
from bot.keys import CHANNELS
from bot.notify import Notifier
from common.i18n import N_, Catalogs
from common.responses import ADAPTER_MESSAGES
from common.settings import SUPPORTED_LOCALES, Settings
from storage import reporters as reporter_store
from storage.db import run_storage
from storage.errors import StorageError

log = logging.getLogger(__name__)

SENDER_PREFIX = "telegram:"
CALLBACK_DATA_MAX_BYTES = 64
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "channel_post", "edited_channel_post"]

# Telegram commands and what the engine is told for each.
COMMANDS: dict[str, tuple[str, str]] = {
    "start": ("/greet", N_("Start: what I can do")),
    "help": ("/faq/how_it_works", N_("How it works")),
    "language": ("/change_language", N_("Change language")),
    "status": ("/check_status", N_("Status of my reports")),
    "alerts": ("/subscribe_alerts", N_("Neighbourhood alerts")),
    "forget": ("/forget_me", N_("Erase my data")),
    "cancel": ("/cancel", N_("Cancel the report")),
}
SHARE_LOCATION = N_("📍 Share my location")
# Telegram draws a message's inline buttons or its reply keyboard (where the location key
# lives), never both: a question with choices that also asks for a location gets this second
# message carrying the location key.
OR_SHARE_LOCATION = N_("Or share your location with the button below.")
YOU_CHOSE = N_("You chose: {choice}")


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Updates of different chats run concurrently; those of one chat strictly in order."""

    def __init__(self, max_concurrent_updates: int = 256) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = getattr(update, "effective_chat", None)
        if chat is None:
            await coroutine
            return
        lock = self._locks.get(chat.id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[chat.id] = lock
        async with lock:
            await coroutine

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None


def sender_of(chat_id: int) -> str:
    return f"{SENDER_PREFIX}{chat_id}"


def chat_of(sender_id: str) -> int:
    return int(sender_id.removeprefix(SENDER_PREFIX))


class TelegramPusher:
    """Sends one outbox message and reports the raw outcome: no rate limiter and no retries
    here (the Application's bot has AIORateLimiter, which would sleep and retry out of sight);
    the outbox worker paces, retries and records instead."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._bot: Bot | None = None
        self._ready = False

    def _make_bot(self) -> Bot:
        # timeouts well under the outbox lease, so a stuck send never outlives its claim
        request = HTTPXRequest(connection_pool_size=16, connect_timeout=5.0, read_timeout=10.0,
                               write_timeout=10.0, pool_timeout=5.0)
        if self.settings.telegram_api_url:
            return Bot(self.settings.telegram_token, base_url=self.settings.telegram_api_url.rstrip("/"),
                       base_file_url=self.settings.telegram_file_url, request=request)
        return Bot(self.settings.telegram_token, request=request)

    async def push(self, sender_id: str, message: OutgoingMessage) -> DeliveryOutcome:
        if self._bot is None:
            self._bot = self._make_bot()
        buttons = [
            InlineKeyboardButton(button.title, callback_data=button.payload)
            for button in message.buttons
            if len(button.payload.encode()) <= CALLBACK_DATA_MAX_BYTES
        ]
        # no markup at all without buttons: a conversation's open keyboard stays as it is
        markup = InlineKeyboardMarkup([[button] for button in buttons]) if buttons else None
        try:
            if not self._ready:
                await self._bot.initialize()
                self._ready = True
            await self._bot.send_message(chat_of(sender_id), message.text, reply_markup=markup)
        except RetryAfter as error:
            with warnings.catch_warnings():  # PTB 22 warns that it will become a timedelta
                warnings.simplefilter("ignore", PTBDeprecationWarning)
                wait = error.retry_after
            seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            return DeliveryOutcome("retry", retry_after=seconds, error="429 flood control")
        except Forbidden as error:
            return DeliveryOutcome("unreachable", error=f"403 {error.message}")
        except BadRequest as error:  # chat not found, text refused...: sending again would not help
            return DeliveryOutcome("failed", error=f"400 {error.message}")
        except InvalidToken as error:
            return DeliveryOutcome("retry", error=f"token refused: {type(error).__name__}")
        except (NetworkError, TelegramError) as error:  # 5xx, timeouts, connection errors
            return DeliveryOutcome("retry", error=f"{type(error).__name__}: {error.message}"[:200])
        return DeliveryOutcome("sent")

    async def stop(self) -> None:
        if self._bot is not None and self._ready:
            await self._bot.shutdown()
        self._bot, self._ready = None, False


class TelegramChannel(Channel):
    name = "telegram"

    def __init__(self, settings: Settings, catalogs: Catalogs, conversations: Conversations, db: Engine,
                 notifier: Notifier) -> None:
        self.settings = settings
        self.catalogs = catalogs
        self.conversations = conversations
        self.db = db
        self.notifier = notifier  # the dispatch desk's buttons tell citizens what changed
        self.application: Application | None = None
        self.desk: DispatchDesk | None = None  # started on connect when DISPATCH_CHAT_ID is configured
        self.pusher = TelegramPusher(settings)  # the outbox's sends

    @classmethod
    def create(cls, parts: ChannelParts) -> TelegramChannel | None:
        if not parts.settings.telegram_token:
            return None
        return cls(parts.settings, parts.catalogs, parts.conversations, parts.db, parts.notifier)

    @classmethod
    def add_routes(cls, app: web.Application, settings: Settings) -> None:
        if not (settings.telegram_token and settings.telegram_webhook_url):
            return  # long polling: nothing to serve

        async def telegram_webhook(request: web.Request) -> web.StreamResponse:
            return await cast(TelegramChannel, request.app[CHANNELS][cls.name]).webhook(request)

        app.router.add_post(urlparse(settings.telegram_webhook_url).path or "/telegram/webhook", telegram_webhook)

    @property
    def webhook_mode(self) -> bool:
        return bool(self.settings.telegram_webhook_url)

    # Channel interface ------------------------------------------------------------------
    async def connect(self) -> None:
        settings = self.settings
        builder = (
            Application.builder()
            .token(settings.telegram_token)
            .rate_limiter(AIORateLimiter(max_retries=5))
            .concurrent_updates(PerChatUpdateProcessor())
        )
        if settings.telegram_api_url:
            builder = builder.base_url(settings.telegram_api_url.rstrip("/")).base_file_url(settings.telegram_file_url)
        if self.webhook_mode:
            builder = builder.updater(None)
        application = builder.build()
        application.add_handler(TypeHandler(Update, self.on_update))
        application.add_error_handler(self.on_error)
        self.application = application
        await application.initialize()
        await self.register_commands()
        await application.start()
        if self.webhook_mode:
            await application.bot.set_webhook(
                url=settings.telegram_webhook_url,
                secret_token=settings.webhook_secret,
                allowed_updates=ALLOWED_UPDATES,
            )
            log.info("telegram: webhook registered")
        else:
            await application.bot.delete_webhook()
            assert application.updater is not None
            await application.updater.start_polling(allowed_updates=ALLOWED_UPDATES, timeout=20)
            log.info("telegram: long polling")
        if settings.dispatch_chat_id:
            self.desk = DispatchDesk(application.bot, settings.dispatch_chat_id, self.db, self.catalogs, settings,
                                     self.notifier)
            self.desk.start()

    async def disconnect(self) -> None:
        if self.desk is not None:
            await self.desk.stop()
            self.desk = None
        await self.pusher.stop()
        application = self.application
        if application is None:
            return
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await application.shutdown()
        self.application = None

    async def register_commands(self) -> None:
        assert self.application is not None
        bot = self.application.bot
        for locale in (None, *SUPPORTED_LOCALES):
            commands = [
                BotCommand(name, self.catalogs.gettext(description, locale or self.catalogs.default_locale))
                for name, (_, description) in COMMANDS.items()
            ]
            await bot.set_my_commands(commands, language_code=locale)

    async def respond(self, sender_id: str, messages: list[OutgoingMessage]) -> bool:
        assert self.application is not None
        bot = self.application.bot
        chat_id = chat_of(sender_id)
        for message in messages:
            if not message.text:
                continue  # control messages of other channels (e.g. the web chat's "forget")
            try:
                await bot.send_message(chat_id, message.text, reply_markup=self._markup(message))
                if message.request == "location" and self._inline_buttons(message):
                    locale = self._locale_of(message)
                    await bot.send_message(chat_id, self.catalogs.gettext(OR_SHARE_LOCATION, locale),
                                           reply_markup=self._location_keyboard(locale))
            except Forbidden:
                log.info("telegram: a citizen blocked the bot; marked unreachable")
                await self._mark_unreachable(sender_id)
                return False
            except TelegramError as error:
                log.warning("telegram: could not send a message: %s", error)
                return False
        return True

    async def push(self, sender_id: str, message: OutgoingMessage) -> DeliveryOutcome:
        return await self.pusher.push(sender_id, message)

    # webhook ----------------------------------------------------------------------------
    async def webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode(), self.settings.webhook_secret.encode()):
            return web.Response(status=403, text="wrong secret token")
        if self.application is None:
            return web.Response(status=503)
        try:
            data = await request.json()
        except ValueError:
            return web.Response(status=400, text="invalid JSON")
        update = Update.de_json(data, self.application.bot)
        if update is None:
            return web.Response(status=400, text="not an update")
        await self.application.update_queue.put(update)
        return web.Response(text="ok")

    # updates ----------------------------------------------------------------------------
    async def on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.channel_post or update.edited_channel_post:
            return  # a channel is not a citizen: answering would be wrong
        if update.callback_query is not None:
            await self.on_button(update)
            return
        message = update.edited_message or update.message
        if message is None or message.from_user is None:
            return  # an update kind we do not serve (and nobody to answer)
        hint = message.from_user.language_code
        sender_id = sender_of(message.chat.id)
        if message.chat.type != ChatType.PRIVATE:
            if message.text and message.text.startswith("/"):
                await self.notice(sender_id, "private_only", hint)
            return
        if update.edited_message is not None:
            await self.notice(sender_id, "edited", hint, message.text or "")
            return
        for payload, admitted in await self.payloads(message, sender_id, hint):
            await self.deliver(IncomingMessage(sender_id=sender_id, text=payload, locale_hint=hint),
                               admitted=admitted)

    async def payloads(self, message: Message, sender_id: str, hint: str | None) -> list[tuple[str, bool]]:
        """What the engine is told for one Telegram message (a photo with a caption is two),
        each with whether it was already counted against the citizen's limit (a photo is,
        before it is fetched)."""
        if message.text:
            text = message.text.strip()
            if text.startswith("/"):
                command = text[1:].split()[0].split("@")[0].lower() if len(text) > 1 else ""
                if command in COMMANDS:
                    return [(COMMANDS[command][0], False)]
                text = text.lstrip("/").strip()  # typed text is never an engine command
            if not text:
                await self.notice(sender_id, "empty", hint)
                return []
            if len(text) > self.settings.max_message_chars:
                await self.notice(sender_id, "too_long", hint, text, limit=self.settings.max_message_chars)
                return []
            return [(text, False)]
        if message.location is not None:
            payload = location_payload(message.location.latitude, message.location.longitude)
            return [(payload, False)] if payload else []
        if message.photo:
            found = await self.photo(message, sender_id, hint)
            result = [(found, True)] if found else []
            if found and message.caption and message.caption.strip():
                result.append((message.caption.strip()[: self.settings.max_message_chars], False))
            return result
        await self.notice(sender_id, "unreadable", hint)
        return []

    async def photo(self, message: Message, sender_id: str, hint: str | None) -> str | None:
        largest = max(message.photo, key=lambda size: (size.file_size or 0, size.width * size.height))
        limit = self.settings.max_photo_bytes
        most = self.settings.max_photos_per_report
        try:  # every limit before anything is fetched or stored, the size last
            if not await admit_photo(self.conversations, self.db, sender_id, most,
                                     lambda key: self.notice(sender_id, key, hint)):
                return None
            if largest.file_size and largest.file_size > limit:
                raise PhotoRejected("photo_too_big")
            file = await largest.get_file()
            data = bytes(await file.download_as_bytearray())
            async with self.conversations.lock(sender_id):  # one photo of a sender at a time: the cap holds
                attachment_id = await store_photo(self.db, sender_id, data, max_bytes=limit, max_pending=most)
        except PhotoRejected as rejected:
            await self.notice(sender_id, rejected.key, hint, limit_mb=limit // (1024 * 1024), max_photos=most)
            return None
        except (TelegramError, StorageError) as error:
            log.warning("telegram: could not take a photo: %s", type(error).__name__)
            await self.notice(sender_id, "unavailable", hint)
            return None
        return photo_payload(attachment_id)

    async def on_button(self, update: Update) -> None:
        query = update.callback_query
        assert query is not None
        if not query.data or query.message is None or query.from_user is None:
            await query.answer()
            return
        if query.message.chat.id == self.settings.dispatch_chat_id:
            await self.on_desk_button(update)
            return
        await query.answer()
        sender_id = sender_of(query.message.chat.id)
        title = query.data
        if isinstance(query.message, Message) and query.message.reply_markup:
            for row in query.message.reply_markup.inline_keyboard:
                for button in row:
                    if button.callback_data == query.data:
                        title = button.text
            try:  # the choice is made: no second press on an old question
                await query.message.edit_reply_markup(reply_markup=None)
            except TelegramError:
                log.debug("telegram: could not remove an old keyboard")
        hint = query.from_user.language_code
        locale = self.conversations.adapter_locale(IncomingMessage(sender_id, "", hint))
        assert self.application is not None
        await self._send_plain(sender_id, self.catalogs.gettext(YOU_CHOSE, locale, choice=title))
        await self.deliver(IncomingMessage(sender_id=sender_id, text=query.data, locale_hint=hint, display_text=title))

    async def on_desk_button(self, update: Update) -> None:
        """A dispatcher pressed Acknowledge or Take under a case in the dispatch group."""
        query = update.callback_query
        assert query is not None
        assert query.from_user is not None
        assert query.message is not None
        if self.desk is None or not (query.data or "").startswith(DESK_PREFIX):
            await query.answer()
            return
        answer = await self.desk.on_button(query.data or "", query.from_user.id, query.message.message_id)
        await query.answer(answer[:190])
        try:
            await self.application.bot.send_message(query.message.chat.id, answer)  # type: ignore[union-attr]
        except TelegramError as error:
            log.warning("telegram: could not confirm in the dispatch group: %s", error)

    async def deliver(self, message: IncomingMessage, *, admitted: bool = False) -> None:
        assert self.application is not None
        try:
            await self.application.bot.send_chat_action(chat_of(message.sender_id), ChatAction.TYPING)
        except Forbidden:
            await self._mark_unreachable(message.sender_id)
            return
        except TelegramError:
            log.debug("telegram: typing indicator not sent")
        await self.respond(message.sender_id, await self.conversations.handle(message, admitted=admitted))

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: error while handling an update: %s", type(context.error).__name__,
                  exc_info=context.error)

    # helpers ----------------------------------------------------------------------------
    def _markup(self, message: OutgoingMessage) -> InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove:
        buttons = self._inline_buttons(message)
        if buttons:
            return InlineKeyboardMarkup([[button] for button in buttons])
        if message.request == "location":
            return self._location_keyboard(self._locale_of(message))
        return ReplyKeyboardRemove()

    @staticmethod
    def _inline_buttons(message: OutgoingMessage) -> list[InlineKeyboardButton]:
        return [
            InlineKeyboardButton(button.title, callback_data=button.payload)
            for button in message.buttons
            if len(button.payload.encode()) <= CALLBACK_DATA_MAX_BYTES
        ]

    def _location_keyboard(self, locale: str) -> ReplyKeyboardMarkup:
        label = self.catalogs.gettext(SHARE_LOCATION, locale)
        return ReplyKeyboardMarkup(
            [[KeyboardButton(label, request_location=True)]], resize_keyboard=True, one_time_keyboard=True
        )

    def _locale_of(self, message: OutgoingMessage) -> str:
        """The language of a message the engine wrote (to label the location button alike)."""
        return self.conversations.adapter_locale(IncomingMessage("", message.text, None))

    async def notice(self, sender_id: str, key: str, hint: str | None, text: str = "", **args: Any) -> None:
        locale = self.conversations.adapter_locale(IncomingMessage(sender_id, text[:500], hint))
        await self._send_plain(sender_id, self.catalogs.gettext(ADAPTER_MESSAGES[key], locale, **args))

    async def _send_plain(self, sender_id: str, text: str) -> None:
        assert self.application is not None
        try:
            await self.application.bot.send_message(chat_of(sender_id), text)
        except Forbidden:
            await self._mark_unreachable(sender_id)
        except TelegramError as error:
            log.warning("telegram: could not send a notice: %s", error)

    async def _mark_unreachable(self, sender_id: str) -> None:
        try:
            await run_storage(self.db, reporter_store.set_reporter_unreachable, sender_id=sender_id)
        except StorageError:
            log.warning("telegram: could not mark a reporter unreachable")
