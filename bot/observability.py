"""What operators see of a running Barri: logs (text, or one JSON object per line for log
collectors) and Prometheus metrics.

Logs carry the request id and the channel of what is being handled, from two ContextVars:
the ``request_ids`` middleware sets the request id of every HTTP request (a sane
``X-Request-ID`` from the proxy is kept, else a new one, echoed in the response), and
``Conversations.handle`` sets a fresh one and the channel for each citizen message (a web-chat
socket is one long request carrying many messages). Log lines never carry personal data; the
JSON formatter adds nothing but these fields.

Metrics (all named ``barri_...``) live in one ``Metrics`` object per bot service, in a
registry of its own. Counters are counted where things happen in this process; what other
processes do (cases are created by the action server) and what the queue holds is read from
the database at each scrape (``DatabaseCollector``), so every instance reports the same truth.
``GET /metrics`` needs an admin's API token; ``barri serve`` also serves it without a token on
a loopback port of its own (``METRICS_PORT``) for a local Prometheus agent.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from common.logs import REQUEST_ID
from storage import cases as case_store
from storage import outbox as outbox_store
from storage.db import session_scope
from storage.errors import DatabaseUnavailable
from storage.models import utcnow

log = logging.getLogger(__name__)

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def channel_of(sender_id: str) -> str:
    """The channel of a namespaced sender id ("telegram:42" -> "telegram")."""
    prefix, separator, _ = sender_id.partition(":")
    return prefix if separator and prefix.isalnum() and len(prefix) <= 16 else "unknown"


REQUEST_ID_KEY = web.RequestKey("request_id", str)


@web.middleware
async def request_ids(request: web.Request, handler: Callable[[web.Request], object]) -> web.StreamResponse:
    """Every request's log lines carry its id (the proxy's ``X-Request-ID`` when it is sane)."""
    given = request.headers.get("X-Request-ID", "")
    request_id = given if _SANE_REQUEST_ID.fullmatch(given) else new_request_id()
    request[REQUEST_ID_KEY] = request_id
    # not reset afterwards: aiohttp's access-log line, written after the handler, carries it too
    # (the next request on the connection sets its own)
    REQUEST_ID.set(request_id)
    return await handler(request)  # type: ignore[misc, no-any-return]


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """On every response as it is sent (error pages and sockets too)."""
    if REQUEST_ID_KEY in request:
        response.headers.setdefault("X-Request-ID", request[REQUEST_ID_KEY])


# --------------------------------------------------------------------------- metrics

CONVERSATION_GAP_SECONDS = 3600  # a citizen silent this long starts a new conversation (Rasa's session)
MAX_TRACKED_SENDERS = 100_000


class Metrics:
    """The counters and histograms of one bot service (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        disable_created_metrics()  # no "_created" series beside every counter: noise for Prometheus
        self.registry = CollectorRegistry()
        registry = self.registry
        self.conversations = Counter("barri_conversations", "Conversations started: a citizen's first message, or "
                                     "the first after an hour of silence", ["channel"], registry=registry)
        self.turns = Counter("barri_turns", "Citizen messages handled", ["channel"], registry=registry)
        self.engine_latency = Histogram("barri_engine_turn_seconds", "Time the engine took to answer one message",
                                        ["channel"], registry=registry,
                                        buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
        self.engine_errors = Counter("barri_engine_errors", "Messages the engine did not answer (down, timeout)",
                                     ["channel"], registry=registry)
        self.kept = Counter("barri_messages_kept", "Messages kept for replay while the engine was down",
                            ["channel"], registry=registry)
        self.sends = Counter("barri_outbox_sends", "Messages Barri started, by outcome: sent, 429 (flood wait), "
                             "403 (blocked the bot), retry (5xx, network), failed", ["channel", "result"],
                             registry=registry)
        self.rate_limited = Counter("barri_rate_limit_refusals", "Citizen messages not read: over the limit",
                                    ["channel"], registry=registry)
        self.database_errors = Counter("barri_database_errors", "Requests and scrapes that found the database "
                                       "unavailable", registry=registry)
        self._clock = clock
        self._last_seen: OrderedDict[str, float] = OrderedDict()

    def message(self, sender_id: str, channel: str) -> None:
        """A citizen message arrived: a turn, and maybe a new conversation."""
        now = self._clock()
        last = self._last_seen.pop(sender_id, None)
        self._last_seen[sender_id] = now
        if len(self._last_seen) > MAX_TRACKED_SENDERS:
            self._last_seen.popitem(last=False)
        if last is None or now - last > CONVERSATION_GAP_SECONDS:
            self.conversations.labels(channel).inc()
        self.turns.labels(channel).inc()

    def watch_database(self, db: Engine, is_leader: Callable[[], bool]) -> None:
        self.registry.register(DatabaseCollector(db, is_leader, self.database_errors))

    def render(self) -> bytes:
        """The exposition text (blocking: the database is read; call it in a thread)."""
        return generate_latest(self.registry)


class DatabaseCollector(Collector):
    """What the database says at scrape time: the outbox by status and channel, the age of the
    oldest due row, cases created by category and channel; and whether this instance leads."""

    def __init__(self, db: Engine, is_leader: Callable[[], bool], errors: Counter) -> None:
        self.db = db
        self.is_leader = is_leader
        self.errors = errors

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected at scrape time only

    def collect(self) -> Iterator[Metric]:
        leader = GaugeMetricFamily("barri_scheduler_leader", "1 when this instance runs the scheduler")
        leader.add_metric([], 1.0 if self.is_leader() else 0.0)
        yield leader
        try:
            with session_scope(self.db) as session:
                rows = outbox_store.counts_by_status_and_channel(session=session)
                oldest = outbox_store.oldest_due(session=session, now=utcnow())
                created = case_store.counts_by_category_and_channel(session=session)
        except DatabaseUnavailable:
            self.errors.inc()
            return
        outbox = GaugeMetricFamily("barri_outbox_rows", "Outbox rows by status and channel",
                                   labels=["status", "channel"])
        for (status, channel), count in sorted(rows.items()):
            outbox.add_metric([status, channel], count)
        yield outbox
        age = GaugeMetricFamily("barri_outbox_oldest_due_seconds", "Age of the oldest row waiting to be sent "
                                "(0 when none)", labels=["channel"])
        for channel, moment in sorted(oldest.items()):
            age.add_metric([channel], max(0.0, (utcnow() - moment).total_seconds()))
        yield age
        cases = CounterMetricFamily("barri_cases_created", "Cases filed, by category and channel",
                                    labels=["category", "channel"])
        for (category, channel), count in sorted(created.items()):
            cases.add_metric([category, channel], count)
        yield cases


METRICS = web.AppKey("metrics", Metrics)


async def metrics_response(app: web.Application) -> web.Response:
    body = await asyncio.to_thread(app[METRICS].render)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})


def metrics_listener(app: web.Application, host: str, port: int) -> Callable[[web.Application],
                                                                            AsyncIterator[None]]:
    """A cleanup context serving ``app``'s metrics without a token on a loopback port (the
    address is checked: only 127.0.0.1 and ::1 are accepted)."""
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError("the metrics port is served on loopback only")

    async def listen(_: web.Application) -> AsyncIterator[None]:
        side = web.Application()

        async def scrape(request: web.Request) -> web.Response:
            return await metrics_response(app)

        side.router.add_get("/metrics", scrape)
        runner = web.AppRunner(side, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as error:  # the service runs without it rather than not at all
            log.error("metrics: could not listen on %s:%d (%s); GET /metrics with an admin token still works",
                      host, port, error.strerror)
        else:
            log.info("metrics: http://%s:%d/metrics", host, port)
        try:
            yield
        finally:
            await runner.cleanup()

    return listen
