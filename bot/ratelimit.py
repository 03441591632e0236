"""Per-citizen limit on incoming messages, so that one flooder cannot slow down everyone else.

A sliding window: a message is let through while fewer than ``limit`` messages of the same
sender were let through in the last ``window`` seconds. Refused messages do not count (the
engine sees at most ``limit`` per window from anyone, and a citizen who stops is served
again as soon as the window has moved on). The first refusal of a flood is reported as
``NOTIFY`` so the citizen is told once; the rest are ``DROP``.

In memory per process, or in Redis when several bot-service instances share the traffic.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from common.settings import Settings

log = logging.getLogger(__name__)


class Verdict(enum.Enum):
    ALLOW = "allow"
    NOTIFY = "notify"  # refused; the first refusal since the sender was last let through
    DROP = "drop"  # refused; the sender was already told


class RateLimiter(Protocol):
    async def check(self, sender_id: str) -> Verdict: ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """One process's view. Keeps a few timestamps per active sender; idle senders are swept."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._told: set[str] = set()
        self._next_sweep = 0.0

    async def check(self, sender_id: str) -> Verdict:
        return self.check_now(sender_id)

    def check_now(self, sender_id: str) -> Verdict:
        now = self._clock()
        self._sweep(now)
        times = self._seen.setdefault(sender_id, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.limit:
            times.append(now)
            self._told.discard(sender_id)
            return Verdict.ALLOW
        if sender_id in self._told:
            return Verdict.DROP
        self._told.add(sender_id)
        return Verdict.NOTIFY

    def _sweep(self, now: float) -> None:
        # without this, every sender ever seen would stay in memory
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.window
        for sender_id in [s for s, times in self._seen.items() if not times or times[-1] <= now - self.window]:
            del self._seen[sender_id]
            self._told.discard(sender_id)

    async def close(self) -> None:
        return None


# KEYS[1]: sorted set of let-through times (ms) of one sender; KEYS[2]: "told" flag.
# ARGV: limit, window in ms, a unique member for this message. The server's clock is used so
# that instances with skewed clocks still share one window.
_CHECK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  redis.call('DEL', KEYS[2])
  return 0
end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', window) then
  return 1
end
return 2
"""

_VERDICTS = {0: Verdict.ALLOW, 1: Verdict.NOTIFY, 2: Verdict.DROP}


class RedisRateLimiter:
    """Shared by every bot-service instance that uses the same Redis.

    If Redis does not answer, each instance falls back to its own memory limiter rather than
    refusing (or letting through unchecked) every citizen.
    """

    def __init__(self, client: aioredis.Redis, limit: int, window: float, prefix: str = "barri:ratelimit:") -> None:
        self.limit = limit
        self.window = window
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_CHECK)
        self._fallback = MemoryRateLimiter(limit, window)
        self._counter = 0

    @classmethod
    def from_url(cls, url: str, limit: int, window: float, prefix: str = "barri:ratelimit:") -> RedisRateLimiter:
        client = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        return cls(client, limit, window, prefix)

    async def check(self, sender_id: str) -> Verdict:
        self._counter += 1
        member = f"{time.time_ns()}:{id(self)}:{self._counter}"
        keys = [f"{self._prefix}{sender_id}", f"{self._prefix}{sender_id}:told"]
        try:
            code = await self._script(keys=keys, args=[self.limit, max(1, int(self.window * 1000)), member])
        except (RedisError, OSError) as error:
            log.warning("rate limit store unavailable, limiting in memory: %s", type(error).__name__)
            return self._fallback.check_now(sender_id)
        return _VERDICTS[int(code)]

    async def close(self) -> None:
        await self._client.aclose()


def create_rate_limiter(redis_url: str, limit: int, window: float, scope: str = "") -> RateLimiter | None:
    """The limiter the settings ask for; None when the limit is off (``limit`` 0). ``scope``
    keeps the Redis keys of different limits apart (senders: none; "address")."""
    if limit <= 0:
        return None
    if redis_url:
        prefix = f"barri:ratelimit:{scope}:" if scope else "barri:ratelimit:"
        return RedisRateLimiter.from_url(redis_url, limit, window, prefix)
    return MemoryRateLimiter(limit, window)


@dataclass(frozen=True)
class AddressLimiters:
    """The web channels' limits per network address (the page and the Rasa widget alike, with
    the same Redis scopes, so they count together): messages, connections, new conversations."""

    address: RateLimiter | None
    hello: RateLimiter | None
    new_session: RateLimiter | None

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressLimiters:
        window = settings.rate_limit_window_seconds
        return cls(
            address=create_rate_limiter(settings.redis_url, settings.max_messages_per_minute_per_address,
                                        window, scope="address"),
            hello=create_rate_limiter(settings.redis_url, settings.max_hellos_per_minute_per_address,
                                      window, scope="hello"),
            new_session=create_rate_limiter(settings.redis_url, settings.max_new_sessions_per_minute_per_address,
                                            window, scope="session"),
        )
