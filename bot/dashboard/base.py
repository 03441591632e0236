"""What every dashboard module shares: app and request keys, paths, and page rendering."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.dashboard.sessions import SignedIn, derive_token
from bot.keys import SETTINGS

PREFIX = "/desk"
HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
STATIC_URL = PREFIX + "/static"

TEMPLATES = web.AppKey("desk_templates", jinja2.Environment)
SIGNED_IN = web.RequestKey("desk_signed_in", SignedIn)


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


def render(request: web.Request, template: str, context: dict[str, Any] | None = None,
           *, status: int = 200) -> web.Response:
    """Render a dashboard page (autoescaped) with the signed-in user and their CSRF token."""
    values = {
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
               headers: dict[str, str] | None = None) -> web.Response:
    response = render(request, "error.html", {"status": status, "title": title, "message": message}, status=status)
    response.headers.update(headers or {})
    return response


def see_other(location: str) -> web.Response:
    """303: after a form post, the browser loads ``location`` with a GET."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})
