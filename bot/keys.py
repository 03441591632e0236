"""Typed keys of the bot service's shared state (set once, at start-up, by bot.app)."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from sqlalchemy import Engine

from bot.channels.telegram.channel import TelegramChannel
from bot.channels.webchat.channel import WebChatChannel
from bot.engine import Conversations, EngineClient
from bot.notify import Notifier
from bot.outbox import Outboxes
from bot.scheduler import Leadership
from common.i18n import Catalogs
from common.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
HTTP = web.AppKey("http", aiohttp.ClientSession)
DB = web.AppKey("db", Engine)
CATALOGS = web.AppKey("catalogs", Catalogs)
ENGINE = web.AppKey("engine", EngineClient)
CONVERSATIONS = web.AppKey("conversations", Conversations)
WEBCHAT = web.AppKey("webchat", WebChatChannel)
TELEGRAM = web.AppKey("telegram", TelegramChannel)
NOTIFIER = web.AppKey("notifier", Notifier)
LEADERSHIP = web.AppKey("leadership", Leadership)
OUTBOXES = web.AppKey("outboxes", Outboxes)
