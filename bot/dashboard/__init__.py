"""The dispatcher dashboard under /desk: server-rendered pages for staff.

``setup(app)`` adds its routes, its own Jinja2 environment (autoescaped, under its own app
key, so the web chat's templates are untouched), the login throttle and the live case feed.

Routes (all but the sign-in page and the static files need a session; case pages need the
dispatcher or admin role):

    GET  /desk/login                      sign-in form
    POST /desk/login                      sign in (throttled)
    POST /desk/logout                     sign out
    POST /desk/language                   the language of the signed-in user's desk
    GET  /desk/                           queue of open cases, updated live
    GET  /desk/events                     server-sent events for the queue
    GET  /desk/cases/{ref}                one case, its photos and history
    POST /desk/cases/{ref}                change status, priority, assignee; add notes
    GET  /desk/cases/{ref}/photos/{id}    a photo (audited)
    GET  /desk/map                        neighbourhood map (SVG)
    GET  /desk/stats                      charts (SVG)
    GET  /desk/alerts                     neighbourhood alerts and the form (community, admin)
    POST /desk/alerts                     send an alert
    GET  /desk/alerts/{id}                one alert's delivery report
    POST /desk/alerts/{id}/cancel         cancel it
"""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.dashboard import alerts, auth, live, views
from bot.dashboard.base import PREFIX, STATIC_DIR, STATIC_URL, TEMPLATES, TEMPLATES_DIR, see_other
from bot.dashboard.throttle import create_sign_in_throttle
from bot.keys import SETTINGS


async def _to_queue(request: web.Request) -> web.Response:
    return see_other(PREFIX + "/")


def setup(app: web.Application) -> None:
    aiohttp_jinja2.setup(
        app,
        app_key=TEMPLATES,
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app[auth.THROTTLE] = throttle = create_sign_in_throttle(app[SETTINGS].redis_url)
    app[live.FEED] = feed = live.CaseFeed(app)

    async def stop_feed(app: web.Application) -> None:
        await feed.close()

    async def close_throttle(app: web.Application) -> None:
        await throttle.close()

    app.on_cleanup.append(close_throttle)

    app.on_shutdown.append(stop_feed)
    router = app.router
    router.add_get(PREFIX, _to_queue)
    router.add_get(PREFIX + "/login", auth.login_page, name="desk_login")
    router.add_post(PREFIX + "/login", auth.login_submit)
    router.add_post(PREFIX + "/logout", auth.logout)
    router.add_post(PREFIX + "/language", views.set_language)
    router.add_get(PREFIX + "/", views.queue_page, name="desk_queue")
    router.add_get(PREFIX + "/events", live.events)
    router.add_get(PREFIX + "/cases/{ref}", views.case_page)
    router.add_post(PREFIX + "/cases/{ref}", views.case_update)
    router.add_post(PREFIX + "/cases/{ref}/chat", views.case_chat)
    router.add_post(PREFIX + "/cases/{ref}/chat/close", views.case_chat_close)
    router.add_get(PREFIX + "/cases/{ref}/chat/events", live.chat_events)
    router.add_get(PREFIX + "/cases/{ref}/photos/{attachment_id}", views.case_photo)
    router.add_get(PREFIX + "/map", views.map_page)
    router.add_get(PREFIX + "/stats", views.stats_page)
    alerts.add_routes(router, PREFIX)
    router.add_static(STATIC_URL, STATIC_DIR)
