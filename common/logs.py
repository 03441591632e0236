"""What the bot service and the action server write to their logs, and what they never write.

* Secrets from the settings (the Telegram token, SECRET_KEY, the webhook secret, RASA_TOKEN)
  are replaced by ``[redacted]`` in every line, tracebacks included, whoever logs them.
* Lines are text (``make run``) or one JSON object each (``LOG_FORMAT=json``, for log
  collectors: ``JsonFormatter``); redaction applies to both.
* httpx logs every request URL at INFO, and python-telegram-bot puts the token in the URL
  (``.../bot<TOKEN>/getUpdates``): httpx is kept to warnings.
* The access log (``ACCESS_LOG``) records method, path, status, size and duration; never a
  query string (Open311's ``api_key``, the desk's ``next``), and the client's address only
  when ``ACCESS_LOG=with_address`` (anonymous reports sit badly with a log of who connected).

Citizens' words, names and phone numbers are never passed to a logger by Barri's own code;
``tests/test_logs.py`` runs a real report, a Telegram poll cycle, Open311 calls and failures
and checks that none of them, nor any secret, reaches the output.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from common.netaddr import client_address
from common.settings import Settings

REDACTED = "[redacted]"
QUIET_LOGGERS = ("httpx", "httpcore")  # request URLs carry the Telegram token

AccessLog = Literal["off", "anonymous", "with_address"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What is being handled, for the JSON lines: the request id of an HTTP request or a citizen's
# message, and its channel (set by bot.observability and the hub; None elsewhere).
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
CHANNEL: contextvars.ContextVar[str | None] = contextvars.ContextVar("channel", default=None)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ISO 8601), level, logger, message, request
    id and channel (null outside a request or a message), and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": REQUEST_ID.get(),
            "channel": CHANNEL.get(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RedactingFormatter(logging.Formatter):
    """Another formatter's finished line (message and traceback) without the known secrets."""

    def __init__(self, secrets: list[str], inner: logging.Formatter | None = None) -> None:
        super().__init__(TEXT_FORMAT)
        self._inner = inner or logging.Formatter(TEXT_FORMAT)
        # longest first, so that a secret containing another is removed whole
        self._secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        line = self._inner.format(record)
        for secret in self._secrets:
            line = line.replace(secret, REDACTED)
        return line


def secrets_of(settings: Settings) -> list[str]:
    token = settings.telegram_token
    found = [token, settings.secret_key, settings.webhook_secret, settings.rasa_token]
    if ":" in token:  # the part after the bot id is what makes it a secret
        found.append(token.split(":", 1)[1])
    return found


def configure_logging(level: str, settings: Settings) -> None:
    """Root logging for a Barri process: one handler on stderr, text or JSON (``LOG_FORMAT``),
    secrets redacted, httpx quiet."""
    inner = JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(secrets_of(settings), inner))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


def access_logger(settings: Settings) -> type[AbstractAccessLogger] | None:
    """The access logger class ``web.run_app`` should use, or None for no access log."""
    if settings.access_log == "off":
        return None
    with_address = settings.access_log == "with_address"
    trusted_proxies = settings.trusted_proxies

    class AccessLogger(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            # request.path: never the query string
            if with_address:
                address = client_address(request, trusted_proxies)  # type: ignore[arg-type]
                self.logger.info("%s %s %s %d %s %.3fs", address, request.method, request.path, response.status,
                                 response.body_length, time)
            else:
                self.logger.info("%s %s %d %s %.3fs", request.method, request.path, response.status,
                                 response.body_length, time)

    return AccessLogger


def access_log_options(settings: Settings) -> dict[str, Any]:
    """``web.run_app``'s access-log arguments for the ACCESS_LOG setting (common.logs)."""
    logger_class = access_logger(settings)
    return {"access_log": None} if logger_class is None else {"access_log_class": logger_class}
