"""The WhatsApp Cloud API as Barri uses it: send a message, fetch a photo, check a webhook's
signature, name a citizen without their number, and read what an error means.

Barri sends to ``{WHATSAPP_API_URL}/{WHATSAPP_PHONE_NUMBER_ID}/messages`` and fetches media by
id from ``{WHATSAPP_API_URL}/{media_id}`` (then from the short-lived URL that answers), both
with the access token as a bearer token, over the app's one shared ClientSession.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.channels.base import DeliveryOutcome
from common.settings import Settings

SENDER_PREFIX = "whatsapp:"
PSEUDONYM_HEX = 32  # 128 bits of HMAC-SHA256: unique enough, and short ids fit every column

# Cloud API error codes (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes)
REENGAGEMENT = 131047  # more than 24 hours since the citizen's last message: templates only
PAIR_RATE_LIMIT = 131056  # too many messages to one citizen in a short time
THROUGHPUT = {130429: 2.0, 80007: 60.0, 4: 60.0}  # the number's / the account's / the app's rate limit: seconds
UNDELIVERABLE = {131026, 131051}  # not on WhatsApp, old app, blocked...; the brief's "unsupported type" too
PAIR_WAIT_SECONDS = 60.0
# runs of digits long enough to be a phone number: never kept from an error text (it is logged)
LONG_NUMBER = re.compile(r"\+?\d[\d \-]{5,}\d")


class CloudApiError(Exception):
    """The Cloud API refused a request (``code`` is its error code; 0 when it gave none)."""

    def __init__(self, http_status: int, code: int = 0, title: str = "") -> None:
        super().__init__(f"{http_status} {code}")
        self.http_status = http_status
        self.code = code
        self.title = LONG_NUMBER.sub("…", title)[:120]


class MediaTooBig(Exception):
    """A photo larger than MAX_PHOTO_BYTES: not downloaded (or not beyond the limit)."""


def pseudonym_key(settings: Settings) -> bytes:
    """The key of the citizens' pseudonyms, derived from SECRET_KEY (changing SECRET_KEY starts
    every WhatsApp conversation anew)."""
    return hmac.new(settings.secret_key.encode(), b"barri whatsapp pseudonym", hashlib.sha256).digest()


def sender_of(phone: str, key: bytes) -> str:
    """The engine's name for a WhatsApp citizen: a keyed hash of their number, never the number."""
    return SENDER_PREFIX + hmac.new(key, phone.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]


def signature_ok(app_secret: str, body: bytes, header: str) -> bool:
    """X-Hub-Signature-256 is ``sha256=`` and the HMAC-SHA256 of the raw body with the app secret."""
    expected = "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def outcome_for(error: CloudApiError) -> DeliveryOutcome:
    """What the outbox does after a refusal, as with Telegram's 429 and 403."""
    what = f"whatsapp {error.code or error.http_status}: {error.title}"[:200]
    if error.code == PAIR_RATE_LIMIT:
        return DeliveryOutcome("retry", retry_after=PAIR_WAIT_SECONDS, error=what, recipient_only=True)
    if error.code in THROUGHPUT:
        return DeliveryOutcome("retry", retry_after=THROUGHPUT[error.code], error=what)
    if error.http_status == 429:
        return DeliveryOutcome("retry", retry_after=5.0, error=what)
    if error.code in UNDELIVERABLE:
        return DeliveryOutcome("unreachable", error=what)
    if error.http_status in (401, 403) or error.code == 190:
        return DeliveryOutcome("retry", error=what)  # the token: kept, retried with backoff
    if error.http_status >= 500 or error.http_status == 0:
        return DeliveryOutcome("retry", error=what)
    return DeliveryOutcome("failed", error=what)


@dataclass
class CloudApi:
    http: aiohttp.ClientSession
    settings: Settings
    timeout: float = 15.0  # well under the outbox lease

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.whatsapp_token}"}

    @property
    def _base(self) -> str:
        return self.settings.whatsapp_api_url.rstrip("/")

    async def send(self, phone: str, message: dict[str, Any]) -> str:
        """Send one message (the body without ``to``); returns WhatsApp's id for it."""
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": phone, **message}
        url = f"{self._base}/{self.settings.whatsapp_phone_number_id}/messages"
        try:
            async with self.http.post(url, json=body, headers=self._headers,
                                      timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                answer = await _json(response)
                if response.status != 200:
                    raise _error(response.status, answer)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise CloudApiError(0, 0, type(error).__name__) from error
        messages = answer.get("messages") or [{}]
        return str(messages[0].get("id", ""))

    async def fetch_media(self, media_id: str, max_bytes: int) -> bytes:
        """A citizen's photo: its URL by id, then its bytes (MediaTooBig beyond ``max_bytes``)."""
        timeout = aiohttp.ClientTimeout(total=60)
        try:
            async with self.http.get(f"{self._base}/{media_id}", headers=self._headers, timeout=timeout) as response:
                info = await _json(response)
                if response.status != 200:
                    raise _error(response.status, info)
            if int(info.get("file_size") or 0) > max_bytes:
                raise MediaTooBig
            url = str(info.get("url") or "")
            if not url.startswith(("https://", "http://")):
                raise CloudApiError(response.status, 0, "no media URL")
            async with self.http.get(url, headers=self._headers, timeout=timeout) as response:
                if response.status != 200:
                    raise CloudApiError(response.status, 0, "media download refused")
                if (response.content_length or 0) > max_bytes:
                    raise MediaTooBig
                data = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > max_bytes:
                        raise MediaTooBig
                return bytes(data)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise CloudApiError(0, 0, type(error).__name__) from error


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        answer = await response.json(content_type=None)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _error(http_status: int, answer: dict[str, Any]) -> CloudApiError:
    found = answer.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    code = error.get("code")
    return CloudApiError(http_status, code if isinstance(code, int) else 0,
                         str(error.get("title") or error.get("message") or ""))
