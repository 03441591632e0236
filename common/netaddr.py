"""Who is on the other end of a request, with reverse proxies in front of the bot service."""

from __future__ import annotations

from aiohttp import web


def client_address(request: web.Request, trusted_proxies: int) -> str:
    """The client's network address: the connection's, or with ``trusted_proxies`` reverse
    proxies in front, the X-Forwarded-For entry that many from the right (the entries to its
    left are whatever the client wrote, so they are never trusted)."""
    if trusted_proxies > 0:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if len(forwarded) >= trusted_proxies:
            return forwarded[-trusted_proxies]
    return request.remote or "unknown"
