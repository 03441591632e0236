"""The security headers every response of the bot service carries (a response-prepare signal)."""

from __future__ import annotations

from aiohttp import web

from bot.keys import SETTINGS

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


# a year: browsers that saw the site over https never try plain http for it again
STRICT_TRANSPORT_SECURITY = "max-age=31536000; includeSubDomains"


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response, as it is sent: error pages (404, 405, 413, 500) never pass through
    a middleware's return value, so this is a response-prepare signal."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.app[SETTINGS].public_url.startswith("https://"):
        response.headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
