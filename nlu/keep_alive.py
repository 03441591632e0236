"""The engine's calls to the action server and its NLG on kept-alive connections.

Rasa 3.6's ``EndpointConfig.request`` opens a new ``aiohttp.ClientSession`` (a new connector,
a new TCP connection, a fresh DNS lookup of ``actions`` in Docker) for every call and closes
it after the answer; a report's turn makes two to six such calls (the action, each text it
sends through ``/nlg``). Here each endpoint keeps one session per event loop, built by Rasa's
own ``EndpointConfig.session`` (same headers, authentication and timeout), and its requests
reuse the connections. The client drops an idle connection after 15 s (aiohttp's default),
before the action server's 75 s, so a kept connection is never one the server has closed.
The sessions are closed when the engine stops, after Rasa's own ``close_resources``.

``install()`` is called by ``python -m nlu.serve run`` (the engine). Runs inside the engine
(Python 3.10).
"""

from __future__ import annotations

import asyncio
import weakref
from types import TracebackType
from typing import Any


class _Kept:
    """``async with`` on a kept session: entering gives it, leaving does not close it."""

    def __init__(self, session: Any) -> None:
        self._session = session

    async def __aenter__(self) -> Any:
        return self._session

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        return None


def install() -> None:
    import rasa.core.run
    from rasa.utils.endpoints import EndpointConfig

    if getattr(EndpointConfig.session, "_barri_kept", False):
        return
    rasa_session = EndpointConfig.session
    # by id: EndpointConfig defines __eq__ and so cannot be a dictionary key; the weak
    # reference tells a live endpoint from a new one that reuses a collected one's id
    kept: dict[int, tuple[weakref.ref[Any], asyncio.AbstractEventLoop, Any]] = {}

    def session(self: Any) -> Any:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in a coroutine: Rasa's own, closed after its use
            return rasa_session(self)
        entry = kept.get(id(self))
        if entry is None or entry[0]() is not self or entry[1] is not loop or entry[2].closed:
            entry = (weakref.ref(self), loop, rasa_session(self))
            kept[id(self)] = entry
        return _Kept(entry[2])

    rasa_close_resources = rasa.core.run.close_resources

    async def close_resources(app: Any, loop: Any) -> None:
        await rasa_close_resources(app, loop)
        for key, (_endpoint, owner, kept_session) in list(kept.items()):
            if owner is asyncio.get_running_loop():
                await kept_session.close()
                kept.pop(key, None)

    session._barri_kept = True  # type: ignore[attr-defined]
    EndpointConfig.session = session
    rasa.core.run.close_resources = close_resources  # read by serve_application after this
