"""Live queue: server-sent events at /desk/events; and a case page's conversation with its
reporter at /desk/cases/{ref}/chat/events (see ``chat_events``).

Cases are created by the action server, another process, so nothing in this process hears
about them: one ``CaseFeed`` per bot service polls the database every ``POLL_SECONDS`` for
cases whose ``updated_at`` is newer than the newest it has seen, and hands them to every
open event stream. Each poll looks ``OVERLAP`` back (a transaction may commit a little after
its timestamp) and skips what it has already sent. A stream first catches up from the
moment its page was rendered (``?since=`` or, after a reconnection, ``Last-Event-ID``).
The page's script inserts, updates or removes the row of each case it receives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timedelta

from aiohttp import web

from bot.dashboard.auth import CASE_READERS, current_user, desk_route
from bot.dashboard.base import desk_text
from bot.dashboard.labels import case_row, chat_line
from bot.keys import DB
from storage.dashboard import changed_since, latest_change
from storage.db import run_storage
from storage.desk import chat_of_case
from storage.errors import DatabaseUnavailable
from storage.models import Case, utcnow

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
CHAT_POLL_SECONDS = 1.5  # a dispatcher in a conversation waits for the reply
OVERLAP = timedelta(seconds=10)
MAX_CATCH_UP = timedelta(hours=1)  # a page older than this reloads instead
KEEPALIVE_SECONDS = 15.0
SESSION_CHECK_SECONDS = 30.0
QUEUE_SIZE = 64


class CaseFeed:
    """One database poller per process, fanned out to the open event streams."""

    def __init__(self, app: web.Application, interval: float = POLL_SECONDS) -> None:
        self._app = app
        self.interval = interval
        self._subscribers: set[asyncio.Queue[list[Case] | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._cursor: datetime | None = None
        self._sent: dict[str, datetime] = {}
        self._closed = False

    def subscribe(self) -> asyncio.Queue[list[Case] | None]:
        queue: asyncio.Queue[list[Case] | None] = asyncio.Queue(maxsize=QUEUE_SIZE)
        if self._closed:
            queue.put_nowait(None)
            return queue
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            # a fresh start: what changed while nobody watched is each page's own catch-up
            self._cursor = None
            self._sent = {}
            self._task = asyncio.create_task(self._run(), name="desk-case-feed")
        return queue

    def unsubscribe(self, queue: asyncio.Queue[list[Case] | None]) -> None:
        self._subscribers.discard(queue)

    async def close(self) -> None:
        """At shutdown: end every stream, stop polling."""
        self._closed = True
        for queue in list(self._subscribers):
            self._end(queue)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _end(self, queue: asyncio.Queue[list[Case] | None]) -> None:
        self._subscribers.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)

    async def _run(self) -> None:
        while self._subscribers:
            try:
                await self.poll()
            except DatabaseUnavailable as problem:  # try again at the next round
                log.warning("live queue: %s", problem)
            await asyncio.sleep(self.interval)

    async def poll(self) -> list[Case]:
        db = self._app[DB]

        if self._cursor is None:
            latest = await run_storage(db, latest_change)
            self._cursor = latest or datetime.min.replace(tzinfo=utcnow().tzinfo) + OVERLAP
            return []
        cases = await run_storage(db, changed_since, since=self._cursor - OVERLAP)
        fresh = [case for case in cases if self._sent.get(case.ref) != case.updated_at]
        for case in fresh:
            self._sent[case.ref] = case.updated_at
        if cases:
            self._cursor = max(self._cursor, cases[-1].updated_at)
        horizon = self._cursor - OVERLAP
        self._sent = {ref: at for ref, at in self._sent.items() if at >= horizon}
        if fresh:
            for queue in list(self._subscribers):
                try:
                    queue.put_nowait(fresh)
                except asyncio.QueueFull:  # a stream that does not keep up is closed; its page reconnects
                    self._end(queue)
        return fresh


FEED = web.AppKey("desk_case_feed", CaseFeed)


def _parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _event(kind: str, data: object, event_id: str | None = None) -> bytes:
    lines = [f"event: {kind}"]
    if event_id:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


class SessionWatch:
    """A stream outlives its page's sign-in: every ``SESSION_CHECK_SECONDS`` it checks that the
    staff session still stands and that the user's role still may read the stream (an admin
    may have changed it), and tells the page when not."""

    def __init__(self, request: web.Request, roles: tuple[str, ...] = CASE_READERS) -> None:
        self._request = request
        self._roles = roles
        self._checked = time.monotonic()

    async def ended(self, response: web.StreamResponse) -> bool:
        if time.monotonic() - self._checked <= SESSION_CHECK_SECONDS:
            return False
        self._checked = time.monotonic()
        signed_in = await current_user(self._request, touch=False)
        if signed_in is not None and signed_in.role in self._roles:
            return False
        await response.write(_event("signed_out" if signed_in is None else "forbidden", {}))
        return True


@desk_route(*CASE_READERS, touch=False)
async def events(request: web.Request) -> web.StreamResponse:
    """The queue's event stream: one ``case`` event per new or changed case."""
    since = _parse_since(request.headers.get("Last-Event-ID")) or _parse_since(request.query.get("since"))
    feed = request.app[FEED]
    t = desk_text(request)  # the reader's language, for the rows' labels
    response = _sse_response()
    await response.prepare(request)
    queue = feed.subscribe()

    async def send(cases: list[Case]) -> None:
        now = utcnow()
        for case in cases:
            await response.write(_event("case", case_row(case, t, now), case.updated_at.isoformat()))

    try:
        await response.write(b"retry: 3000\n\n" + _event("ready", {"at": utcnow().isoformat()}))
        if since is not None and since < utcnow() - MAX_CATCH_UP:
            await response.write(_event("stale", {}))
            return response
        if since is not None:
            await send(await run_storage(request.app[DB], changed_since, since=since - OVERLAP))
        session = SessionWatch(request)
        while True:
            try:
                batch = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_SECONDS)
            except TimeoutError:
                batch = []
                await response.write(b": keep-alive\n\n")
            if batch is None:  # shutting down, or too slow: the browser reconnects
                break
            if await session.ended(response):  # before sending: the role may have changed
                break
            await send(batch)
    except ConnectionResetError:
        pass  # the page was closed
    finally:
        feed.unsubscribe(queue)
    return response


def _sse_response() -> web.StreamResponse:
    return web.StreamResponse(headers={
        "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff",
    })


@desk_route(*CASE_READERS, touch=False)
async def chat_events(request: web.Request) -> web.StreamResponse:
    """A case page's conversation with the reporter, live: one ``chat`` event per message
    written after ``?after=`` (the moment the page was read). The citizen's replies arrive
    through another process (any bot-service instance), so each open page polls its case's
    messages; a look back of ``OVERLAP`` catches late commits, and the page skips the ids it
    already shows."""
    after = _parse_since(request.query.get("after"))
    if after is None:
        raise web.HTTPBadRequest(text="after= must be an ISO time with its zone")
    ref = request.match_info["ref"]
    db, t = request.app[DB], desk_text(request)
    sent: set[str] = set()

    async def read() -> list[dict[str, str]] | None:
        events = await run_storage(db, chat_of_case, ref=ref, after=after - OVERLAP)
        return None if events is None else [chat_line(event, t) for event in events]

    first = await read()
    if first is None:
        raise web.HTTPNotFound(text="no such case")
    response = _sse_response()
    await response.prepare(request)

    async def send(lines: list[dict[str, str]]) -> None:
        for line in lines:
            if line["id"] not in sent:
                sent.add(line["id"])
                await response.write(_event("chat", line))

    try:
        await response.write(b"retry: 3000\n\n" + _event("ready", {}))
        await send(first)
        quiet = time.monotonic()
        session = SessionWatch(request)
        while True:
            await asyncio.sleep(CHAT_POLL_SECONDS)
            try:
                lines = await read()
            except DatabaseUnavailable as problem:
                log.warning("live conversation: %s", problem)
                lines = []
            if await session.ended(response):  # before sending: the role may have changed
                break
            await send(lines or [])
            if time.monotonic() - quiet > KEEPALIVE_SECONDS:
                quiet = time.monotonic()
                await response.write(b": keep-alive\n\n")
    except ConnectionResetError:
        pass  # the page was closed
    return response
