"""Request size limits.

The app's own ``client_max_size`` has to let a photo through (``/webchat/upload``); every
other body (staff API JSON, Open311 forms, desk forms) is small, so those routes get
``max_json_body_bytes``, answered with 413 in the route's own error format.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.keys import SETTINGS
from bot.open311.format import render_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LIMITED_PREFIXES = ("/api/", "/open311/", "/desk/")


def _too_large(request: web.Request, limit: int) -> web.Response:
    message = f"the request body is too large (at most {limit} bytes)"
    if request.path.startswith("/open311/"):  # the GeoReport error format
        return render_error("xml" if request.path.endswith(".xml") else "json", 413, message)
    if request.path.startswith("/desk/"):
        return web.Response(status=413, text=message)
    return web.json_response({"error": message}, status=413)


@web.middleware
async def body_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(LIMITED_PREFIXES) or not request.body_exists:
        return await handler(request)
    limit = request.app[SETTINGS].max_json_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _too_large(request, limit)
    try:
        # also bounds chunked bodies, which carry no Content-Length
        return await handler(request.clone(client_max_size=limit))
    except web.HTTPRequestEntityTooLarge:
        return _too_large(request, limit)
