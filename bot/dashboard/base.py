"""What every dashboard module shares: app and request keys, paths, and page rendering."""

from __future__ import annotations

import hashlib
import hmac
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.dashboard.labels import DeskText
from bot.keys import CATALOGS, SETTINGS
from common.i18n import LANGUAGE_NAMES, N_, browser_locale
from common.settings import SUPPORTED_LOCALES
from storage.staff_sessions import SignedIn

PREFIX = "/desk"
HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
STATIC_URL = PREFIX + "/static"

# What desk.js writes on the page, in the reader's language (given to it in <body data-texts>).
SCRIPT_TEXTS = {
    "live": N_("Live"),
    "connecting": N_("Reconnecting…"),
    "lost": N_("Disconnected: reload the page"),
    "unsupported": N_("Live updates unavailable: reload to refresh"),
    "signed_out": N_("Your session ended: sign in again"),
    "unseen": N_("({n} new)"),
}

def derive_token(secret_key: str, purpose: str, value: str) -> str:
    """An HMAC-SHA256 of ``value`` for one purpose ("csrf", "login"), as hex."""
    return hmac.new(secret_key.encode("utf-8"), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def tokens_match(expected: str, given: str | None) -> bool:
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())


TEMPLATES = web.AppKey("desk_templates", jinja2.Environment)
SIGNED_IN = web.RequestKey("desk_signed_in", SignedIn)
DESK_TEXT = web.RequestKey("desk_text", DeskText)


@cache
def static_version() -> str:
    """A short digest of the static files, appended to their URLs so browsers never use stale ones."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:10]


def csrf_token(request: web.Request) -> str | None:
    signed_in = request.get(SIGNED_IN)
    if signed_in is None:
        return None
    return derive_token(request.app[SETTINGS].secret_key, "csrf", signed_in.token)


def desk_text(request: web.Request) -> DeskText:
    """The desk's language for this request: the signed-in user's, else the browser's
    (``Accept-Language``), else the deployment's default."""
    signed_in = request.get(SIGNED_IN)
    settings, catalogs = request.app[SETTINGS], request.app[CATALOGS]
    locale = signed_in.locale if signed_in is not None and signed_in.locale else None
    locale = locale or browser_locale(request.headers.get("Accept-Language"), settings.default_locale)
    cached = request.get(DESK_TEXT)
    if cached is None or cached.locale != locale:
        cached = request[DESK_TEXT] = DeskText(catalogs=catalogs, locale=locale, zone=settings.zone)
    return cached


def render(request: web.Request, template: str, context: dict[str, Any] | None = None,
           *, status: int = 200) -> web.Response:
    """Render a dashboard page (autoescaped) in the desk's language, with the signed-in user
    and their CSRF token. Templates translate with ``_("...")`` and ``ngettext(...)``."""
    t = desk_text(request)
    values = {
        "_": t,
        "ngettext": t.ngettext,
        "t": t,
        "lang": t.locale,
        "desk_languages": [(code, LANGUAGE_NAMES[code]) for code in SUPPORTED_LOCALES],
        "script_texts": {"ages": t.age_patterns(), **{key: t(text) for key, text in SCRIPT_TEXTS.items()}},
        "user": request.get(SIGNED_IN),
        "csrf": csrf_token(request),
        "static": STATIC_URL,
        "version": static_version(),
        "section": None,
        **(context or {}),
    }
    response = aiohttp_jinja2.render_template(template, request, values, app_key=TEMPLATES, status=status)
    response.headers["Cache-Control"] = "no-store"
    # Same-origin form posts then carry a real Origin header (with "no-referrer" it is "null").
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def error_page(request: web.Request, status: int, title: str, message: str,
               headers: dict[str, str] | None = None, **values: object) -> web.Response:
    """An error page; ``title`` and ``message`` are msgids (marked with ``N_``) translated
    here, ``values`` fill the message's placeholders."""
    t = desk_text(request)
    response = render(request, "error.html", {"status": status, "title": t(title), "message": t(message, **values)},
                      status=status)
    response.headers.update(headers or {})
    return response


def see_other(location: str) -> web.Response:
    """303: after a form post, the browser loads ``location`` with a GET."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})
