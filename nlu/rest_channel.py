"""The engine's REST channel, closed to anyone without the shared secret.

Rasa's own ``rest`` channel takes any ``sender`` from whoever reaches the engine: a stranger
could speak in any citizen's conversation, or erase it by sending ``/forget_me`` as
``telegram:<id>``; and the engine's ``--auth-token`` protects only its HTTP API, not the
channels. This channel speaks the same protocol at the same address (``POST
/webhooks/rest/webhook`` with ``sender``, ``message`` and ``metadata``; the answers as a JSON
list) but answers 401 unless the request carries ``Authorization: Bearer <RASA_TOKEN>``,
compared in constant time. Streaming and a client-chosen ``input_channel`` are not offered:
the bot service uses neither.

Credentials (``dialogues/credentials.yml``; Rasa fills ``${RASA_TOKEN}`` from the engine's
environment and refuses to start when it is unset)::

    nlu.rest_channel.AuthenticatedRestInput:
      token: ${RASA_TOKEN}

Runs inside the engine (Python 3.10).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16  # as the bot service's settings require


def acceptable_token(token: str) -> bool:
    """Long enough, and not .env.example's placeholder (`CHANGE-ME-to-...`)."""
    return len(token) >= MIN_TOKEN_LENGTH and "changeme" not in token.lower().replace("-", "")


class AuthenticatedRestInput(InputChannel):
    """Rasa's REST protocol behind the shared secret."""

    @classmethod
    def name(cls) -> str:
        return "rest"  # the same URL as Rasa's own channel: /webhooks/rest/webhook

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> AuthenticatedRestInput:
        token = str((credentials or {}).get("token") or "")
        if not acceptable_token(token):
            raise ValueError(f"the REST channel needs RASA_TOKEN: a random value of at least {MIN_TOKEN_LENGTH} "
                             "characters")
        return cls(token)

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def authorised(self, request: Request) -> bool:
        given = (request.headers.get("Authorization") or "").encode()
        return hmac.compare_digest(given, self._expected)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint(f"custom_webhook_{type(self).__name__}", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self.authorised(request):
                return response.json({"error": "this channel answers only the Barri bot service"}, status=401)
            body = request.json
            if not isinstance(body, dict):
                return response.json({"error": "send a JSON object"}, status=400)
            sender, text, metadata = body.get("sender"), body.get("message"), body.get("metadata")
            if not isinstance(sender, str) or not sender or not isinstance(text, str):
                return response.json({"error": "sender and message must be strings"}, status=400)
            collector = CollectingOutputChannel()
            message = UserMessage(text, collector, sender, input_channel=self.name(),
                                  metadata=metadata if isinstance(metadata, dict) else None)
            try:
                await on_new_message(message)
            except asyncio.CancelledError:
                log.error("rest: a turn was cancelled (timeout)")
            except Exception:  # as Rasa's own channel: answer with what was said so far
                log.exception("rest: a turn failed")
            return response.json(collector.messages)

        return webhook
