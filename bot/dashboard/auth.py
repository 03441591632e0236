"""Who may use the dashboard: sign-in with a password, the session cookie, CSRF tokens,
Origin checks, and the decorator that guards every dashboard route.

Sign-in attempts go through ``bot.dashboard.throttle`` (a growing delay per name and per
client address, counted before the password is checked; shared through Redis when set);
a refused attempt gets 429 without the password being checked.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from functools import wraps
from urllib.parse import quote, urlsplit

from aiohttp import web

from bot.dashboard.base import (
    PREFIX,
    SIGNED_IN,
    derive_token,
    desk_text,
    error_page,
    render,
    see_other,
    tokens_match,
)
from bot.dashboard.throttle import SignInThrottle
from bot.keys import DB, SETTINGS
from common.i18n import N_
from common.netaddr import client_address
from storage.db import run_storage
from storage.models import STAFF_NAME_MAX
from storage.staff_sessions import SignedIn, end_session, resume_session, sign_in
from storage.users import PASSWORD_MAX_LENGTH, check_password

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE = "barri_desk"
LOGIN_COOKIE = "barri_desk_login"  # binds the sign-in form to the browser that loaded it
LOGIN_COOKIE_MAX_AGE = 3600
CASE_READERS = ("dispatcher", "admin")
ROLE_GROUPS = {"dispatcher": N_("dispatchers"), "community": N_("community teams"), "admin": N_("administrators")}


THROTTLE = web.AppKey("desk_throttle", SignInThrottle)


# --------------------------------------------------------------------------- cookies and origins


def _cookie_options(request: web.Request) -> dict[str, object]:
    return {"httponly": True, "samesite": "Strict", "path": PREFIX,
            "secure": request.app[SETTINGS].public_url.startswith("https")}


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: web.Request) -> bool:
    """False when the browser says the request comes from another site (Origin, else Referer)."""
    allowed = {f"{request.scheme}://{request.host}".lower()}
    public = _origin_of(request.app[SETTINGS].public_url)
    if public:
        allowed.add(public)
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin.lower() in allowed
    referer = request.headers.get("Referer")
    if referer:
        return _origin_of(referer) in allowed
    return True


def _is_xhr(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return (
        request.headers.get("X-Requested-With", "").lower() == "xmlhttprequest"
        or "text/event-stream" in accept
        or (accept.startswith("application/json") and "text/html" not in accept)
    )


def safe_next(value: str | None) -> str:
    """Where to go after signing in: only a path inside the dashboard."""
    if (value and len(value) < 500 and value.startswith(PREFIX + "/") and not value.startswith("//")
            and "\\" not in value and all(ord(c) > 31 for c in value)):
        return value
    return PREFIX + "/"


async def current_user(request: web.Request, *, touch: bool = True) -> SignedIn | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None

    return await run_storage(request.app[DB], resume_session, token=token, touch=touch)


def _unauthenticated(request: web.Request) -> web.StreamResponse:
    if request.method in ("GET", "HEAD") and not _is_xhr(request):
        response: web.StreamResponse = see_other(f"{PREFIX}/login?next={quote(request.path_qs, safe='/')}")
    else:
        text = desk_text(request).gettext("Sign in at /desk/login first.")
        response = web.Response(status=401, text=text + "\n", headers={
            "WWW-Authenticate": 'Session realm="Barri desk"', "Cache-Control": "no-store"})
    if SESSION_COOKIE in request.cookies:
        response.del_cookie(SESSION_COOKIE, path=PREFIX)
    return response


async def check_csrf(request: web.Request) -> bool:
    """The form's token must be the session's, and the browser must not name another origin."""
    if not same_origin(request):
        return False
    form = await request.post()
    given = form.get("csrf")
    signed_in = request[SIGNED_IN]
    expected = derive_token(request.app[SETTINGS].secret_key, "csrf", signed_in.token)
    return tokens_match(expected, given if isinstance(given, str) else None)


def desk_route(*roles: str, touch: bool = True) -> Callable[[Handler], Handler]:
    """Guard a dashboard route: a session (else redirect to the sign-in page, or 401 for
    POSTs and scripts), one of ``roles`` (else 403; no roles = any signed-in user) and, on
    every POST, a valid CSRF token (else 403)."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            signed_in = await current_user(request, touch=touch)
            if signed_in is None:
                return _unauthenticated(request)
            request[SIGNED_IN] = signed_in
            if roles and signed_in.role not in roles:
                t = desk_text(request)
                if _is_xhr(request):
                    return web.Response(status=403, text=t.gettext("Your role may not use this page.") + "\n")
                hint = (N_("Signed in as {name} ({role}). This page is for {groups}. Community teams send "
                           "neighbourhood alerts from the Alerts page.") if signed_in.role == "community"
                        else N_("Signed in as {name} ({role}). This page is for {groups}."))
                return error_page(request, 403, N_("Not available for your role"), hint, name=signed_in.name,
                                  role=t.role(signed_in.role),
                                  groups=t.gettext(" and ").join(t(ROLE_GROUPS.get(r, r)) for r in roles))
            if request.method not in ("GET", "HEAD") and not await check_csrf(request):
                return error_page(request, 403, N_("The form could not be verified"),
                                  N_("This form has expired or did not come from this dashboard. "
                                     "Go back, reload the page and try again."))
            return await handler(request)

        checked.required_roles = roles  # type: ignore[attr-defined]  # read by the route tests
        return checked

    return decorate


# --------------------------------------------------------------------------- sign-in and sign-out


def _login_form(request: web.Request, *, status: int = 200, error: str | None = None, name: str = "",
                next_url: str | None = None) -> web.Response:
    nonce = secrets.token_urlsafe(24)
    token = derive_token(request.app[SETTINGS].secret_key, "login", nonce)
    response = render(request, "login.html", {
        "login_token": token, "error": error, "name": name,
        "next": safe_next(next_url if next_url is not None else request.query.get("next")),
    }, status=status)
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=LOGIN_COOKIE_MAX_AGE, **_cookie_options(request))  # type: ignore[arg-type]
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    if await current_user(request, touch=False) is not None:
        return see_other(safe_next(request.query.get("next")))
    return _login_form(request)


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name", ""))[:STAFF_NAME_MAX * 2].strip()
    password = str(form.get("password", ""))
    next_url = safe_next(str(form.get("next", "")))
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    given = form.get("login_token")
    expected = derive_token(request.app[SETTINGS].secret_key, "login", nonce)
    if not same_origin(request) or not nonce or not tokens_match(expected, given if isinstance(given, str) else None):
        return _login_form(request, status=403, name=name, next_url=next_url,
                           error=desk_text(request).gettext(
                               "This sign-in form has expired. Please enter your name and password again."))
    address = client_address(request, request.app[SETTINGS].trusted_proxies)
    throttle = request.app[THROTTLE]
    # counted before the password is checked, so simultaneous guesses cannot all be tried
    wait = await throttle.attempt(name, address)
    if wait is not None:
        log.warning("dashboard sign-in refused: too many failed attempts")
        minutes = max(1, round(wait / 60))
        text = desk_text(request)
        again = (text.ngettext("Try again in about {n} minute", "Try again in about {n} minutes", minutes)
                 if wait >= 60 else text.ngettext("Try again in {n} second", "Try again in {n} seconds", wait))
        return error_page(request, 429, N_("Too many failed sign-in attempts"),
                          N_("For your security, signing in is paused for this account or this network. "
                             "{try_again}, or ask an administrator to reset your password."),
                          headers={"Retry-After": str(wait)}, try_again=again)
    if not name or not password or len(password) > PASSWORD_MAX_LENGTH:
        user = None
    else:
        user = await run_storage(request.app[DB], check_password, name=name, password=password)
    if user is None:
        return _login_form(request, status=401, name=name, next_url=next_url,
                           error=desk_text(request).gettext("Wrong name or password."))
    await throttle.succeeded(name, address)
    if user.role == "community" and next_url == PREFIX + "/":
        next_url = PREFIX + "/alerts"  # the queue is for dispatchers; alerts are what community teams do

    token = await run_storage(request.app[DB], sign_in, user=user, previous_token=request.cookies.get(SESSION_COOKIE))
    response = see_other(next_url)
    response.set_cookie(SESSION_COOKIE, token, **_cookie_options(request))  # type: ignore[arg-type]
    response.del_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@desk_route()
async def logout(request: web.Request) -> web.StreamResponse:
    signed_in = request[SIGNED_IN]

    await run_storage(request.app[DB], end_session, signed_in=signed_in)
    response = see_other(f"{PREFIX}/login")
    response.del_cookie(SESSION_COOKIE, path=PREFIX)
    return response
