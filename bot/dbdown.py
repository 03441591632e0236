"""While the database does not answer, requests fail cleanly with 503 instead of a 500.

Handlers call storage through ``storage.db.run_storage`` (a ``session_scope``), which raises
``DatabaseUnavailable``; a query run outside it raises SQLAlchemy's ``OperationalError`` or
``InterfaceError``. Both are answered here in the route's own error format, with
``Retry-After``; nothing needs a restart afterwards (PostgreSQL connections are checked
before use, ``pool_pre_ping``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy.exc import InterfaceError, OperationalError

from bot.observability import METRICS
from bot.open311.format import render_error
from storage.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MESSAGE = "the database is unavailable; try again shortly"
RETRY_AFTER_SECONDS = "10"


def database_down_response(request: web.Request) -> web.Response:
    if request.path.startswith("/open311/"):  # the GeoReport error format
        response = render_error("xml" if request.path.endswith(".xml") else "json", 503, MESSAGE)
    elif request.path.startswith("/desk/"):
        response = web.Response(status=503, text=MESSAGE)
    else:
        response = web.json_response({"error": MESSAGE, "database": "down"}, status=503)
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


@web.middleware
async def database_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (DatabaseUnavailable, OperationalError, InterfaceError) as error:
        log.warning("database unavailable during %s %s: %s", request.method, request.path, type(error).__name__)
        if METRICS in request.app:
            request.app[METRICS].database_errors.inc()
        return database_down_response(request)
