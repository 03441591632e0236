"""A local fake of Telegram's Bot API server, for testing the Telegram channel for real.

`FakeTelegram` is a real aiohttp HTTP server on loopback that speaks the Bot API
(https://core.telegram.org/bots/api) with the documented JSON shapes: every answer is
``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": "...", "parameters": {...}}`` with the HTTP
status equal to ``error_code``, which is what python-telegram-bot maps onto its exceptions
(400 BadRequest, 403 Forbidden, 409 Conflict, ``parameters.retry_after`` RetryAfter...).

Point python-telegram-bot at it with ``base_url=fake.base_url`` and
``base_file_url=fake.base_file_url``. Routes: ``/bot{token}/{method}`` (any token is accepted
and recorded; method names are case-insensitive like Telegram's) and
``/file/bot{token}/{file_path}``. Parameters are read from the query string and from JSON,
``application/x-www-form-urlencoded`` or ``multipart/form-data`` bodies (form values that are
JSON-serialized objects, such as ``reply_markup``, are decoded).

The "citizen side" (``send_text``, ``send_photo``, ``press_button``...) is synchronous: it
builds an Update, records it and either queues it for getUpdates (waking a long poll) or,
while a webhook is set, hands it to a background task that POSTs it to the webhook in order
(``await fake.wait_for_webhook_idle()`` waits until they are delivered).

What the bot did is kept in memory: ``calls``/``records`` (every method call, in order, with
its time and HTTP status), ``sent_messages()``, ``answered_callbacks``, ``chat_actions``,
``commands``, ``menu_buttons``, ``webhook``, ``webhook_deliveries``, ``downloads``.

Rate limits (opt-in, ``FakeTelegram(enforce_limits=True)``): like Telegram's flood control, at
most ``global_per_second`` (30) sendMessage per second over all chats and one per
``per_chat_interval`` (1 s) to one private chat (``group_per_minute`` to a group), both over a
sliding window; a send beyond them is refused with 429
``{"ok":false,"error_code":429,"parameters":{"retry_after":N}}`` and not delivered.
``rate_limited`` counts those answers. ``sends_per_chat()`` counts the messages each chat got
and ``duplicates()`` lists the chats that got the same text more than once (an outbox that sends
twice). ``hold("sendMessage")``/``release()`` park requests before Telegram looks at them: a
parked request whose client went away meanwhile (a killed worker) is dropped unprocessed,
as if it never reached Telegram (``dropped_requests``). By default none of this is on.

Like the real server, and unlike a mock, it refuses what Telegram refuses: text that does not
parse in the given parse_mode (HTML, MarkdownV2, Markdown), messages longer than 4096
characters, callback_data longer than 64 bytes, inline buttons without an action, editing
a message into the same content ("message is not modified"), answering an unknown or already
answered callback query, messages to chats the bot has never seen (``strict_chats``),
getUpdates while a webhook is set, and two getUpdates at once (the older one gets 409).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import html
import json
import math
import mimetypes
import re
import secrets
import struct
import time
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientError, ClientSession, ClientTimeout, web

BOT_ID = 7_000_000_001
BOT_USERNAME = "barri_test_bot"
BOT_FIRST_NAME = "Barri"
BOT_USER: dict[str, Any] = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": BOT_FIRST_NAME,
    "username": BOT_USERNAME,
}

MAX_TEXT_LENGTH = 4096
MAX_DOWNLOAD_SIZE = 20 * 1024 * 1024

# Update types getUpdates/webhooks deliver when allowed_updates was never given, or given as [].
NOT_DELIVERED_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
COMMAND_SCOPES = frozenset(
    {
        "default",
        "all_private_chats",
        "all_group_chats",
        "all_chat_administrators",
        "chat",
        "chat_administrators",
        "chat_member",
    }
)
INLINE_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)

# How parameters sent as form fields (always strings) are decoded.
JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "allowed_updates",
        "commands",
        "scope",
        "entities",
        "caption_entities",
        "link_preview_options",
        "reply_parameters",
        "menu_button",
        "media",
        "results",
        "permissions",
        "options",
        "explanation_entities",
        "button",
        "rights",
        "reaction",
    }
)
INT_FIELDS = frozenset(
    {
        "message_id",
        "offset",
        "limit",
        "max_connections",
        "cache_time",
        "message_thread_id",
        "reply_to_message_id",
        "live_period",
        "heading",
        "proximity_alert_radius",
        "duration",
    }
)
ID_FIELDS = frozenset({"chat_id", "from_chat_id", "user_id", "sender_chat_id"})
FLOAT_FIELDS = frozenset({"timeout", "latitude", "longitude", "horizontal_accuracy"})
BOOL_FIELDS = frozenset(
    {
        "show_alert",
        "drop_pending_updates",
        "disable_notification",
        "protect_content",
        "disable_web_page_preview",
        "allow_sending_without_reply",
        "allow_paid_broadcast",
        "is_personal",
        "revoke_messages",
    }
)

_DEFAULT: Any = object()


class ApiError(Exception):
    """A Bot API error answer: HTTP status == error_code."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(text: str) -> ApiError:
    return ApiError(400, f"Bad Request: {text}")


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


@dataclass
class Described:
    """A handler result that also carries the "description" Telegram adds (setWebhook...)."""

    result: Any
    description: str


@dataclass
class Call:
    """One Bot API request as the fake received it."""

    method: str  # canonical name ("sendMessage") when known, else as requested
    params: dict[str, Any]
    token: str
    time: float  # time.monotonic()
    via: str = "http"  # or "webhook-reply" (a method returned in a webhook response body)
    status: int | None = None
    response: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class FakeFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes

    @property
    def file_size(self) -> int:
        return len(self.data)


@dataclass
class _Failure:
    code: int
    description: str
    parameters: dict[str, Any] | None


@dataclass
class _Webhook:
    queue: deque[dict[str, Any]] = field(default_factory=deque)
    attempts: dict[int, int] = field(default_factory=dict)
    delivering: bool = False


# ---------------------------------------------------------------------------------------------
# Text helpers


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _entities_error(text: str) -> ApiError:
    return bad_request(f"can't parse entities: {text}")


HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)


def parse_html(text: str) -> str:
    """Validate Telegram's HTML style and return the plain text, like the real server."""
    out: list[str] = []
    stack: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "<":
            end = text.find(">", i)
            if end < 0:
                raise _entities_error(f"Unclosed start tag at byte offset {_byte_offset(text, i)}")
            inner = text[i + 1 : end]
            if inner.startswith("/"):
                name = inner[1:].strip().lower()
                if not stack:
                    raise _entities_error(
                        f"Unexpected end tag at byte offset {_byte_offset(text, i)}"
                    )
                if name and name != stack[-1]:
                    raise _entities_error(
                        f"Unmatched end tag at byte offset {_byte_offset(text, i)}, "
                        f'expected "</{stack[-1]}>", found "</{name}>"'
                    )
                stack.pop()
            else:
                match = re.match(r"([a-zA-Z][a-zA-Z0-9-]*)(.*)\Z", inner, re.S)
                name = match.group(1).lower() if match else ""
                if name not in HTML_TAGS:
                    raise _entities_error(
                        f'Unsupported start tag "{name or inner}" '
                        f"at byte offset {_byte_offset(text, i)}"
                    )
                attributes = match.group(2) if match else ""
                if name == "span" and "tg-spoiler" not in attributes:
                    raise _entities_error(
                        'Tag "span" must have class "tg-spoiler" '
                        f"at byte offset {_byte_offset(text, i)}"
                    )
                stack.append(name)
            i = end + 1
            continue
        if char == "&":
            match = re.match(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|lt|gt|amp|quot);", text[i:])
            if match:
                out.append(html.unescape(match.group(0)))
                i += len(match.group(0))
                continue
        out.append(char)
        i += 1
    if stack:
        raise _entities_error(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


MARKDOWN_V2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MARKDOWN_V2_KINDS = {
    "_": "Italic",
    "__": "Underline",
    "*": "Bold",
    "~": "Strikethrough",
    "||": "Spoiler",
}


def parse_markdown_v2(text: str) -> str:
    """Validate MarkdownV2 (reserved characters must be escaped) and return the plain text."""
    out: list[str] = []
    stack: list[tuple[str, int]] = []  # (entity kind, byte offset)
    expandable_quote = False
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
            out.append(text[i + 1])
            i += 2
            continue
        if char not in MARKDOWN_V2_RESERVED:
            out.append(char)
            i += 1
            continue
        at_line_start = i == 0 or text[i - 1] == "\n"
        if at_line_start and text.startswith("**>", i):
            expandable_quote = True
            i += 3
            continue
        if at_line_start and char == ">":
            i += 1
            continue
        if (
            expandable_quote
            and text.startswith("||", i)
            and (i + 2 == n or text[i + 2] == "\n")
            and not (stack and stack[-1][0] == "Spoiler")
        ):
            expandable_quote = False
            i += 2
            continue
        if char == "`":
            start = i
            kind, closing = ("Pre", "```") if text.startswith("```", i) else ("Code", "`")
            j = i + len(closing)
            if kind == "Pre":
                language = re.match(r"[^\s`]*\n", text[j:])
                if language:
                    j += len(language.group(0))
            chunk: list[str] = []
            while j < n and not text.startswith(closing, j):
                if text[j] == "\\" and j + 1 < n:
                    chunk.append(text[j + 1])
                    j += 2
                else:
                    chunk.append(text[j])
                    j += 1
            if j >= n:
                raise _entities_error(
                    f"Can't find end of {kind} entity at byte offset {_byte_offset(text, start)}"
                )
            out.extend(chunk)
            i = j + len(closing)
            continue
        if char == "[" or text.startswith("![", i):
            stack.append(("TextUrl" if char == "[" else "CustomEmoji", _byte_offset(text, i)))
            i += 1 if char == "[" else 2
            continue
        if char == "]" and stack and stack[-1][0] in ("TextUrl", "CustomEmoji"):
            kind, _ = stack.pop()
            i += 1
            if i < n and text[i] == "(":
                j = i + 1
                while j < n and text[j] != ")":
                    j += 2 if text[j] == "\\" else 1
                if j >= n:
                    raise _entities_error(
                        f"Can't find end of a URL at byte offset {_byte_offset(text, i)}"
                    )
                i = j + 1
            elif kind == "CustomEmoji":
                raise _entities_error(
                    f"Custom emoji entity must contain a URL at byte offset {_byte_offset(text, i)}"
                )
            continue
        if char == "_":
            marker = "__" if text.startswith("__", i) else "_"
        elif char == "|" and text.startswith("||", i):
            marker = "||"
        elif char in "*~":
            marker = char
        else:
            raise _entities_error(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        kind = _MARKDOWN_V2_KINDS[marker]
        if stack and stack[-1][0] == kind:
            stack.pop()
        else:
            stack.append((kind, _byte_offset(text, i)))
        i += len(marker)
    if stack:
        kind, offset = stack[-1]
        raise _entities_error(f"Can't find end of {kind} entity at byte offset {offset}")
    return "".join(out)


def parse_markdown(text: str) -> str:
    """Validate legacy Markdown (every *, _, ` opens an entity that must be closed)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            i += 2
            continue
        if char in "_*`":
            closing = "```" if text.startswith("```", i) else char
            end = text.find(closing, i + len(closing))
            if end < 0:
                raise _entities_error(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
                )
            out.append(text[i + len(closing) : end])
            i = end + len(closing)
            continue
        if char == "[":
            link = re.match(r"\[([^\]]*)\]\(([^)]*)\)", text[i:])
            if link:
                out.append(link.group(1))
                i += len(link.group(0))
                continue
        out.append(char)
        i += 1
    return "".join(out)


def plain_text(text: str, parse_mode: str | None) -> str:
    if not parse_mode:
        return text
    mode = parse_mode.lower()
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        return parse_markdown_v2(text)
    if mode == "markdown":
        return parse_markdown(text)
    raise bad_request(f'unsupported parse_mode "{parse_mode}"')


def check_reply_markup(markup: Any) -> str:
    """Validate a reply_markup like Telegram does; return its kind."""
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request(
                'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
            )
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                    raise bad_request(
                        'can\'t parse inline keyboard button: Field "text" must be of type String'
                    )
                if not any(key in button for key in INLINE_BUTTON_ACTIONS):
                    raise bad_request(
                        "can't parse inline keyboard button: "
                        "Text buttons are unallowed in the inline keyboard"
                    )
                if "callback_data" in button:
                    data = button["callback_data"]
                    if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
                        raise bad_request("BUTTON_DATA_INVALID")
                if "url" in button and not re.match(r"(https?|tg)://\S+\Z", str(button["url"])):
                    raise bad_request(
                        f"inline keyboard button URL '{button['url']}' is invalid: Wrong HTTP URL"
                    )
        return "inline"
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request(
                'field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays'
            )
        for row in rows:
            for button in row:
                if isinstance(button, str):
                    continue
                if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                    raise bad_request(
                        'can\'t parse keyboard button: Field "text" must be of type String'
                    )
        placeholder = markup.get("input_field_placeholder")
        if placeholder is not None and not 1 <= len(str(placeholder)) <= 64:
            raise bad_request("can't parse reply keyboard markup JSON object")
        return "keyboard"
    if markup.get("remove_keyboard") is True:
        return "remove"
    if markup.get("force_reply") is True:
        return "force_reply"
    raise bad_request("can't parse reply keyboard markup JSON object")


# ---------------------------------------------------------------------------------------------
# Media helpers


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, GIF or JPEG, else None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(width), int(height)
            i += 2 + length
    return None


def _scaled(size: tuple[int, int], longest: int) -> tuple[int, int]:
    width, height = size
    factor = min(1.0, longest / max(width, height, 1))
    return max(1, round(width * factor)), max(1, round(height * factor))


def _filler(length: int, tag: bytes) -> bytes:
    return (tag * (length // len(tag) + 1))[:length]


# ---------------------------------------------------------------------------------------------
# The server


class FakeTelegram:
    """A fake Telegram Bot API server on loopback. See the module docstring."""

    def __init__(
        self,
        *,
        enforce_limits: bool = False,
        strict_chats: bool = True,
        require_https_webhook: bool = False,
        webhook_max_attempts: int = 5,
        webhook_retry_delay: float = 0.2,
        webhook_timeout: float = 10.0,
        per_chat_interval: float = 1.0,
        global_per_second: int = 30,
        group_per_minute: int = 20,
    ) -> None:
        self.enforce_limits = enforce_limits
        self.strict_chats = strict_chats
        self.require_https_webhook = require_https_webhook
        self.webhook_max_attempts = webhook_max_attempts
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_timeout = webhook_timeout
        self.per_chat_interval = per_chat_interval
        self.global_per_second = global_per_second
        self.group_per_minute = group_per_minute

        self.host = "127.0.0.1"
        self.port = 0
        self.url = ""
        self.base_url = ""
        self.base_file_url = ""

        # What the bot did.
        self.records: list[Call] = []
        self.tokens: list[str] = []
        self.answered_callbacks: list[dict[str, Any]] = []
        self.chat_actions: list[dict[str, Any]] = []
        self.deleted_messages: list[dict[str, Any]] = []
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.menu_buttons: dict[int | str | None, dict[str, Any]] = {}
        self.webhook: dict[str, Any] | None = None
        self.webhook_deliveries: list[dict[str, Any]] = []
        self.webhook_last_error: tuple[int, str] | None = None
        self.downloads: list[str] = []
        self.allowed_updates: list[str] | None = None
        self.last_offset: int | None = None

        # The citizen side.
        self.updates: list[dict[str, Any]] = []  # every update ever created, in order
        self.dropped_updates: list[dict[str, Any]] = []  # filtered out by allowed_updates
        self.files: dict[str, FakeFile] = {}
        self.blocked: set[int | str] = set()

        self._sent: list[dict[str, Any]] = []
        self._queue: list[dict[str, Any]] = []  # unconfirmed updates for getUpdates
        self._webhook = _Webhook()
        self._update_seq = 860_000_000
        self._callback_seq = 4_100_000_000_000_000_000
        self._file_seq = 0
        self._message_seq: dict[int | str, int] = defaultdict(int)
        self._messages: dict[tuple[int | str, int], dict[str, Any]] = {}
        self._bot_messages: set[tuple[int | str, int]] = set()
        self._callbacks: dict[str, dict[str, Any]] = {}
        self._profiles: dict[int, dict[str, Any]] = {}
        self._chats: dict[int | str, dict[str, Any]] = {}
        self._files_by_path: dict[str, FakeFile] = {}
        self._failures: dict[str, deque[_Failure]] = defaultdict(deque)
        self._chat_send_times: dict[int | str, deque[float]] = defaultdict(deque)
        self._global_send_times: deque[float] = deque()
        self._poll_generation = 0
        self._poll_waiters: set[asyncio.Future[None]] = set()
        self._watchers: set[asyncio.Future[None]] = set()
        self._webhook_wakeup: asyncio.Event | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._session: ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.rate_limited = 0  # 429 answers given by enforce_limits
        self.dropped_requests = 0  # parked by hold() and abandoned by their client
        self._held: set[str] = set()
        self._parked = 0
        self._unparked: asyncio.Event | None = None

        self._handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._send_chat_action,
            "getFile": self._get_file,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setChatMenuButton": self._set_chat_menu_button,
            "getChatMenuButton": self._get_chat_menu_button,
        }
        self._canonical = {name.lower(): name for name in self._handlers}

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeTelegram:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_route("GET", "/file/bot{token}/{file_path:.+}", self._handle_file)
        app.router.add_route("*", "/{tail:.*}", self._handle_not_found)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.host = host
        self.port = int(self._runner.addresses[0][1])
        self.url = f"http://{host}:{self.port}"
        self.base_url = f"{self.url}/bot"
        self.base_file_url = f"{self.url}/file/bot"
        self._closing = False
        self._session = ClientSession()
        self._webhook_wakeup = asyncio.Event()
        self._webhook_task = asyncio.create_task(
            self._webhook_worker(), name="fake-telegram-webhook"
        )
        return self

    async def stop(self) -> None:
        self._closing = True
        self.release()
        self._wake_pollers()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
            self._webhook_task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what the bot did -----------------------------------------------------------------------

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """Every method call, in order, as (method, params) — failed ones included."""
        return [(record.method, record.params) for record in self.records]

    def calls_to(self, method: str) -> list[Call]:
        wanted = method.lower()
        return [record for record in self.records if record.method.lower() == wanted]

    def attempt_times(
        self, method: str = "sendMessage", chat_id: int | str | None = None
    ) -> list[float]:
        """time.monotonic() of every attempt of `method` (also the refused ones), in order."""
        return [
            record.time
            for record in self.calls_to(method)
            if chat_id is None or _same_id(record.params.get("chat_id"), chat_id)
        ]

    def sent_messages(
        self, chat_id: int | str | None = None, method: str | None = None
    ) -> list[dict[str, Any]]:
        """Successful sendMessage/editMessageText/editMessageReplyMarkup calls, in order.

        Each entry is the decoded parameters (reply_markup as a dict) plus "method",
        "chat_id", "message_id", "time" (monotonic) and "result" (the Message answered).
        """
        return [
            entry
            for entry in self._sent
            if (chat_id is None or _same_id(entry["chat_id"], chat_id))
            and (method is None or entry["method"].lower() == method.lower())
        ]

    def message(self, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        """The current state of a message (after edits), as Telegram would show it."""
        stored = self._messages.get((chat_id, message_id))
        return copy.deepcopy(stored) if stored is not None else None

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates waiting for getUpdates (not yet confirmed with an offset)."""
        return list(self._queue)

    def commands_for(
        self, language_code: str = "", scope: dict[str, Any] | None = None
    ) -> list[dict[str, Any]] | None:
        return self.commands.get((language_code, _scope_key(scope)))

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 30,  # noqa: ASYNC109
        what: str = "condition",
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"fake Telegram: {what} not reached after {timeout}s")
            waiter: asyncio.Future[None] = loop.create_future()
            self._watchers.add(waiter)
            try:
                await asyncio.wait({waiter}, timeout=min(remaining, 0.5))
            finally:
                self._watchers.discard(waiter)

    async def wait_for_messages(
        self,
        chat_id: int | str,
        count: int = 1,
        timeout: float = 30,  # noqa: ASYNC109
        method: str | None = "sendMessage",
    ) -> list[dict[str, Any]]:
        """Wait until at least `count` messages were sent to the chat; returns them all."""
        try:
            await self.wait_until(
                lambda: len(self.sent_messages(chat_id, method)) >= count, timeout, "messages"
            )
        except TimeoutError:
            texts = [entry.get("text") for entry in self.sent_messages(chat_id, method)]
            raise TimeoutError(
                f"fake Telegram: expected {count} message(s) to chat {chat_id} within {timeout}s, "
                f"got {len(texts)}: {texts!r}"
            ) from None
        return self.sent_messages(chat_id, method)

    async def wait_for_call(
        self,
        method: str,
        count: int = 1,
        timeout: float = 30,  # noqa: ASYNC109
    ) -> list[Call]:
        await self.wait_until(
            lambda: len(self.calls_to(method)) >= count, timeout, f"{count} {method} call(s)"
        )
        return self.calls_to(method)

    async def wait_for_webhook_idle(self, timeout: float = 30) -> None:  # noqa: ASYNC109
        """Wait until every queued update was POSTed to the webhook (or given up on)."""
        await self.wait_until(
            lambda: not self._webhook.queue and not self._webhook.delivering,
            timeout,
            "webhook idle",
        )

    # -- fault injection ------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        error_code: int = 429,
        retry_after: int | None = 1,
        times: int = 1,
        description: str | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` with an error (429 flood control default)."""
        if description is None:
            description = {
                400: "Bad Request: injected failure",
                401: "Unauthorized",
                403: "Forbidden: injected failure",
                404: "Not Found",
                409: "Conflict: injected failure",
                429: f"Too Many Requests: retry after {retry_after}",
                500: "Internal Server Error",
                502: "Bad Gateway",
            }.get(error_code, "Internal Server Error")
        parameters = {"retry_after": retry_after} if error_code == 429 and retry_after else None
        for _ in range(times):
            self._failures[method.lower()].append(_Failure(error_code, description, parameters))

    def block_user(self, chat_id: int | str, notify: bool = False) -> None:
        """The user blocks the bot: sends to the chat answer 403 (notify: my_chat_member update)."""
        self.blocked.add(chat_id)
        if notify and isinstance(chat_id, int):
            self._emit("my_chat_member", self._chat_member_update(chat_id, "member", "kicked"))

    def hold(self, method: str = "sendMessage") -> None:
        """Park every new call of `method` until release() (see the module docstring)."""
        self._held.add(method.lower())
        if self._unparked is None:
            self._unparked = asyncio.Event()
        self._unparked.clear()

    def release(self) -> None:
        self._held.clear()
        if self._unparked is not None:
            self._unparked.set()

    @property
    def parked(self) -> int:
        """Requests parked by hold() right now."""
        return self._parked

    def sends_per_chat(self) -> Counter[int | str]:
        """How many messages (successful sendMessage) each chat received."""
        return Counter(entry["chat_id"] for entry in self._sent if entry["method"] == "sendMessage")

    def duplicates(self) -> dict[int | str, int]:
        """Chats that received the same text more than once, with how many times."""
        seen = Counter(
            (entry["chat_id"], entry.get("text")) for entry in self._sent if entry["method"] == "sendMessage"
        )
        found: dict[int | str, int] = {}
        for (chat_id, _), count in seen.items():
            if count > 1:
                found[chat_id] = max(found.get(chat_id, 0), count)
        return found

    def unblock_user(self, chat_id: int | str, notify: bool = False) -> None:
        self.blocked.discard(chat_id)
        if notify and isinstance(chat_id, int):
            self._emit("my_chat_member", self._chat_member_update(chat_id, "kicked", "member"))

    # -- the citizen side -----------------------------------------------------------------------

    def add_user(
        self,
        user_id: int,
        first_name: str = "Citizen",
        last_name: str | None = None,
        username: str | None = None,
    ) -> dict[str, Any]:
        """Register (or rename) a Telegram user and their private chat with the bot."""
        profile = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name is None:
            last_name = str(user_id)
        if last_name:
            profile["last_name"] = last_name
        profile["username"] = username or f"citizen{user_id}"
        self._profiles[user_id] = profile
        self._private_chat(user_id)
        return dict(profile)

    def send_text(
        self, user_id: int, text: str, language_code: str | None = "es", chat_id: int | None = None
    ) -> dict[str, Any]:
        """A citizen writes a text to the bot (in their private chat unless chat_id is given)."""
        content: dict[str, Any] = {"text": text}
        entities = _command_entities(text)
        if entities:
            content["entities"] = entities
        return self._emit(
            "message", self._citizen_message(user_id, language_code, chat_id, content)
        )

    def send_command(
        self,
        user_id: int,
        command: str = "/start",
        language_code: str | None = "es",
        chat_id: int | None = None,
    ) -> dict[str, Any]:
        """A citizen sends a command ("/start", "/help payload"), with a bot_command entity."""
        text = command if command.startswith("/") else f"/{command}"
        content = {"text": text, "entities": _command_entities(text)}
        return self._emit(
            "message", self._citizen_message(user_id, language_code, chat_id, content)
        )

    def send_location(
        self,
        user_id: int,
        latitude: float,
        longitude: float,
        language_code: str | None = "es",
        horizontal_accuracy: float | None = None,
    ) -> dict[str, Any]:
        location: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
        if horizontal_accuracy is not None:
            location["horizontal_accuracy"] = horizontal_accuracy
        return self._emit(
            "message", self._citizen_message(user_id, language_code, None, {"location": location})
        )

    def send_photo(
        self,
        user_id: int,
        data: bytes,
        caption: str | None = None,
        language_code: str | None = "es",
    ) -> dict[str, Any]:
        """A citizen sends a photo: three PhotoSize of increasing size, the largest is `data`."""
        full = image_size(data) or (1280, 960)
        n = len(data)
        small_len = max(1, min(n // 16, 2_000))
        medium_len = max(small_len + 1, min(n // 4, 20_000))
        variants = [
            (_scaled(full, 90), _filler(small_len, b"fake-thumbnail ")),
            (_scaled(full, 320), _filler(medium_len, b"fake-medium-photo ")),
            (full, data),
        ]
        photo = []
        for (width, height), content in variants:
            file = self.add_file(content, "photos", ".jpg", prefix="AgACAgQAAxkBAAI")
            photo.append(
                {
                    "file_id": file.file_id,
                    "file_unique_id": file.file_unique_id,
                    "file_size": file.file_size,
                    "width": width,
                    "height": height,
                }
            )
        payload: dict[str, Any] = {"photo": photo}
        if caption is not None:
            payload["caption"] = caption
        return self._emit("message", self._citizen_message(user_id, language_code, None, payload))

    def send_sticker(
        self, user_id: int, emoji: str = "👍", language_code: str | None = "es"
    ) -> dict[str, Any]:
        file = self.add_file(
            _filler(2048, b"RIFF\x00\x08\x00\x00WEBPVP8 "),
            "stickers",
            ".webp",
            prefix="CAACAgIAAxkBAAI",
        )
        sticker = {
            "file_id": file.file_id,
            "file_unique_id": file.file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "set_name": "BarriTestStickers",
            "file_size": file.file_size,
        }
        return self._emit(
            "message", self._citizen_message(user_id, language_code, None, {"sticker": sticker})
        )

    def send_voice(
        self,
        user_id: int,
        data: bytes | None = None,
        duration: int = 3,
        language_code: str | None = "es",
    ) -> dict[str, Any]:
        data = data if data is not None else _filler(4096, b"OggS\x00\x02fake-opus ")
        file = self.add_file(data, "voice", ".oga", prefix="AwACAgQAAxkBAAI")
        voice = {
            "file_id": file.file_id,
            "file_unique_id": file.file_unique_id,
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": file.file_size,
        }
        return self._emit(
            "message", self._citizen_message(user_id, language_code, None, {"voice": voice})
        )

    def send_document(
        self,
        user_id: int,
        data: bytes,
        mime_type: str = "application/octet-stream",
        file_name: str | None = None,
        caption: str | None = None,
        language_code: str | None = "es",
    ) -> dict[str, Any]:
        extension = mimetypes.guess_extension(mime_type) or ".bin"
        file = self.add_file(data, "documents", extension, prefix="BQACAgQAAxkBAAI")
        document = {
            "file_id": file.file_id,
            "file_unique_id": file.file_unique_id,
            "file_name": file_name or f"document{extension}",
            "mime_type": mime_type,
            "file_size": file.file_size,
        }
        payload: dict[str, Any] = {"document": document}
        if caption is not None:
            payload["caption"] = caption
        return self._emit("message", self._citizen_message(user_id, language_code, None, payload))

    def send_edited_message(
        self,
        user_id: int,
        text: str,
        message_id: int | None = None,
        language_code: str | None = "es",
    ) -> dict[str, Any]:
        """The citizen edits one of their messages (by default their last one in the chat)."""
        chat = self._private_chat(user_id)
        if message_id is None:
            own = [
                mid
                for (cid, mid), msg in self._messages.items()
                if cid == chat["id"] and msg.get("from", {}).get("id") == user_id and "text" in msg
            ]
            message_id = max(own) if own else self._next_message_id(chat["id"])
        original = self._messages.get((chat["id"], message_id)) or {
            "message_id": message_id,
            "chat": chat,
            "date": int(time.time()) - 60,
        }
        edited = {
            **copy.deepcopy(original),
            "from": self._user(user_id, language_code),
            "text": text,
            "edit_date": int(time.time()),
        }
        edited.pop("entities", None)
        if _command_entities(text):
            edited["entities"] = _command_entities(text)
        self._messages[(chat["id"], message_id)] = copy.deepcopy(edited)
        return self._emit("edited_message", edited)

    def send_channel_post(
        self, chat_id: int, text: str, title: str = "Barri channel"
    ) -> dict[str, Any]:
        chat = self._chats.setdefault(chat_id, {"id": chat_id, "title": title, "type": "channel"})
        post = {
            "message_id": self._next_message_id(chat_id),
            "sender_chat": dict(chat),
            "chat": dict(chat),
            "date": int(time.time()),
            "text": text,
        }
        self._messages[(chat_id, post["message_id"])] = copy.deepcopy(post)
        return self._emit("channel_post", post)

    def send_group_message(
        self,
        user_id: int,
        group_chat_id: int,
        text: str,
        language_code: str | None = "es",
        title: str = "Barri group",
    ) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        entities = _command_entities(text)
        if entities:
            content["entities"] = entities
        kind = "supergroup" if str(group_chat_id).startswith("-100") else "group"
        self._chats.setdefault(group_chat_id, {"id": group_chat_id, "title": title, "type": kind})
        return self._emit(
            "message", self._citizen_message(user_id, language_code, group_chat_id, content)
        )

    def press_button(
        self,
        user_id: int,
        message: dict[str, Any],
        callback_data: str,
        language_code: str | None = "es",
        check: bool = True,
    ) -> dict[str, Any]:
        """The citizen presses an inline button of a message the bot sent.

        `message` is a Message (e.g. an entry's "result", or a Message dict from an update) or a
        sent_messages() entry. With `check`, the button must be on the message's current
        keyboard (as the citizen's app would show it).
        """
        if "chat" in message:
            chat_id = message["chat"]["id"]
        elif "chat_id" in message:
            chat_id = message["chat_id"]
        else:
            raise ValueError("press_button needs a Message or a sent_messages() entry")
        key = (chat_id, int(message["message_id"]))
        current = self._messages.get(key)
        if current is None or key not in self._bot_messages:
            raise ValueError(f"message {key} was not sent by the bot (or was deleted)")
        if check:
            buttons = [
                button.get("callback_data")
                for row in current.get("reply_markup", {}).get("inline_keyboard", [])
                for button in row
            ]
            if callback_data not in buttons:
                raise ValueError(
                    f"no button with callback_data {callback_data!r} on message {key}; "
                    f"it has {buttons!r}"
                )
        self._callback_seq += 1
        query_id = str(self._callback_seq)
        query = {
            "id": query_id,
            "from": self._user(user_id, language_code),
            "message": copy.deepcopy(current),
            "chat_instance": _chat_instance(chat_id),
            "data": callback_data,
        }
        self._callbacks[query_id] = {"answered": False, "query": query}
        return self._emit("callback_query", query)

    def send_unknown_update(
        self, key: str = "business_connection", payload: Any = None, user_id: int = 424242
    ) -> dict[str, Any]:
        """An update of a kind the bot does not handle: only update_id and `key`."""
        if payload is None:
            if key == "business_connection":
                payload = {
                    "id": f"bc-{secrets.token_hex(6)}",
                    "user": self._user(user_id, "es"),
                    "user_chat_id": user_id,
                    "date": int(time.time()),
                    "is_enabled": True,
                }
            else:
                payload = {"id": secrets.token_hex(6)}
        return self._emit(key, payload)

    def send_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Deliver a hand-made update (an update_id is assigned when missing)."""
        update = copy.deepcopy(update)
        if "update_id" not in update:
            self._update_seq += 1
            update = {"update_id": self._update_seq, **update}
        else:
            self._update_seq = max(self._update_seq, int(update["update_id"]))
        self._dispatch(update)
        return copy.deepcopy(update)

    def add_file(
        self,
        data: bytes,
        folder: str = "documents",
        extension: str = ".bin",
        prefix: str = "BQACAgQAAxkBAAI",
    ) -> FakeFile:
        """Register downloadable content (getFile + /file/bot{token}/{file_path})."""
        self._file_seq += 1
        file = FakeFile(
            file_id=f"{prefix}{self._file_seq:05d}{secrets.token_urlsafe(24)}",
            file_unique_id=f"AQAD{secrets.token_urlsafe(9)}",
            file_path=f"{folder}/file_{self._file_seq}{extension}",
            data=bytes(data),
        )
        self.files[file.file_id] = file
        self._files_by_path[file.file_path] = file
        return file

    async def post_update_to_webhook(
        self, update: dict[str, Any], secret_token: str | None = _DEFAULT, url: str | None = None
    ) -> int:
        """POST an update to the webhook now (default: registered url and secret); HTTP status."""
        if url is None:
            if self.webhook is None:
                raise RuntimeError("no webhook is set")
            url = self.webhook["url"]
        if secret_token is _DEFAULT:
            secret_token = self.webhook.get("secret_token") if self.webhook else None
        status, _ = await self._post_update(url, update, secret_token)
        return status

    # -- internals: citizens, chats, updates ----------------------------------------------------

    def _user(self, user_id: int, language_code: str | None) -> dict[str, Any]:
        if user_id not in self._profiles:
            self.add_user(user_id)
        user = dict(self._profiles[user_id])
        if language_code:
            user["language_code"] = language_code
        return user

    def _private_chat(self, user_id: int) -> dict[str, Any]:
        if user_id not in self._profiles:
            self._profiles[user_id] = {
                "id": user_id,
                "is_bot": False,
                "first_name": "Citizen",
                "last_name": str(user_id),
                "username": f"citizen{user_id}",
            }
        profile = self._profiles[user_id]
        chat = {"id": user_id, "first_name": profile["first_name"]}
        for optional in ("last_name", "username"):
            if optional in profile:
                chat[optional] = profile[optional]
        chat["type"] = "private"
        self._chats[user_id] = chat
        return dict(chat)

    def _next_message_id(self, chat_id: int | str) -> int:
        self._message_seq[chat_id] += 1
        return self._message_seq[chat_id]

    def _citizen_message(
        self, user_id: int, language_code: str | None, chat_id: int | None, content: dict[str, Any]
    ) -> dict[str, Any]:
        user = self._user(user_id, language_code)
        if chat_id is None or chat_id == user_id:
            chat = self._private_chat(user_id)
        else:
            chat = dict(
                self._chats.get(chat_id)
                or self._chats.setdefault(
                    chat_id,
                    {"id": chat_id, "type": "private", "first_name": user["first_name"]}
                    if chat_id > 0
                    else {"id": chat_id, "title": "Barri group", "type": "group"},
                )
            )
        message = {
            "message_id": self._next_message_id(chat["id"]),
            "from": user,
            "chat": chat,
            "date": int(time.time()),
            **content,
        }
        self._messages[(chat["id"], message["message_id"])] = copy.deepcopy(message)
        return message

    def _chat_member_update(self, chat_id: int, old: str, new: str) -> dict[str, Any]:
        user = self._user(chat_id, None)
        date = int(time.time())
        bot_member = {"user": dict(BOT_USER)}
        return {
            "chat": self._private_chat(chat_id),
            "from": user,
            "date": date,
            "old_chat_member": {
                **bot_member,
                "status": old,
                **({"until_date": 0} if old == "kicked" else {}),
            },
            "new_chat_member": {
                **bot_member,
                "status": new,
                **({"until_date": 0} if new == "kicked" else {}),
            },
        }

    def _emit(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        self._update_seq += 1
        update = {"update_id": self._update_seq, kind: copy.deepcopy(payload)}
        self._dispatch(update)
        return copy.deepcopy(update)

    def _dispatch(self, update: dict[str, Any]) -> None:
        self.updates.append(copy.deepcopy(update))
        if self.webhook is not None:
            self._webhook.queue.append(update)
            if self._webhook_wakeup is not None:
                self._webhook_wakeup.set()
        else:
            self._queue.append(update)
            self._wake_pollers()
        self._notify()

    def _is_allowed(self, update: dict[str, Any]) -> bool:
        kind = _update_kind(update)
        if not self.allowed_updates:  # never set, or []: everything but the opt-in kinds
            return kind not in NOT_DELIVERED_BY_DEFAULT
        return kind in self.allowed_updates

    def _take_deliverable(self, limit: int) -> list[dict[str, Any]]:
        kept = []
        for update in self._queue:
            if self._is_allowed(update):
                kept.append(update)
            else:
                self.dropped_updates.append(update)
        self._queue = kept
        return copy.deepcopy(kept[:limit])

    def _wake_pollers(self) -> None:
        for waiter in list(self._poll_waiters):
            if not waiter.done():
                waiter.set_result(None)
        self._poll_waiters.clear()

    def _notify(self) -> None:
        for waiter in list(self._watchers):
            if not waiter.done():
                waiter.set_result(None)
        self._watchers.clear()

    # -- internals: HTTP ------------------------------------------------------------------------

    async def _handle_not_found(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        if token not in self.tokens:
            self.tokens.append(token)
        file = self._files_by_path.get(request.match_info["file_path"])
        if file is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        self.downloads.append(file.file_path)
        self._notify()
        content_type = mimetypes.guess_type(file.file_path)[0] or "application/octet-stream"
        return web.Response(body=file.data, content_type=content_type)

    async def _handle_method(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        if request.match_info["method"].lower() in self._held:
            if self._unparked is None:
                self._unparked = asyncio.Event()
            self._parked += 1
            self._notify()
            try:
                await self._unparked.wait()
            finally:
                self._parked -= 1
            transport = request.transport
            if transport is None or transport.is_closing():
                self.dropped_requests += 1  # its client died: Telegram never saw this request
                self._notify()
                return web.Response(status=499)
        try:
            params = await _read_params(request)
        except ApiError as error:
            return web.json_response(error.body(), status=error.code)
        status, body = await self._invoke(request.match_info["method"], params, token)
        return web.json_response(body, status=status)

    async def _invoke(
        self, method: str, params: dict[str, Any], token: str, via: str = "http"
    ) -> tuple[int, dict[str, Any]]:
        if token not in self.tokens:
            self.tokens.append(token)
        canonical = self._canonical.get(method.lower())
        record = Call(canonical or method, params, token, time.monotonic(), via)
        self.records.append(record)
        try:
            if canonical is None:
                raise ApiError(404, "Not Found: method not found")
            failures = self._failures.get(canonical.lower())
            if failures:
                failure = failures.popleft()
                raise ApiError(failure.code, failure.description, failure.parameters)
            result = self._handlers[canonical](params)
            if asyncio.iscoroutine(result):
                result = await result
            body: dict[str, Any] = {"ok": True}
            if isinstance(result, Described):
                body["result"] = result.result
                body["description"] = result.description
            else:
                body["result"] = result
            status = 200
        except ApiError as error:
            status, body = error.code, error.body()
        record.status = status
        record.response = body
        self._notify()
        return status, body

    # -- internals: Bot API methods -------------------------------------------------------------

    def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **BOT_USER,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        limit = min(100, max(1, int(params.get("limit") or 100)))
        timeout = max(0.0, float(params.get("timeout") or 0))
        allowed = params.get("allowed_updates")
        if allowed is not None:
            if not isinstance(allowed, list) or not all(isinstance(kind, str) for kind in allowed):
                raise bad_request("can't parse allowed updates")
            self.allowed_updates = list(allowed)
        # A newer getUpdates terminates an older one that is still waiting.
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake_pollers()
        offset = params.get("offset")
        if offset is not None:
            offset = int(offset)
            self.last_offset = offset
            if offset > 0:
                self._queue = [u for u in self._queue if u["update_id"] >= offset]
            elif offset < 0:
                self._queue = self._queue[offset:]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            batch = self._take_deliverable(limit) if self.webhook is None else []
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._closing:
                return batch
            waiter: asyncio.Future[None] = loop.create_future()
            self._poll_waiters.add(waiter)
            try:
                await asyncio.wait({waiter}, timeout=remaining)
            finally:
                self._poll_waiters.discard(waiter)

    def _chat_for(self, chat_id: Any) -> dict[str, Any]:
        if chat_id is None or chat_id == "":
            raise bad_request("chat_id is empty")
        if isinstance(chat_id, str):
            for chat in self._chats.values():
                if chat.get("username") and f"@{chat['username']}".lower() == chat_id.lower():
                    return dict(chat)
            raise bad_request("chat not found")
        chat = self._chats.get(chat_id)
        if chat is not None:
            return dict(chat)
        if self.strict_chats:
            raise bad_request("chat not found")
        return (
            {"id": chat_id, "type": "private", "first_name": "Citizen"}
            if chat_id > 0
            else {"id": chat_id, "title": "Barri group", "type": "group"}
        )

    def _check_blocked(self, chat: dict[str, Any]) -> None:
        if chat["id"] in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    def _check_limits(self, chat_id: int | str) -> None:
        if not self.enforce_limits:
            return
        now = time.monotonic()
        times = self._chat_send_times[chat_id]
        is_group = isinstance(chat_id, int) and chat_id < 0
        window = 60.0 if is_group else self.per_chat_interval
        allowed = self.group_per_minute if is_group else 1
        while times and now - times[0] >= window:
            times.popleft()
        if len(times) >= allowed:
            self.rate_limited += 1
            raise too_many_requests(max(1, math.ceil(window - (now - times[0]))))
        while self._global_send_times and now - self._global_send_times[0] >= 1.0:
            self._global_send_times.popleft()
        if len(self._global_send_times) >= self.global_per_second:
            self.rate_limited += 1
            raise too_many_requests(1)

    def _count_send(self, chat_id: int | str) -> None:
        now = time.monotonic()
        self._chat_send_times[chat_id].append(now)
        self._global_send_times.append(now)

    def _record_sent(
        self, method: str, params: dict[str, Any], chat_id: int | str, message: dict[str, Any]
    ) -> None:
        entry = {
            **copy.deepcopy(params),
            "method": method,
            "chat_id": chat_id,
            "message_id": message["message_id"],
            "time": time.monotonic(),
            "result": copy.deepcopy(message),
        }
        self._sent.append(entry)

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat_for(params.get("chat_id"))
        self._check_blocked(chat)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise bad_request("message text is empty")
        entities = params.get("entities")
        shown = text if entities else plain_text(text, params.get("parse_mode"))
        if not shown.strip():
            raise bad_request("message text is empty")
        if utf16_len(shown) > MAX_TEXT_LENGTH:
            raise bad_request("message is too long")
        markup = params.get("reply_markup")
        kind = check_reply_markup(markup) if markup is not None else None
        reply_to = self._reply_target(chat, params)
        self._check_limits(chat["id"])
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat["id"]),
            "from": dict(BOT_USER),
            "chat": chat,
            "date": int(time.time()),
            "text": shown,
        }
        if entities:
            message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        if kind == "inline" and markup["inline_keyboard"]:
            message["reply_markup"] = markup  # Telegram echoes inline keyboards only
        self._count_send(chat["id"])
        key = (chat["id"], message["message_id"])
        self._messages[key] = copy.deepcopy(message)
        self._bot_messages.add(key)
        self._record_sent("sendMessage", params, chat["id"], message)
        return message

    def _reply_target(self, chat: dict[str, Any], params: dict[str, Any]) -> dict[str, Any] | None:
        reply = params.get("reply_parameters")
        message_id = (
            reply.get("message_id")
            if isinstance(reply, dict)
            else params.get("reply_to_message_id")
        )
        if message_id is None:
            return None
        allow_missing = params.get("allow_sending_without_reply") or (
            isinstance(reply, dict) and reply.get("allow_sending_without_reply")
        )
        target = self._messages.get((chat["id"], int(message_id)))
        if target is None:
            if allow_missing:
                return None
            raise bad_request("message to be replied not found")
        target = copy.deepcopy(target)
        target.pop("reply_to_message", None)
        return target

    def _editable(self, params: dict[str, Any]) -> tuple[tuple[int | str, int], dict[str, Any]]:
        if params.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self._chat_for(params.get("chat_id"))
        self._check_blocked(chat)
        if params.get("message_id") is None:
            raise bad_request("message identifier is not specified")
        key = (chat["id"], int(params["message_id"]))
        current = self._messages.get(key)
        if current is None:
            raise bad_request("message to edit not found")
        if key not in self._bot_messages:
            raise bad_request("message can't be edited")
        return key, current

    def _store_edit(
        self,
        method: str,
        params: dict[str, Any],
        key: tuple[int | str, int],
        message: dict[str, Any],
    ) -> dict[str, Any]:
        message["edit_date"] = int(time.time())
        self._messages[key] = copy.deepcopy(message)
        self._record_sent(method, params, key[0], message)
        return message

    def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        key, current = self._editable(params)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise bad_request("message text is empty")
        entities = params.get("entities")
        shown = text if entities else plain_text(text, params.get("parse_mode"))
        if utf16_len(shown) > MAX_TEXT_LENGTH:
            raise bad_request("MESSAGE_TOO_LONG")
        markup = _inline_markup_or_none(params.get("reply_markup"))
        if (
            shown == current.get("text")
            and entities == current.get("entities")
            and markup == current.get("reply_markup")
        ):
            raise _not_modified()
        message = copy.deepcopy(current)
        message["text"] = shown
        message.pop("entities", None)
        if entities:
            message["entities"] = entities
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        return self._store_edit("editMessageText", params, key, message)

    def _edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        key, current = self._editable(params)
        markup = _inline_markup_or_none(params.get("reply_markup"))
        if markup == current.get("reply_markup"):
            raise _not_modified()
        message = copy.deepcopy(current)
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        return self._store_edit("editMessageReplyMarkup", params, key, message)

    def _delete_message(self, params: dict[str, Any]) -> bool:
        chat = self._chat_for(params.get("chat_id"))
        key = (chat["id"], int(params.get("message_id") or 0))
        if key not in self._messages:
            raise bad_request("message to delete not found")
        del self._messages[key]
        self._bot_messages.discard(key)
        self.deleted_messages.append({"chat_id": key[0], "message_id": key[1]})
        return True

    def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        pending = self._callbacks.get(query_id)
        if pending is None or pending["answered"]:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = params.get("text")
        if text is not None and len(str(text)) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        pending["answered"] = True
        self.answered_callbacks.append(copy.deepcopy(params))
        return True

    def _send_chat_action(self, params: dict[str, Any]) -> bool:
        chat = self._chat_for(params.get("chat_id"))
        self._check_blocked(chat)
        if params.get("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self.chat_actions.append(
            {**copy.deepcopy(params), "chat_id": chat["id"], "time": time.monotonic()}
        )
        return True

    def _get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        file = self.files.get(str(params.get("file_id") or ""))
        if file is None:
            raise bad_request("invalid file_id")
        if file.file_size > MAX_DOWNLOAD_SIZE:
            raise bad_request("file is too big")
        return {
            "file_id": file.file_id,
            "file_unique_id": file.file_unique_id,
            "file_size": file.file_size,
            "file_path": file.file_path,
        }

    def _set_webhook(self, params: dict[str, Any]) -> Described:
        url = str(params.get("url") or "")
        if not url:
            return self._delete_webhook(params)
        if not re.match(r"https?://[^/\s]+", url):
            raise bad_request("bad webhook: Failed to resolve host: Name or service not known")
        if self.require_https_webhook and not url.startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise bad_request("secret token contains unallowed characters")
        max_connections = int(params.get("max_connections") or 40)
        if not 1 <= max_connections <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        allowed = params.get("allowed_updates")
        if allowed is not None:
            if not isinstance(allowed, list):
                raise bad_request("can't parse allowed updates")
            self.allowed_updates = list(allowed)
        webhook = {
            "url": url,
            "secret_token": secret,
            "allowed_updates": allowed,
            "max_connections": max_connections,
            "ip_address": params.get("ip_address") or "127.0.0.1",
            "has_custom_certificate": bool(params.get("certificate")),
            "drop_pending_updates": bool(params.get("drop_pending_updates")),
        }
        already = self.webhook is not None and all(
            self.webhook.get(name) == webhook[name]
            for name in ("url", "secret_token", "max_connections")
        )
        if params.get("drop_pending_updates"):
            self._queue.clear()
            self._webhook.queue.clear()
        pending, self._queue = self._queue, []
        self._webhook.queue.extend(pending)
        self.webhook = webhook
        self.webhook_last_error = None
        self._wake_pollers()
        if self._webhook_wakeup is not None:
            self._webhook_wakeup.set()
        return Described(True, "Webhook is already set" if already else "Webhook was set")

    def _delete_webhook(self, params: dict[str, Any]) -> Described:
        drop = bool(params.get("drop_pending_updates"))
        was_set = self.webhook is not None
        pending = list(self._webhook.queue)
        self._webhook.queue.clear()
        self.webhook = None
        self._queue = [] if drop else pending + self._queue
        self._wake_pollers()
        return Described(True, "Webhook was deleted" if was_set else "Webhook is already deleted")

    def _get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.webhook is None:
            return {
                "url": "",
                "has_custom_certificate": False,
                "pending_update_count": len(self._queue),
            }
        info: dict[str, Any] = {
            "url": self.webhook["url"],
            "has_custom_certificate": self.webhook["has_custom_certificate"],
            "pending_update_count": len(self._webhook.queue),
            "ip_address": self.webhook["ip_address"],
            "max_connections": self.webhook["max_connections"],
        }
        if self.allowed_updates is not None:
            info["allowed_updates"] = list(self.allowed_updates)
        if self.webhook_last_error is not None:
            info["last_error_date"], info["last_error_message"] = self.webhook_last_error
        return info

    def _commands_key(self, params: dict[str, Any]) -> tuple[str, str]:
        scope = params.get("scope")
        if scope is not None and (
            not isinstance(scope, dict) or scope.get("type") not in COMMAND_SCOPES
        ):
            raise bad_request("can't parse BotCommandScope JSON object")
        language = str(params.get("language_code") or "")
        if language and not re.fullmatch(r"[a-z]{2}", language):
            raise bad_request("invalid language code specified")
        return language, _scope_key(scope)

    def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("too many commands specified")
        for command in commands:
            if not isinstance(command, dict):
                raise bad_request("can't parse BotCommand JSON object")
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._commands_key(params)
        if commands:
            self.commands[key] = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        else:
            self.commands.pop(key, None)
        return True

    def _get_my_commands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return copy.deepcopy(self.commands.get(self._commands_key(params), []))

    def _delete_my_commands(self, params: dict[str, Any]) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    def _set_chat_menu_button(self, params: dict[str, Any]) -> bool:
        chat_id = params.get("chat_id")
        if chat_id is not None:
            chat_id = self._chat_for(chat_id)["id"]
        button = params.get("menu_button") or {"type": "default"}
        if not isinstance(button, dict) or button.get("type") not in (
            "commands",
            "web_app",
            "default",
        ):
            raise bad_request("can't parse menu button JSON object")
        self.menu_buttons[chat_id] = button
        return True

    def _get_chat_menu_button(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        button = (
            self.menu_buttons.get(chat_id) or self.menu_buttons.get(None) or {"type": "default"}
        )
        return {"type": "commands"} if button.get("type") == "default" else copy.deepcopy(button)

    # -- internals: webhook delivery ------------------------------------------------------------

    async def _post_update(
        self, url: str, update: dict[str, Any], secret_token: str | None
    ) -> tuple[int, str]:
        """POST one update; (status, error text). Status 0 when the connection failed."""
        assert self._session is not None, "FakeTelegram is not started"
        headers = {"Content-Type": "application/json"}
        if secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret_token
        try:
            async with self._session.post(
                url,
                data=json.dumps(update),
                headers=headers,
                timeout=ClientTimeout(total=self.webhook_timeout),
            ) as response:
                raw = await response.read()
                status, reason = response.status, response.reason or ""
        except (TimeoutError, ClientError, OSError) as error:
            entry = {
                "update_id": update.get("update_id"),
                "status": 0,
                "error": repr(error),
                "time": time.monotonic(),
            }
            self.webhook_deliveries.append(entry)
            self._notify()
            return 0, f"Connection failed: {error}"
        self.webhook_deliveries.append(
            {"update_id": update.get("update_id"), "status": status, "time": time.monotonic()}
        )
        if 200 <= status < 300 and raw.strip():
            await self._webhook_reply(raw)
        self._notify()
        return (
            status,
            "" if 200 <= status < 300 else f"Wrong response from the webhook: {status} {reason}",
        )

    async def _webhook_reply(self, raw: bytes) -> None:
        """A webhook may answer with a method call in its response body; Telegram executes it."""
        try:
            body = json.loads(raw)
        except ValueError:
            return
        if isinstance(body, dict) and isinstance(body.get("method"), str):
            params = {k: _decode(k, v) for k, v in body.items() if k != "method"}
            token = self.tokens[-1] if self.tokens else "webhook"
            await self._invoke(body["method"], params, token, via="webhook-reply")

    async def _webhook_worker(self) -> None:
        assert self._webhook_wakeup is not None
        while True:
            await self._webhook_wakeup.wait()
            self._webhook_wakeup.clear()
            while self._webhook.queue and self.webhook is not None:
                update = self._webhook.queue[0]
                if not self._is_allowed(update):
                    self._webhook.queue.popleft()
                    self.dropped_updates.append(update)
                    continue
                self._webhook.delivering = True
                try:
                    status, error = await self._post_update(
                        self.webhook["url"], update, self.webhook.get("secret_token")
                    )
                finally:
                    self._webhook.delivering = False
                update_id = update["update_id"]
                done = 200 <= status < 300
                if not done:
                    self.webhook_last_error = (int(time.time()), error)
                    self._webhook.attempts[update_id] = self._webhook.attempts.get(update_id, 0) + 1
                    done = self._webhook.attempts[update_id] >= self.webhook_max_attempts
                if done and self._webhook.queue and self._webhook.queue[0] is update:
                    self._webhook.queue.popleft()
                self._notify()
                if not done:
                    await asyncio.sleep(self.webhook_retry_delay)


# ---------------------------------------------------------------------------------------------
# Module helpers


def _same_id(a: Any, b: Any) -> bool:
    return a == b or str(a) == str(b)


def _chat_instance(chat_id: int | str) -> str:
    """A stable opaque identifier of the chat, like Telegram's chat_instance."""
    digest = hashlib.sha256(f"chat_instance:{chat_id}".encode()).digest()
    return str(-(int.from_bytes(digest[:8], "big") % 10**18))


def _update_kind(update: dict[str, Any]) -> str:
    return next((key for key in update if key != "update_id"), "")


def _scope_key(scope: dict[str, Any] | None) -> str:
    if not scope:
        return "default"
    if set(scope) == {"type"}:
        return str(scope["type"])
    return json.dumps(scope, sort_keys=True)


def _not_modified() -> ApiError:
    return bad_request(
        "message is not modified: specified new message content and reply markup are exactly "
        "the same as a current content and reply markup of the message"
    )


def _inline_markup_or_none(markup: Any) -> dict[str, Any] | None:
    if markup is None:
        return None
    if check_reply_markup(markup) != "inline":
        raise bad_request("inline keyboard expected")
    return markup if markup["inline_keyboard"] else None


def _command_entities(text: str) -> list[dict[str, Any]]:
    match = re.match(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]+)?", text)
    if not match:
        return []
    return [{"offset": 0, "length": utf16_len(match.group(0)), "type": "bot_command"}]


def _decode(key: str, value: Any) -> Any:
    """Turn a form field (always a string) into the JSON value Telegram would see."""
    if isinstance(value, str):
        if key in JSON_FIELDS:
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {key} JSON object") from None
        if key in ID_FIELDS:
            return int(value) if re.fullmatch(r"-?\d+", value.strip()) else value
        if key in INT_FIELDS:
            try:
                return int(value)
            except ValueError:
                raise bad_request(f"invalid {key} specified") from None
        if key in FLOAT_FIELDS:
            try:
                return float(value)
            except ValueError:
                raise bad_request(f"invalid {key} specified") from None
        if key in BOOL_FIELDS:
            return value.strip().lower() in ("true", "1")
    return value


async def _read_params(request: web.Request) -> dict[str, Any]:
    raw: dict[str, Any] = dict(request.query.items())
    if request.body_exists:
        content_type = request.content_type
        if content_type == "application/json":
            data = await request.read()
            if data.strip():
                try:
                    body = json.loads(data)
                except ValueError:
                    raise bad_request("can't parse JSON object") from None
                if not isinstance(body, dict):
                    raise bad_request("can't parse JSON object")
                raw.update(body)
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    raw[key] = {
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "data": value.file.read(),
                    }
                else:
                    raw[key] = value
    return {key: _decode(key, value) for key, value in raw.items()}


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    """A started FakeTelegram, stopped after the test (import it into a test module to use it)."""
    fake = FakeTelegram()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


__all__ = [
    "BOT_ID",
    "BOT_USERNAME",
    "ApiError",
    "Call",
    "FakeFile",
    "FakeTelegram",
    "fake_telegram",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
    "check_reply_markup",
]
