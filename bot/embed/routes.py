"""The web chat on a city's own website: ``/embed.js`` (the snippet's script, in static/) and the
chat page's framing policy (only the sites in EMBED_ORIGINS may frame it)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path

from aiohttp import web

from bot.keys import CATALOGS, SETTINGS
from common.i18n import N_
from common.settings import SUPPORTED_LOCALES

STATIC_DIR = Path(__file__).parent / "static"
STATIC_URL = "/static/embed"
# the snippet's own texts, in the host page's language
STRINGS = {
    "open": N_("Chat with Barri"),
    "close": N_("Close the chat"),
    "title": N_("Barri chat"),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@cache
def _script_template() -> str:
    return (STATIC_DIR / "embed.js").read_text(encoding="utf-8")


async def embed_script(request: web.Request) -> web.Response:
    catalogs, settings = request.app[CATALOGS], request.app[SETTINGS]
    config = {
        "fallback": settings.default_locale,
        "strings": {locale: {key: catalogs.gettext(msgid, locale) for key, msgid in STRINGS.items()}
                    for locale in SUPPORTED_LOCALES},
    }
    # "<" escaped: the JSON can never close a <script> element, whatever a translation holds
    config_json = json.dumps(config, ensure_ascii=False).replace("<", "\\u003c")
    body = _script_template().replace("__BARRI_CONFIG__", config_json)
    return web.Response(
        text=body, content_type="application/javascript", charset="utf-8",
        headers={
            "Cache-Control": "public, max-age=3600",
            # loaded by other sites' pages, including ones that isolate themselves (COEP)
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )


def frame_policy(content_security_policy: str, embed_origins: tuple[str, ...]) -> dict[str, str]:
    """The chat page's headers: with EMBED_ORIGINS, its frame-ancestors names them (browsers
    that know frame-ancestors ignore X-Frame-Options; older ones keep refusing other sites);
    without, nothing changes (frame-ancestors 'none', X-Frame-Options: DENY)."""
    if not embed_origins:
        return {}
    policy = content_security_policy.replace("frame-ancestors 'none'",
                                              "frame-ancestors 'self' " + " ".join(embed_origins))
    return {"Content-Security-Policy": policy, "X-Frame-Options": "SAMEORIGIN"}


def framable(page: Handler, content_security_policy: str) -> Handler:
    """The chat page, framable by the city's sites in EMBED_ORIGINS."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = await page(request)
        response.headers.update(frame_policy(content_security_policy, request.app[SETTINGS].embed_origins))
        return response

    handler.__name__ = "framable_chat_page"
    return handler


def add_routes(app: web.Application) -> None:
    app.router.add_get("/embed.js", embed_script)
    app.router.add_static(STATIC_URL, STATIC_DIR)
