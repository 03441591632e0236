"""WhatsApp (Cloud API): a webhook on the bot service's own aiohttp app, and the Graph API to
answer.

``GET /whatsapp/webhook`` is Meta's verification handshake. ``POST /whatsapp/webhook`` carries
notifications signed with the app secret (X-Hub-Signature-256); a wrong or missing signature is
403 and nothing is read. A notification is acknowledged at once (Meta sends it again when the
answer is slow) and its messages are handled in the background, strictly in order per citizen
(one queue and one task per sender while they have messages waiting), concurrently across
citizens, through the same Conversations hub as every channel. Status notifications (sent,
delivered, read, failed) update the outbox row of the message.

The citizen's WhatsApp id is their phone number: the engine, the cases and the logs know them by
a keyed pseudonym (``whatsapp:<hmac>``); the number lives in one table (storage.whatsapp),
erased with the reporter. Messages Barri sends on its own (the outbox) go as free-form messages
within 24 hours of the citizen's last message and as approved templates after that.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import aiohttp
from aiohttp import web
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.channels.base import Channel, ChannelParts, DeliveryOutcome, IncomingMessage, OutgoingMessage
from bot.channels.media import PhotoRejected, admit_photo, location_payload, photo_payload, store_photo
from bot.channels.whatsapp import cloud
from bot.channels.whatsapp.cloud import CloudApi, CloudApiError, MediaTooBig
from bot.channels.whatsapp.render import BUTTON_ID_MAX, Labels, plain, render, template
from bot.engine import Conversations
from bot.keys import CHANNELS
from common.i18n import N_, Catalogs
from common.language import confident_language
from common.responses import ADAPTER_MESSAGES
from common.settings import Settings
from storage import reporters
from storage import whatsapp as store
from storage.db import run_storage
from storage.errors import StorageError

if TYPE_CHECKING:
    from bot.outbox import OutboxWorker

log = logging.getLogger(__name__)

CHOOSE = N_("Choose")
MORE_CHOICES = N_("More choices:")

WINDOW = timedelta(hours=24)
WINDOW_MARGIN = timedelta(minutes=10)  # a message sent just before the window closes may arrive after
MAX_QUEUED_PER_CITIZEN = 50  # beyond this a citizen's messages are dropped (the rate limit told them)
REMEMBERED_MESSAGE_IDS = 10_000  # Meta may deliver a notification twice: the same message is read once
CHALLENGE_MAX = 256
LIVE_RETRIES = 2  # a live reply refused for a rate limit is tried again this many times
LIVE_WAIT_MAX = 5.0  # seconds a live reply may wait for a rate limit
DB_ERRORS = (StorageError, SQLAlchemyError)


class WhatsAppChannel(Channel):
    name = "whatsapp"

    def __init__(self, settings: Settings, catalogs: Catalogs, conversations: Conversations, db: Engine,
                 http: aiohttp.ClientSession, clock: Callable[[], datetime] | None = None,
                 wake: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.catalogs = catalogs
        self.conversations = conversations
        self.db = db
        self.api = CloudApi(http, settings)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.wake = wake  # the WhatsApp outbox worker: a row to send again (as a template)
        self._key = cloud.pseudonym_key(settings)
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._phones: dict[str, str] = {}  # numbers of the citizens being served right now
        self._hints: dict[str, str | None] = {}  # and the language they are known to write in
        self._tasks: set[asyncio.Task[None]] = set()
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()

    def sender_of(self, phone: str) -> str:
        return cloud.sender_of(phone, self._key)

    # Channel interface ------------------------------------------------------------------
    @classmethod
    def create(cls, parts: ChannelParts) -> WhatsAppChannel | None:
        if not parts.settings.whatsapp_enabled:
            return None
        return cls(parts.settings, parts.catalogs, parts.conversations, parts.db, parts.http)

    @classmethod
    def add_routes(cls, app: web.Application, settings: Settings) -> None:
        if not settings.whatsapp_enabled:
            return

        def channel(request: web.Request) -> WhatsAppChannel:
            return cast(WhatsAppChannel, request.app[CHANNELS][cls.name])

        async def whatsapp_verify(request: web.Request) -> web.StreamResponse:
            return await channel(request).verify(request)

        async def whatsapp_webhook(request: web.Request) -> web.StreamResponse:
            return await channel(request).webhook(request)

        app.router.add_get("/whatsapp/webhook", whatsapp_verify)
        app.router.add_post("/whatsapp/webhook", whatsapp_webhook)

    def outbox_pace(self) -> dict[str, float]:
        # one sender (the scheduler leader) within the number's throughput and per-user pacing
        return {"rate_per_second": self.settings.whatsapp_rate_per_second,
                "per_chat_interval": self.settings.whatsapp_per_user_interval_seconds}

    def use_outbox(self, worker: OutboxWorker) -> None:
        self.wake = worker.wake  # a row to send again (as a template) after a late failure

    async def connect(self) -> None:
        log.info("whatsapp: webhook at /whatsapp/webhook")

    async def disconnect(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._queues.clear()
        self._phones.clear()
        self._hints.clear()

    async def respond(self, sender_id: str, messages: list[OutgoingMessage]) -> bool:
        """Answer a citizen (they wrote: the window is open)."""
        phone = self._phones.get(sender_id) or await self._phone_of(sender_id)
        if phone is None:
            return False  # erased, or never seen here
        for message in messages:
            if message.custom.get("forget"):
                self._phones.pop(sender_id, None)  # erased: the number is not kept, even here
            for body in render(message, self._labels(self._locale_of(message, self._hints.get(sender_id)))):
                if not await self._send_live(sender_id, phone, body):
                    return False
        return True

    async def push(self, sender_id: str, message: OutgoingMessage) -> DeliveryOutcome:
        """One outbox message: free-form within the citizen's 24-hour window, else a template."""
        try:
            contact = await run_storage(self.db, store.contact_for, sender_id=sender_id)
        except DB_ERRORS as error:
            return DeliveryOutcome("retry", error=f"database: {type(error).__name__}")
        if contact is None:
            return DeliveryOutcome("failed", error="no WhatsApp number (erased)")
        locale = self.catalogs.negotiate(contact.locale)
        open_window = (contact.last_inbound_at is not None
                       and self.clock() - contact.last_inbound_at < WINDOW - WINDOW_MARGIN)
        try:
            if open_window:
                try:
                    return await self._send_all(contact.phone, render(message, self._labels(locale)))
                except CloudApiError as error:
                    if error.code != cloud.REENGAGEMENT:
                        raise
                    # WhatsApp counts the window differently than we did: close it, send the template
                    with contextlib.suppress(*DB_ERRORS):
                        await run_storage(self.db, store.close_window, sender_id=sender_id)
            body = self._template(message, locale)
            if body is None:
                return DeliveryOutcome("failed", error=f"no template for {message.custom.get('kind')!r} messages")
            return await self._send_all(contact.phone, [body])
        except CloudApiError as error:
            outcome = cloud.outcome_for(error)
            if outcome.status == "unreachable":
                log.info("whatsapp: a citizen cannot be reached (%s); marked unreachable", error.code)
            return outcome

    async def _send_all(self, phone: str, bodies: list[dict[str, Any]]) -> DeliveryOutcome:
        platform_id = ""
        for body in bodies:
            platform_id = await self.api.send(phone, body)
        return DeliveryOutcome("sent", platform_id=platform_id)

    def _template(self, message: OutgoingMessage, locale: str) -> dict[str, Any] | None:
        templates = self.settings.whatsapp_templates
        name = templates.get(str(message.custom.get("kind", ""))) or templates.get("status")
        if not name or not message.text:
            return None
        language = self.settings.whatsapp_template_languages.get(locale, locale)
        return template(name, language, message.text)

    # webhook ----------------------------------------------------------------------------
    async def verify(self, request: web.Request) -> web.Response:
        """Meta's handshake: echo ``hub.challenge`` when ``hub.verify_token`` is ours."""
        query = request.query
        token = query.get("hub.verify_token", "")
        challenge = query.get("hub.challenge", "")
        if (query.get("hub.mode") != "subscribe"
                or not hmac.compare_digest(token.encode(), self.settings.whatsapp_verify_token.encode())):
            return web.Response(status=403, text="verification refused")
        if not challenge or len(challenge) > CHALLENGE_MAX or not challenge.isascii() or not challenge.isprintable():
            return web.Response(status=400, text="bad challenge")
        return web.Response(text=challenge, content_type="text/plain")

    async def webhook(self, request: web.Request) -> web.Response:
        signature = request.headers.get("X-Hub-Signature-256", "")
        if not signature.startswith("sha256="):
            return web.Response(status=403, text="missing signature")
        limit = self.settings.whatsapp_max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return web.Response(status=413, text="too large")
        try:
            body = await request.clone(client_max_size=limit).read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="too large")
        if not cloud.signature_ok(self.settings.whatsapp_app_secret, body, signature):
            return web.Response(status=403, text="wrong signature")
        try:
            data = json.loads(body)
        except ValueError:
            return web.Response(status=400, text="invalid JSON")
        if isinstance(data, dict):
            self._take(data)
        return web.Response(text="ok")  # at once: the messages are handled in the background

    def _take(self, data: dict[str, Any]) -> None:
        for entry in _list_of(data.get("entry")):
            for change in _list_of(entry.get("changes")):
                value = change.get("value") if change.get("field") == "messages" else None
                if not isinstance(value, dict):
                    continue
                metadata = value.get("metadata")
                number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
                if str(number) != self.settings.whatsapp_phone_number_id:
                    continue  # another number of the same app
                for message in _list_of(value.get("messages")):
                    self._enqueue(message)
                for status in _list_of(value.get("statuses")):
                    self._spawn(self._on_status(status), "whatsapp-status")

    def _enqueue(self, message: dict[str, Any]) -> None:
        phone, message_id = str(message.get("from", "")), str(message.get("id", ""))
        if not (phone.isdigit() and 6 <= len(phone) <= 20):
            return
        if message_id:
            if message_id in self._seen:
                return  # delivered twice
            self._seen[message_id] = None
            if len(self._seen) > REMEMBERED_MESSAGE_IDS:
                self._seen.popitem(last=False)
        sender_id = self.sender_of(phone)
        queue = self._queues.get(sender_id)
        if queue is None:
            queue = asyncio.Queue(maxsize=MAX_QUEUED_PER_CITIZEN)
            self._queues[sender_id] = queue
            self._phones[sender_id] = phone
            self._spawn(self._serve(sender_id, phone, queue), "whatsapp-citizen")
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:
            log.info("whatsapp: a citizen's queue is full; a message was dropped")

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, sender_id: str, phone: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """One citizen's messages, one after the other, until none is waiting."""
        try:
            while True:
                try:
                    message = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    await self._handle(sender_id, phone, message)
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # one message must not stop the citizen's queue
                    log.error("whatsapp: error while handling a message: %s", type(error).__name__)
        finally:
            # no await between the empty queue and here: a new message starts a new task
            if self._queues.get(sender_id) is queue:
                del self._queues[sender_id]
                self._phones.pop(sender_id, None)
                self._hints.pop(sender_id, None)

    # messages in ------------------------------------------------------------------------
    async def _handle(self, sender_id: str, phone: str, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "reaction":
            return  # an emoji on an earlier message: nothing to answer
        text = _text_of(message)
        hint = await self._remember(sender_id, phone, _sent_at(message, self.clock()), text)
        self._phones[sender_id] = phone  # after a "forget me" earlier in the queue
        self._hints[sender_id] = hint
        for payload, admitted, shown in await self._payloads(sender_id, message, hint):
            answers = await self.conversations.handle(
                IncomingMessage(sender_id=sender_id, text=payload, locale_hint=hint, display_text=shown),
                admitted=admitted)
            await self.respond(sender_id, answers)

    async def _remember(self, sender_id: str, phone: str, at: datetime, text: str) -> str | None:
        """Keep the number and open the 24-hour window; the citizen's language as far as known."""
        language = confident_language(text[:500]) if text else None

        try:
            return await run_storage(self.db, store.record_message, sender_id=sender_id, phone=phone, at=at,
                                     locale=language)
        except DB_ERRORS as error:
            log.warning("whatsapp: could not record a citizen's message time: %s", type(error).__name__)
            return language

    async def _payloads(self, sender_id: str, message: dict[str, Any], hint: str | None
                        ) -> list[tuple[str, bool, str | None]]:
        """What the engine is told for one WhatsApp message (a photo with a caption is two),
        each with whether it was already counted against the citizen's limit, and the title of
        a pressed button."""
        kind = message.get("type")
        if kind in ("text", "button"):
            text = _text_of(message).lstrip("/").strip()  # typed text is never an engine command
            if not text:
                await self.notice(sender_id, "empty", hint)
                return []
            if len(text) > self.settings.max_message_chars:
                await self.notice(sender_id, "too_long", hint, limit=self.settings.max_message_chars)
                return []
            return [(text, False, None)]
        if kind == "interactive":
            interactive = message.get("interactive") or {}
            reply = interactive.get(interactive.get("type")) if isinstance(interactive, dict) else None
            if isinstance(reply, dict) and reply.get("id"):
                return [(str(reply["id"])[:BUTTON_ID_MAX], False, str(reply.get("title") or "")[:100] or None)]
        if kind == "location":
            where = message.get("location") or {}
            try:
                payload = location_payload(float(where["latitude"]), float(where["longitude"]))
            except (KeyError, TypeError, ValueError):
                payload = None
            return [(payload, False, None)] if payload else []
        if kind == "image":
            image = message.get("image") or {}
            found = await self.photo(sender_id, str(image.get("id", "")), hint)
            result: list[tuple[str, bool, str | None]] = [(found, True, None)] if found else []
            caption = str(image.get("caption") or "").strip()
            if found and caption:
                result.append((caption[: self.settings.max_message_chars], False, None))
            return result
        await self.notice(sender_id, "unreadable", hint)
        return []

    async def photo(self, sender_id: str, media_id: str, hint: str | None) -> str | None:
        limit = self.settings.max_photo_bytes
        most = self.settings.max_photos_per_report
        try:  # every limit before anything is fetched or stored, the size last
            if not await admit_photo(self.conversations, self.db, sender_id, most,
                                     lambda key: self.notice(sender_id, key, hint)):
                return None
            if not media_id.isalnum():
                raise PhotoRejected("photo_type")
            try:
                data = await self.api.fetch_media(media_id, limit)
            except MediaTooBig:
                raise PhotoRejected("photo_too_big") from None
            async with self.conversations.lock(sender_id):  # one photo of a sender at a time: the cap holds
                attachment_id = await store_photo(self.db, sender_id, data, max_bytes=limit, max_pending=most)
        except PhotoRejected as rejected:
            await self.notice(sender_id, rejected.key, hint, limit_mb=limit // (1024 * 1024), max_photos=most)
            return None
        except (CloudApiError, *DB_ERRORS) as error:
            log.warning("whatsapp: could not take a photo: %s", type(error).__name__)
            await self.notice(sender_id, "unavailable", hint)
            return None
        return photo_payload(attachment_id)

    # status notifications ---------------------------------------------------------------
    async def _on_status(self, status: dict[str, Any]) -> None:
        message_id, state = str(status.get("id", "")), str(status.get("status", ""))
        if not message_id or state not in ("sent", "delivered", "read", "failed"):
            return
        errors = _list_of(status.get("errors"))
        found = errors[0].get("code") if errors else None
        code = found if isinstance(found, int) else 0
        # the same shortening (and removal of anything like a number) as a refused send's
        error = f"whatsapp {code}: {CloudApiError(400, code, str(errors[0].get('title', ''))).title}" if errors else ""
        undeliverable = state == "failed" and code in cloud.UNDELIVERABLE
        retry = state == "failed" and code == cloud.REENGAGEMENT
        phone = str(status.get("recipient_id", ""))
        sender_id = self.sender_of(phone) if phone.isdigit() else None

        try:
            await run_storage(self.db, store.record_delivery, message_id=message_id, status=state,
                              at=_status_time(status, self.clock()), error=error, retry=retry,
                              unreachable=undeliverable, sender_id=sender_id)
        except DB_ERRORS as error_type:
            log.warning("whatsapp: could not record a status notification: %s", type(error_type).__name__)
        if retry and self.wake is not None:
            self.wake()

    # helpers ----------------------------------------------------------------------------
    async def _send_live(self, sender_id: str, phone: str, body: dict[str, Any]) -> bool:
        for attempt in range(LIVE_RETRIES + 1):
            try:
                await self.api.send(phone, body)
                return True
            except CloudApiError as error:
                outcome = cloud.outcome_for(error)
                if outcome.status == "unreachable":
                    log.info("whatsapp: a citizen cannot be reached (%s); marked unreachable", error.code)
                    await self._mark_unreachable(sender_id)
                    return False
                wait = outcome.retry_after
                if outcome.status != "retry" or wait is None or wait > LIVE_WAIT_MAX or attempt == LIVE_RETRIES:
                    log.warning("whatsapp: could not send a message: %s", outcome.error)
                    return False
                await asyncio.sleep(wait)
        return False

    async def notice(self, sender_id: str, key: str, hint: str | None, **args: Any) -> None:
        locale = self.catalogs.negotiate(hint)
        text = self.catalogs.gettext(ADAPTER_MESSAGES[key], locale, **args)
        phone = self._phones.get(sender_id) or await self._phone_of(sender_id)
        if phone is not None:
            for body in plain(text):
                await self._send_live(sender_id, phone, body)

    def _labels(self, locale: str) -> Labels:
        return Labels(choose=self.catalogs.gettext(CHOOSE, locale), more=self.catalogs.gettext(MORE_CHOICES, locale))

    def _locale_of(self, message: OutgoingMessage, hint: str | None) -> str:
        """The language of a message the engine wrote (to label its list button alike), else
        the citizen's."""
        return self.conversations.adapter_locale(IncomingMessage("", message.text[:500], hint))

    async def _phone_of(self, sender_id: str) -> str | None:
        try:
            contact = await run_storage(self.db, store.contact_for, sender_id=sender_id)
        except DB_ERRORS:
            return None
        return contact.phone if contact else None

    async def _mark_unreachable(self, sender_id: str) -> None:
        try:
            await run_storage(self.db, reporters.set_reporter_unreachable, sender_id=sender_id)
        except DB_ERRORS:
            log.warning("whatsapp: could not mark a reporter unreachable")



def _list_of(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text_of(message: dict[str, Any]) -> str:
    if message.get("type") == "text":
        text = message.get("text") or {}
        return str(text.get("body", "")) if isinstance(text, dict) else ""
    if message.get("type") == "button":  # a template's quick reply: read as typed
        button = message.get("button") or {}
        return str(button.get("text", "")) if isinstance(button, dict) else ""
    return ""


def _sent_at(message: dict[str, Any], now: datetime) -> datetime:
    """When the citizen wrote (WhatsApp's Unix timestamp), never later than now."""
    try:
        at = datetime.fromtimestamp(int(message.get("timestamp", "")), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return now
    return min(at, now)


def _status_time(status: dict[str, Any], now: datetime) -> datetime:
    return _sent_at(status, now)
