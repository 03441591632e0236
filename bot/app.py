"""The bot service: one aiohttp app hosting the channel adapters and the health check."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
import aiohttp_jinja2
import jinja2
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bot import dashboard
from bot.api import alerts as alerts_api
from bot.api import cases as cases_api
from bot.api.auth import require
from bot.channels.telegram.channel import TelegramChannel
from bot.channels.webchat.channel import WebChatChannel
from bot.dbdown import database_errors
from bot.dispatch import DispatchDesk
from bot.engine import Conversations, EngineClient
from bot.jobs import JobContext
from bot.keys import (
    CATALOGS,
    CONVERSATIONS,
    DB,
    ENGINE,
    HTTP,
    LEADERSHIP,
    NEIGHBOURHOODS,
    NOTIFIER,
    OUTBOXES,
    SETTINGS,
    TELEGRAM,
    WEBCHAT,
)
from bot.limits import body_limits
from bot.livechat import LiveChat
from bot.notify import Notifier
from bot.observability import METRICS, Metrics, echo_request_id, metrics_response, request_ids
from bot.open311 import routes as open311
from bot.outbox import Outboxes, OutboxWorker
from bot.ratelimit import create_rate_limiter
from bot.replay import Inbox, Replayer
from bot.scheduler import Leadership
from common.geo import Neighbourhoods
from common.i18n import Catalogs
from common.language import warm_up
from common.settings import Settings
from storage.db import create_db_engine, ping, session_scope
from storage.errors import DatabaseUnavailable, StorageError
from storage.inbox import has_pending
from storage.tracker import conversation_last_active, erase_conversation

log = logging.getLogger(__name__)

WEBCHAT_DIR = Path(__file__).parent / "channels" / "webchat"

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


async def _database_ok(request: web.Request) -> bool:
    try:
        await asyncio.to_thread(ping, request.app[DB])
    except DatabaseUnavailable:
        return False
    return True


async def livez(request: web.Request) -> web.Response:
    """Liveness: the process answers (restart it when this fails). Checks nothing else, so a
    database or engine outage never gets a healthy process killed."""
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: can this instance take citizens' messages? That needs the database (where
    a message is kept if the engine does not answer); the engine being down is reported but
    does not make the instance unready, since its messages are kept and replayed."""
    db_ok, engine_ok = await asyncio.gather(_database_ok(request), request.app[ENGINE].engine_ready())
    body = {"status": "ready" if db_ok else "not ready", "database": "ok" if db_ok else "down",
            "engine": "ok" if engine_ok else "down (messages are kept and replayed)"}
    return web.json_response(body, status=200 if db_ok else 503, headers={"Cache-Control": "no-store"})


async def healthz(request: web.Request) -> web.Response:
    """The detailed view: 200 only when the engine, the action server and the database all answer."""
    engine = request.app[ENGINE]
    engine_ok, actions_ok, db_ok = await asyncio.gather(
        engine.engine_ready(), engine.actions_ready(), _database_ok(request)
    )
    checks = {
        "engine": "ok" if engine_ok else "down",
        "actions": "ok" if actions_ok else "down",
        "database": "ok" if db_ok else "down",
    }
    healthy = all(value == "ok" for value in checks.values())
    return web.json_response({"status": "ok" if healthy else "down", **checks}, status=200 if healthy else 503)


@require("admin", db_key=DB)
async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics, for an admin's API token (``barri serve`` also serves them on a
    loopback port without one: METRICS_PORT)."""
    return await metrics_response(request.app)


def create_app(settings: Settings) -> web.Application:
    settings.require("secret_key", "rasa_token")
    app = web.Application(
        middlewares=[request_ids, database_errors, body_limits],
        client_max_size=settings.max_photo_bytes + 256 * 1024,
    )
    app[SETTINGS] = settings
    app[METRICS] = telemetry = Metrics()
    app.on_response_prepare.append(security_headers)
    app.on_response_prepare.append(echo_request_id)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(WEBCHAT_DIR / "templates")),
        autoescape=jinja2.select_autoescape(default=True),
    )

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        catalogs = await asyncio.to_thread(Catalogs.load, settings.locales_dir, settings.default_locale)
        await asyncio.to_thread(warm_up)
        app[NEIGHBOURHOODS] = await asyncio.to_thread(Neighbourhoods.from_geojson, settings.neighbourhoods_geojson)
        db = create_db_engine(settings.database_url)
        tracker_db = create_db_engine(settings.tracker_store_url)
        telemetry.watch_database(db, lambda: LEADERSHIP in app and app[LEADERSHIP].is_leader)
        async with aiohttp.ClientSession() as http:
            engine = EngineClient(
                http, settings.engine_url, settings.action_server_url, settings.rasa_token,
                settings.engine_timeout_seconds,
            )

            async def erase(sender_id: str) -> None:
                await asyncio.to_thread(erase_conversation, engine=tracker_db, sender_id=sender_id)

            limiter = create_rate_limiter(settings.redis_url, settings.max_messages_per_minute,
                                          settings.rate_limit_window_seconds)
            # messages written while the engine is down are kept and replayed (bot.replay)
            inbox = Inbox(db, lease_seconds=2 * settings.engine_timeout_seconds + 10)
            conversations = Conversations(engine, catalogs, erase, LiveChat(db), rate_limiter=limiter, inbox=inbox,
                                          metrics=telemetry)
            address_limiter = create_rate_limiter(settings.redis_url, settings.max_messages_per_minute_per_address,
                                                  settings.rate_limit_window_seconds, scope="address")
            hello_limiter = create_rate_limiter(settings.redis_url, settings.max_hellos_per_minute_per_address,
                                                settings.rate_limit_window_seconds, scope="hello")
            new_session_limiter = create_rate_limiter(
                settings.redis_url, settings.max_new_sessions_per_minute_per_address,
                settings.rate_limit_window_seconds, scope="session")
            async def conversation_exists(sender_id: str) -> bool:
                """Whether the engine still has this conversation (or messages of it wait to be
                replayed); a database that does not answer erases nothing from anyone's page."""
                def check() -> bool:
                    if conversation_last_active(tracker=tracker_db, sender_id=sender_id) is not None:
                        return True
                    with session_scope(db) as session:
                        return has_pending(session=session, sender_id=sender_id)

                try:
                    return await asyncio.to_thread(check)
                except (StorageError, SQLAlchemyError):
                    return True

            webchat = WebChatChannel(settings, catalogs, conversations, db, address_limiter=address_limiter,
                                     hello_limiter=hello_limiter, new_session_limiter=new_session_limiter,
                                     conversation_exists=conversation_exists)
            app[CATALOGS] = catalogs
            app[HTTP] = http
            app[DB] = db
            app[ENGINE] = engine
            app[CONVERSATIONS] = conversations
            app[WEBCHAT] = webchat
            await webchat.connect()
            telegram = None
            if settings.telegram_token:
                telegram = TelegramChannel(settings, catalogs, conversations, db)
                app[TELEGRAM] = telegram
                await telegram.connect()
            channels = {"web": webchat, **({"telegram": telegram} if telegram else {})}
            inbox.channels.update(channels)
            replayer = Replayer(inbox, engine.engine_ready, conversations.replay, settings.replay_probe_seconds)
            replayer.start()
            # the outbox: web chat on every instance (its citizens' sockets are here), Telegram
            # only on the scheduler leader (one sender keeps the bot under Telegram's limits)
            outboxes = Outboxes()
            web_outbox = OutboxWorker(db=db, settings=settings, channel="web", pusher=webchat,
                                      recipients=webchat.connected, pace=False, metrics=telemetry)
            outboxes.workers["web"] = web_outbox
            webchat.on_connect.append(web_outbox.flush)
            web_outbox.start()
            app[OUTBOXES] = outboxes
            notifier = Notifier(db, catalogs, channels, wake=outboxes.wake)
            app[NOTIFIER] = notifier
            desk = None
            if telegram is not None and telegram.application is not None and settings.dispatch_chat_id:
                desk = DispatchDesk(telegram.application.bot, settings.dispatch_chat_id, db, catalogs, settings,
                                    notifier)
                telegram.desk = desk
                desk.start()
            # the scheduler runs on the one instance holding the leader lease (bot.scheduler)
            leadership = Leadership(settings, db, JobContext(settings=settings, db=db, tracker_db=tracker_db,
                                                             catalogs=catalogs, desk=desk))
            app[LEADERSHIP] = leadership
            if telegram is not None:
                telegram_outbox = OutboxWorker(db=db, settings=settings, channel="telegram", pusher=telegram,
                                               metrics=telemetry)
                outboxes.workers["telegram"] = telegram_outbox

                async def send_telegram_outbox() -> None:
                    telegram_outbox.start()

                leadership.on_elected.append(send_telegram_outbox)
                leadership.on_deposed.append(telegram_outbox.stop)
            leadership.start()
            try:
                yield
            finally:
                await replayer.stop()
                await leadership.stop()
                await outboxes.stop()
                if desk is not None:
                    await desk.stop()
                if telegram is not None:
                    await telegram.disconnect()
                for closing in (limiter, address_limiter, hello_limiter, new_session_limiter):
                    if closing is not None:
                        await closing.close()
        db.dispose()
        tracker_db.dispose()

    async def close_sockets(app: web.Application) -> None:
        if WEBCHAT in app:
            await app[WEBCHAT].disconnect()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(close_sockets)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_static("/static/webchat", WEBCHAT_DIR / "static")
    # routes must exist before start-up; handlers reach the channel through the app key
    app.router.add_get("/", _via_webchat("page"), name="chat")
    app.router.add_get("/webchat/ws", _via_webchat("socket"))
    app.router.add_post("/webchat/upload", _via_webchat("upload"))
    cases_api.add_routes(app)
    alerts_api.add_routes(app)
    dashboard.setup(app)
    open311.add_routes(app)
    if settings.telegram_token and settings.telegram_webhook_url:
        path = urlparse(settings.telegram_webhook_url).path or "/telegram/webhook"

        async def telegram_webhook(request: web.Request) -> web.StreamResponse:
            return await request.app[TELEGRAM].webhook(request)

        app.router.add_post(path, telegram_webhook)
    return app


def _via_webchat(method: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await getattr(request.app[WEBCHAT], method)(request)

    handler.__name__ = f"webchat_{method}"
    return handler
