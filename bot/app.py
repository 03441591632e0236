"""The bot service: one aiohttp app hosting the channel adapters and the health check."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bot import dashboard
from bot.api import alerts as alerts_api
from bot.api import cases as cases_api
from bot.api.auth import require
from bot.channels.base import Channel, ChannelParts
from bot.channels.shared import SharedChannel
from bot.channels.socketio.channel import SocketIOChannel
from bot.channels.telegram.channel import TelegramChannel
from bot.channels.webchat.channel import WebChatChannel
from bot.channels.whatsapp.channel import WhatsAppChannel
from bot.dbdown import database_errors
from bot.embed import routes as embed
from bot.engine import Conversations, EngineClient
from bot.headers import security_headers
from bot.jobs import JobContext
from bot.keys import (
    CATALOGS,
    CHANNELS,
    CONVERSATIONS,
    DB,
    ENGINE,
    HTTP,
    LEADERSHIP,
    NEIGHBOURHOODS,
    NOTIFIER,
    OUTBOXES,
    SETTINGS,
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
from storage.db import create_db_engine, ping
from storage.errors import DatabaseUnavailable
from storage.tracker import erase_conversation

log = logging.getLogger(__name__)

# The messaging channels, each in its own folder under bot/channels/ (see bot.channels.base):
# adding a channel is its folder and one line here.
CHANNEL_TYPES: tuple[type[Channel], ...] = (
    WebChatChannel,
    SocketIOChannel,
    TelegramChannel,
    WhatsAppChannel,
)

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
    """The bot service, its parts built in the order they depend on each other (see ``lifecycle``)."""
    settings.require("secret_key", "rasa_token")
    app = web.Application(
        middlewares=[request_ids, database_errors, body_limits],
        client_max_size=settings.max_photo_bytes + 256 * 1024,
    )
    app[SETTINGS] = settings
    app[METRICS] = telemetry = Metrics()
    app.on_response_prepare.append(security_headers)
    app.on_response_prepare.append(echo_request_id)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        catalogs = await asyncio.to_thread(Catalogs.load, settings.locales_dir, settings.default_locale)
        await asyncio.to_thread(warm_up)
        neighbourhoods = await asyncio.to_thread(Neighbourhoods.from_geojson, settings.neighbourhoods_geojson)
        db = create_db_engine(settings.database_url)
        tracker_db = create_db_engine(settings.tracker_store_url)
        async with aiohttp.ClientSession() as http:
            engine = EngineClient(
                http, settings.engine_url, settings.action_server_url, settings.rasa_token,
                settings.engine_timeout_seconds,
            )

            async def erase(sender_id: str) -> None:
                await asyncio.to_thread(erase_conversation, engine=tracker_db, sender_id=sender_id)

            limiter = create_rate_limiter(settings.redis_url, settings.max_messages_per_minute,
                                          settings.rate_limit_window_seconds)
            # the running channels by name, filled below: what the inbox and the notifier deliver through
            channels: dict[str, Channel] = {}
            outboxes = Outboxes()
            notifier = Notifier(db, catalogs, channels, wake=outboxes.wake)
            # messages written while the engine is down are kept and replayed (bot.replay)
            inbox = Inbox(db, lease_seconds=2 * settings.engine_timeout_seconds + 10, channels=channels)
            conversations = Conversations(engine, catalogs, erase, LiveChat(db), rate_limiter=limiter, inbox=inbox,
                                          metrics=telemetry)
            parts = ChannelParts(settings=settings, catalogs=catalogs, db=db, tracker_db=tracker_db,
                                 conversations=conversations, notifier=notifier, http=http, app=app)
            running: dict[str, Channel] = {}  # every adapter by its name: their routes find them
            serving: dict[str, list[Channel]] = {}
            for kind in CHANNEL_TYPES:
                channel = kind.create(parts)
                if channel is not None:
                    await channel.connect()
                    running[channel.name] = channel
                    serving.setdefault(channel.serves, []).append(channel)
            # one channel per kind of sender id (the web page and the Rasa widget both serve web:…)
            for serves, adapters in serving.items():
                channels[serves] = adapters[0] if len(adapters) == 1 else SharedChannel(serves, adapters)
            # the outbox: on every instance for channels whose citizens are connected here (the web
            # chat's sockets), else only on the scheduler leader (one sender keeps the bot under
            # the platform's limits)
            everywhere: list[OutboxWorker] = []
            leader_only: list[OutboxWorker] = []
            for name, channel in channels.items():
                here = channel.sends_where_connected
                pace = channel.outbox_pace()
                worker = OutboxWorker(db=db, settings=settings, channel=name, pusher=channel, metrics=telemetry,
                                      recipients=channel.connected if here else None, pace=not here,
                                      rate_per_second=pace.get("rate_per_second"),
                                      per_chat_interval=pace.get("per_chat_interval"))
                outboxes.workers[name] = worker
                channel.use_outbox(worker)
                (everywhere if here else leader_only).append(worker)

            async def send_from_leader() -> None:
                for worker in leader_only:
                    worker.start()

            async def stop_sending() -> None:
                for worker in leader_only:
                    await worker.stop()

            desk = next((channel.desk for channel in channels.values() if channel.desk is not None), None)
            # the scheduler runs on the one instance holding the leader lease (bot.scheduler)
            leadership = Leadership(settings, db, JobContext(settings=settings, db=db, tracker_db=tracker_db,
                                                             catalogs=catalogs, desk=desk),
                                    on_elected=[send_from_leader], on_deposed=[stop_sending])
            telemetry.watch_database(db, lambda: leadership.is_leader)
            replayer = Replayer(inbox, engine.engine_ready, conversations.replay, settings.replay_probe_seconds)
            app[CATALOGS], app[NEIGHBOURHOODS], app[HTTP], app[DB] = catalogs, neighbourhoods, http, db
            app[ENGINE], app[CONVERSATIONS], app[CHANNELS] = engine, conversations, running
            app[OUTBOXES], app[NOTIFIER], app[LEADERSHIP] = outboxes, notifier, leadership
            replayer.start()
            for worker in everywhere:
                worker.start()
            leadership.start()
            try:
                yield
            finally:
                await replayer.stop()
                await leadership.stop()
                await outboxes.stop()
                for channel in reversed(running.values()):
                    await channel.disconnect()
                if limiter is not None:
                    await limiter.close()
        db.dispose()
        tracker_db.dispose()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    # routes must exist before start-up; handlers reach the running channels through the app
    for kind in CHANNEL_TYPES:
        kind.add_routes(app, settings)
    embed.add_routes(app)
    cases_api.add_routes(app)
    alerts_api.add_routes(app)
    dashboard.setup(app)
    open311.add_routes(app)
    return app
