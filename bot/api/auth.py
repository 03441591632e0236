"""Who is calling a staff route: a Bearer API token, checked on every request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Protocol, cast

from aiohttp import web
from sqlalchemy import Engine

from storage.db import run_storage
from storage.models import StaffUser
from storage.users import user_for_token

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STAFF = web.RequestKey("staff", StaffUser)


class RoleCheckedHandler(Protocol):
    """A handler wrapped by ``require``: still a Handler, plus the roles it lets in."""

    required_roles: tuple[str, ...]

    def __call__(self, request: web.Request, /) -> Awaitable[web.StreamResponse]: ...


def error(status: int, message: str, **extra: object) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


async def authenticate(request: web.Request, db: Engine) -> StaffUser | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None

    return await run_storage(db, user_for_token, token=token.strip())


def require(*roles: str, db_key: web.AppKey[Engine]) -> Callable[[Handler], RoleCheckedHandler]:
    """401 without valid credentials, 403 for a role that may not use the route."""

    def decorate(handler: Handler) -> RoleCheckedHandler:
        @wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            user = await authenticate(request, request.app[db_key])
            if user is None:
                response = error(401, "a valid API token is required (Authorization: Bearer ...)")
                response.headers["WWW-Authenticate"] = 'Bearer realm="barri"'
                return response
            if user.role not in roles:
                return error(403, f"the {user.role} role may not use this route")
            request[STAFF] = user
            return await handler(request)

        # the cast is made good on the next line, which adds the one attribute the Protocol adds;
        # required_roles is read by the route tests
        marked = cast(RoleCheckedHandler, checked)
        marked.required_roles = roles
        return marked

    return decorate


def staff_of(request: web.Request) -> StaffUser:
    return request[STAFF]
