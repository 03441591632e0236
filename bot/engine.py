"""The bot service's side of the Rasa engine: its REST channel, and the hub that every
channel adapter hands its citizens' messages to."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bot.channels.base import Button, IncomingMessage, OutgoingMessage
from bot.livechat import LiveChat
from bot.observability import Metrics, channel_of, new_request_id
from bot.ratelimit import RateLimiter, Verdict
from bot.replay import Inbox
from common.i18n import Catalogs, current_locale
from common.language import confident_language
from common.logs import CHANNEL, REQUEST_ID
from common.responses import ADAPTER_MESSAGES

log = logging.getLogger(__name__)


class EngineUnavailable(Exception):
    """The engine (or the action server behind it) did not answer."""


class EngineClient:
    """Rasa's REST channel and status endpoints, over the app's one shared ClientSession."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        engine_url: str,
        actions_url: str,
        token: str = "",
        timeout: float = 30.0,
    ) -> None:
        self._http = http
        self._engine_url = engine_url
        self._actions_url = actions_url
        self._token = token
        # the engine's REST channel (nlu/rest_channel.py) refuses messages without it
        self._authorization = {"Authorization": f"Bearer {token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, sender_id: str, text: str, metadata: dict[str, Any]) -> list[dict[str, Any]]:
        url = f"{self._engine_url}/webhooks/rest/webhook"
        body = {"sender": sender_id, "message": text, "metadata": metadata}
        try:
            async with self._http.post(url, json=body, headers=self._authorization,
                                       timeout=self._timeout) as response:
                if response.status != 200:
                    raise EngineUnavailable(f"engine answered {response.status}")
                answer = await response.json()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise EngineUnavailable(type(error).__name__) from error
        return answer if isinstance(answer, list) else []

    async def engine_ready(self) -> bool:
        return await self._ok(f"{self._engine_url}/status", {"token": self._token})

    async def actions_ready(self) -> bool:
        return await self._ok(f"{self._actions_url}/health")

    async def _ok(self, url: str, params: dict[str, str] | None = None) -> bool:
        try:
            async with self._http.get(url, params=params, timeout=aiohttp.ClientTimeout(total=3)) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


def to_outgoing(answer: list[dict[str, Any]]) -> tuple[list[OutgoingMessage], set[str]]:
    """The engine's REST output as neutral messages, plus the control signals it carried.

    Rasa sends a message's custom payload as a separate item: fold an input request
    ("location", "photo") into the message before it.
    """
    messages: list[OutgoingMessage] = []
    controls: set[str] = set()
    for item in answer:
        custom = item.get("custom") or {}
        if custom.get("control"):
            controls.add(str(custom["control"]))
            continue
        text = item.get("text") or ""
        buttons = tuple(
            Button(title=str(b.get("title", "")), payload=str(b.get("payload", "")))
            for b in item.get("buttons") or []
        )
        if not text and not buttons and custom and messages:
            previous = messages[-1]
            messages[-1] = OutgoingMessage(
                text=previous.text,
                buttons=previous.buttons,
                request=custom.get("request", previous.request),
                custom={**previous.custom, **{k: v for k, v in custom.items() if k != "request"}},
            )
            continue
        if text or buttons:
            messages.append(
                OutgoingMessage(text=text, buttons=buttons, request=custom.get("request"), custom={})
            )
    return messages, controls


class Conversations:
    """Hands each citizen message to the engine, one at a time per citizen.

    Messages of one sender are processed strictly in order; different senders run
    concurrently. When the engine or the action server is down, the citizen is told so in
    their language and the service keeps serving everyone else; with an ``Inbox`` the message
    is kept and replayed, in order, once the engine is back (bot.replay).
    """

    def __init__(
        self,
        engine: EngineClient,
        catalogs: Catalogs,
        erase_conversation: Callable[[str], Awaitable[None]],
        live_chat: LiveChat | None = None,
        rate_limiter: RateLimiter | None = None,
        inbox: Inbox | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._engine = engine
        self._rate_limiter = rate_limiter
        self._inbox = inbox  # keeps messages while the engine is down (bot.replay)
        self._live_chat = live_chat
        self._catalogs = catalogs
        self._erase_conversation = erase_conversation
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def lock(self, sender_id: str) -> asyncio.Lock:
        """The sender's turn: held while one of their messages is handled."""
        lock = self._locks.get(sender_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[sender_id] = lock
        return lock

    def adapter_locale(self, message: IncomingMessage) -> str:
        """The language for the adapter's own notices (the engine is not asked)."""
        return confident_language(message.text) or self._catalogs.negotiate(message.locale_hint)

    def notice(self, key: str, locale: str, **args: Any) -> OutgoingMessage:
        return OutgoingMessage(text=self._catalogs.gettext(ADAPTER_MESSAGES[key], locale, **args))

    async def admit(self, sender_id: str) -> Verdict:
        """Count one message of the sender against their limit; anything but ALLOW: not read."""
        if self._rate_limiter is None:
            return Verdict.ALLOW
        verdict = await self._rate_limiter.check(sender_id)
        if verdict is not Verdict.ALLOW:
            if self._metrics is not None:
                self._metrics.rate_limited.labels(channel_of(sender_id)).inc()
            log.info("rate limit: a citizen's message was not read")
        return verdict

    async def handle(self, message: IncomingMessage, *, admitted: bool = False) -> list[OutgoingMessage]:
        """The engine's answers to one message. ``admitted``: the adapter already counted it
        (``admit``), e.g. before storing the photo the message carries."""
        # this message's log lines: its own request id (a socket carries many) and its channel
        channel = channel_of(message.sender_id)
        REQUEST_ID.set(new_request_id())
        CHANNEL.set(channel)
        locale = self.adapter_locale(message)
        current_locale.set(locale)
        metadata: dict[str, Any] = {"locale": message.locale_hint} if message.locale_hint else {}
        # when it was written: kept during an outage and replayed later, "ahora mismo" still
        # means this moment (dialogues.actions.base.received_at)
        metadata["received_at"] = datetime.now(UTC).isoformat()
        if self._metrics is not None:
            self._metrics.message(message.sender_id, channel)
        if not admitted:  # before the lock: a flood must not queue up
            verdict = await self.admit(message.sender_id)
            if verdict is not Verdict.ALLOW:
                return [self.notice("rate_limited", locale)] if verdict is Verdict.NOTIFY else []
        async with self.lock(message.sender_id):
            if self._live_chat is not None and await self._live_chat.take(message):
                return []  # a dispatcher is talking with this citizen: no assistant reply
            if self._inbox is not None and not await self._inbox.replay(message.sender_id, self._turn,
                                                                         EngineUnavailable):
                return await self._keep(message, metadata, locale)  # queue behind the older ones
            try:
                return await self._turn(message, metadata)
            except EngineUnavailable as error:
                log.warning("engine unavailable: %s", error)
                return await self._keep(message, metadata, locale)

    async def replay(self, sender_id: str) -> bool:
        """Replay the sender's kept messages now (bot.replay.Replayer); True when none is left."""
        if self._inbox is None:
            return True
        async with self.lock(sender_id):
            return await self._inbox.replay(sender_id, self._turn, EngineUnavailable)

    async def _keep(self, message: IncomingMessage, metadata: dict[str, Any], locale: str) -> list[OutgoingMessage]:
        if self._inbox is not None and await self._inbox.keep(message, metadata):
            if self._metrics is not None:
                self._metrics.kept.labels(channel_of(message.sender_id)).inc()
            return [self.notice("queued", locale)]
        return [self.notice("unavailable", locale)]  # not kept: the citizen must send it again

    async def _turn(self, message: IncomingMessage, metadata: dict[str, Any]) -> list[OutgoingMessage]:
        """One engine turn (the caller holds the sender's lock); raises EngineUnavailable."""
        started, channel = time.monotonic(), channel_of(message.sender_id)
        try:
            answer = await self._engine.send(message.sender_id, message.text, metadata)
        except EngineUnavailable:
            if self._metrics is not None:
                self._metrics.engine_errors.labels(channel).inc()
            raise
        if self._metrics is not None:
            self._metrics.engine_latency.labels(channel).observe(time.monotonic() - started)
        messages, controls = to_outgoing(answer)
        if "erase_conversation" in controls:
            await self._erase_conversation(message.sender_id)
            messages.append(OutgoingMessage(custom={"forget": True}))
        if not messages:
            locale = self.adapter_locale(message)
            if not await self._engine.actions_ready():
                log.warning("action server unavailable")
                return [self.notice("unavailable", locale)]
            return [self.notice("not_understood", locale)]  # never silence
        return messages
