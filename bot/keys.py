"""Typed keys of the bot service's shared state (set once, at start-up, by bot.app).

The types are imported for the type checker only: a route module that reads the settings or
the database through these keys does not load the channels, the outbox or the scheduler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from sqlalchemy import Engine

from common.geo import Neighbourhoods
from common.i18n import Catalogs
from common.settings import Settings

if TYPE_CHECKING:
    from bot.channels.base import Channel
    from bot.engine import Conversations, EngineClient
    from bot.notify import Notifier
    from bot.outbox import Outboxes
    from bot.scheduler import Leadership

SETTINGS = web.AppKey("settings", Settings)
HTTP = web.AppKey("http", aiohttp.ClientSession)
DB = web.AppKey("db", Engine)
CATALOGS = web.AppKey("catalogs", Catalogs)
# the city's neighbourhoods (NEIGHBOURHOODS_GEOJSON): Open311, the API and the desk name places with them
NEIGHBOURHOODS = web.AppKey("neighbourhoods", Neighbourhoods)
ENGINE: web.AppKey[EngineClient] = web.AppKey("engine")
CONVERSATIONS: web.AppKey[Conversations] = web.AppKey("conversations")
# the running channels by name ("web", "telegram"...): their routes find them here
CHANNELS: web.AppKey[dict[str, Channel]] = web.AppKey("channels")
NOTIFIER: web.AppKey[Notifier] = web.AppKey("notifier")
LEADERSHIP: web.AppKey[Leadership] = web.AppKey("leadership")
OUTBOXES: web.AppKey[Outboxes] = web.AppKey("outboxes")
