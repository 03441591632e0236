"""The action server: Rasa's action protocol (`POST /webhook`) and its NLG protocol
(`POST /nlg`) on one small aiohttp app, with the actions' services injected at start-up.

We serve rasa-sdk's ActionExecutor ourselves instead of its Sanic server so that the whole
project runs on one web framework and the actions receive their services (database,
catalogs, neighbourhoods, clock) instead of building them at import time.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionMissingDomainException, ActionNotFoundException
from sqlalchemy.exc import SQLAlchemyError

from common.geo import Neighbourhoods
from common.i18n import Catalogs
from common.language import warm_up
from common.places import load_gazetteer
from common.responses import RESPONSES, render
from common.settings import Settings
from dialogues.actions.alerts import ActionListSubscriptions, ActionSubscribeAlerts, ActionUnsubscribeAlerts
from dialogues.actions.citizen import (
    ActionChangeLanguage,
    ActionCheckStatus,
    ActionEmergency,
    ActionForgetMe,
    ActionRequestHandoff,
)
from dialogues.actions.context import Services, conversation_locale
from dialogues.actions.followup import follow_up_actions
from dialogues.actions.report import (
    ActionAskPhotosDone,
    ActionAskReportConfirmed,
    ActionCancelReport,
    ActionSaveCase,
    ActionStartReport,
    ValidateReportForm,
    place_question,
)
from storage.db import create_db_engine
from storage.errors import StorageError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SERVICES = web.AppKey("services", Services)
EXECUTOR = web.AppKey("executor", ActionExecutor)
ENGINE_AUTHORIZATION = web.AppKey("engine_authorization", bytes)

# rasa-sdk 3.21 warns on every call from a Rasa 3.6 engine because the minor versions differ.
# The pair is checked (forms, validation actions, slot events, custom payloads), so we accept
# 3.6 engines on purpose and warn only about other versions.
SUPPORTED_ENGINE_VERSIONS = ("3.6.",)


def build_services(settings: Settings) -> Services:
    neighbourhoods = Neighbourhoods.from_geojson(settings.neighbourhoods_geojson)
    return Services(
        settings=settings,
        catalogs=Catalogs.load(settings.locales_dir, settings.default_locale),
        db=create_db_engine(settings.database_url),
        neighbourhoods=neighbourhoods,
        gazetteer=load_gazetteer(neighbourhoods, settings.gazetteer_dir),
    )


def build_executor(services: Services) -> ActionExecutor:
    executor = ActionExecutor()
    for action in (
        ActionStartReport(services),
        ValidateReportForm(services),
        ActionAskPhotosDone(services),
        ActionAskReportConfirmed(services),
        ActionSaveCase(services),
        ActionCancelReport(services),
        ActionEmergency(services),
        ActionCheckStatus(services),
        ActionChangeLanguage(services),
        ActionRequestHandoff(services),
        ActionForgetMe(services),
        ActionSubscribeAlerts(services),
        ActionUnsubscribeAlerts(services),
        ActionListSubscriptions(services),
        *follow_up_actions(services),
    ):
        executor.register_action(action)
    return executor


def engine_authorization(token: str) -> str:
    """The header value the engine sends (its endpoints carry it) and this server expects."""
    return f"Bearer {token}"


@web.middleware
async def engine_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only the engine may run actions or render responses: a stranger who could post a
    tracker to /webhook could run ``action_forget_me`` for anyone, or read cases by reference.
    The shared secret (RASA_TOKEN) is compared in constant time; /health stays open."""
    if request.path != "/health":
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, request.app[ENGINE_AUTHORIZATION]):
            return web.json_response({"error": "this server answers only the Barri engine"}, status=401)
    return await handler(request)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def list_actions(request: web.Request) -> web.Response:
    return web.json_response([item.model_dump() for item in request.app[EXECUTOR].list_actions()])


async def webhook(request: web.Request) -> web.Response:
    try:
        action_call = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return web.json_response({"error": "Invalid body request"}, status=400)
    version = str(action_call.get("version") or "")
    if not version.startswith(SUPPORTED_ENGINE_VERSIONS):
        log.warning("engine version %s has not been checked with this action server", version)
    executor = request.app[EXECUTOR]
    try:
        result = await executor.run(action_call)
    except ActionExecutionRejection as error:
        return web.json_response({"error": error.message, "action_name": error.action_name}, status=400)
    except ActionNotFoundException as error:
        log.error("unknown action %s", error.action_name)
        return web.json_response({"error": error.message, "action_name": error.action_name}, status=404)
    except ActionMissingDomainException as error:
        return web.json_response({"error": error.message, "action_name": error.action_name}, status=449)
    except (StorageError, SQLAlchemyError) as error:
        # an action that did not handle a database outage itself: the citizen is still told
        # clearly (instead of a 500 the engine turns into silence) and no event is applied
        log.warning("action %s: database unavailable: %s", action_call.get("next_action"), type(error).__name__)
        services = request.app[SERVICES]
        tracker = action_call.get("tracker") or {}
        locale = conversation_locale(tracker.get("slots") or {}, tracker.get("events") or [], services.catalogs)
        return web.json_response(
            {"events": [], "responses": [render("utter_technical_problem", services.catalogs, locale)]}
        )
    return web.json_response(result.model_dump() if result else None)


async def nlg(request: web.Request) -> web.Response:
    """Render an `utter_*` response of the domain in the conversation's language."""
    services = request.app[SERVICES]
    try:
        body = await request.json()
        name = str(body["response"])
        tracker = body.get("tracker") or {}
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        return web.json_response({"error": "expected Rasa's NLG request"}, status=400)
    if name not in RESPONSES:
        log.error("no template for response %s", name)
        return web.json_response({"error": f"unknown response {name}"}, status=404)
    locale = conversation_locale(tracker.get("slots") or {}, tracker.get("events") or [], services.catalogs)
    if name == "utter_ask_place":
        # after a street that crosses several neighbourhoods, the question is which one
        question = place_question(services, tracker, locale)
        if question is not None:
            return web.json_response(question)
    settings = services.settings
    arguments = {
        "city": settings.city_name,
        "max_photos": settings.max_photos_per_report,
        **(body.get("arguments") or {}),
    }
    return web.json_response(render(name, services.catalogs, locale, **arguments))


def create_actions_app(settings: Settings, services: Services | None = None) -> web.Application:
    settings.require("rasa_token")
    app = web.Application(middlewares=[engine_only], client_max_size=4 * 1024 * 1024)
    app[ENGINE_AUTHORIZATION] = engine_authorization(settings.rasa_token).encode()

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        if services is not None:
            built = services
        else:
            built = await asyncio.to_thread(build_services, settings)
        await asyncio.to_thread(warm_up)
        app[SERVICES] = built
        app[EXECUTOR] = build_executor(built)
        log.info("action server ready (%d actions)", len(app[EXECUTOR].actions))
        yield
        if services is None:
            built.db.dispose()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/health", health)
    app.router.add_get("/actions", list_actions)
    app.router.add_post("/webhook", webhook)
    app.router.add_post("/nlg", nlg)
    return app
