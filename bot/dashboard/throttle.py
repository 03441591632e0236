"""The desk's sign-in throttle: a growing delay per name and per client address.

Every attempt is counted *before* the password is checked, in one step that also decides
whether the attempt may go ahead, so a burst of simultaneous guesses cannot all be checked
(only the free attempts are; the rest wait). A name gets ``NAME_FREE_ATTEMPTS`` attempts,
then must wait ``base_delay`` before the next, then twice that, and so on up to
``max_delay``; an address gets ``ADDRESS_FREE_ATTEMPTS`` the same way, so spraying names from
one place slows that place down, never the whole desk. A correct password clears the name
and gives the address its attempt back (a busy office behind one address is never slowed).
After ``forget_after`` without attempts a counter is dropped.

Keys are SHA-256 digests: neither typed names nor addresses are kept as they were typed. In
memory per process, or in Redis when ``REDIS_URL`` is set (shared by every instance; if Redis
does not answer, each instance falls back to its own memory).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from storage.models import STAFF_NAME_MAX

log = logging.getLogger(__name__)


class SignInThrottle(Protocol):
    NAME_FREE_ATTEMPTS: int
    ADDRESS_FREE_ATTEMPTS: int

    async def attempt(self, name: str, address: str) -> int | None:
        """Count an attempt; None when it may go ahead, else the seconds to wait (not counted)."""

    async def succeeded(self, name: str, address: str) -> None: ...

    async def close(self) -> None: ...


class _Rules:
    NAME_FREE_ATTEMPTS = 5
    ADDRESS_FREE_ATTEMPTS = 20

    def __init__(self, base_delay: float = 30.0, max_delay: float = 15 * 60.0, forget_after: float = 15 * 60.0):
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after

    def delay(self, count: int, free: int) -> float:
        """The wait after the ``count``-th attempt: none while free, then doubling, capped."""
        if count < free:
            return 0.0
        return min(self.max_delay, self.base_delay * 2.0 ** min(count - free, 30))

    @staticmethod
    def keys(name: str, address: str) -> tuple[str, str]:
        folded = name.strip().lower()[:STAFF_NAME_MAX]
        return ("name:" + hashlib.sha256(folded.encode()).hexdigest()[:32],
                "addr:" + hashlib.sha256(address.encode()).hexdigest()[:32])


@dataclass
class _Counter:
    count: int = 0
    until: float = 0.0  # no attempt before this moment
    last: float = 0.0


class MemorySignInThrottle(_Rules):
    """One process's counters (bounded: the oldest are dropped under a spray of names)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000,
                 base_delay: float = 30.0, max_delay: float = 15 * 60.0, forget_after: float = 15 * 60.0) -> None:
        super().__init__(base_delay, max_delay, forget_after)
        self._clock = clock
        self._max_keys = max_keys
        self._counters: OrderedDict[str, _Counter] = OrderedDict()

    def _counter(self, key: str, now: float) -> _Counter:
        counter = self._counters.get(key)
        if counter is None or now >= max(counter.until, counter.last) + self.forget_after:
            counter = _Counter()
            self._counters[key] = counter
        self._counters.move_to_end(key)
        return counter

    def attempt_now(self, name: str, address: str) -> int | None:
        now = self._clock()
        counters = [self._counter(key, now) for key in self.keys(name, address)]
        wait = max(counter.until - now for counter in counters)
        if wait > 0:
            return math.ceil(wait)
        for counter, free in zip(counters, (self.NAME_FREE_ATTEMPTS, self.ADDRESS_FREE_ATTEMPTS), strict=True):
            counter.count += 1
            counter.last = now
            counter.until = now + self.delay(counter.count, free)
        while len(self._counters) > self._max_keys:
            self._counters.popitem(last=False)
        return None

    def succeeded_now(self, name: str, address: str) -> None:
        name_key, address_key = self.keys(name, address)
        self._counters.pop(name_key, None)
        counter = self._counters.get(address_key)
        if counter is not None:
            counter.count = max(0, counter.count - 1)
            if counter.count < self.ADDRESS_FREE_ATTEMPTS:
                counter.until = 0.0

    async def attempt(self, name: str, address: str) -> int | None:
        return self.attempt_now(name, address)

    async def succeeded(self, name: str, address: str) -> None:
        self.succeeded_now(name, address)

    async def close(self) -> None:
        return None


# KEYS: the name's and the address's hash; ARGV: their free attempts, base and max delay and
# forget-after in ms. Returns 0 (counted, go ahead) or the ms to wait. The server's clock, so
# that instances with skewed clocks share one view.
_ATTEMPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for i, key in ipairs(KEYS) do
  local blocked = tonumber(redis.call('HGET', key, 'until') or '0')
  if blocked - now > wait then wait = blocked - now end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  local count = redis.call('HINCRBY', key, 'count', 1)
  local free = tonumber(ARGV[i])
  local delay = 0
  if count >= free then
    delay = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ math.min(count - free, 30))
  end
  redis.call('HSET', key, 'until', now + delay)
  redis.call('PEXPIRE', key, math.floor(delay + tonumber(ARGV[5])))
end
return 0
"""

# KEYS: the name's and the address's hash; ARGV: the address's free attempts.
_SUCCEEDED = """
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  local count = redis.call('HINCRBY', KEYS[2], 'count', -1)
  if count <= 0 then
    redis.call('DEL', KEYS[2])
  elseif count < tonumber(ARGV[1]) then
    redis.call('HSET', KEYS[2], 'until', 0)
  end
end
return 0
"""


class RedisSignInThrottle(_Rules):
    """Counters shared by every bot-service instance using the same Redis."""

    def __init__(self, client: aioredis.Redis, prefix: str = "barri:signin:") -> None:
        super().__init__()
        self._client = client
        self._prefix = prefix
        self._attempt = client.register_script(_ATTEMPT)
        self._succeeded = client.register_script(_SUCCEEDED)
        self._fallback = MemorySignInThrottle()

    @classmethod
    def from_url(cls, url: str) -> RedisSignInThrottle:
        return cls(aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2))

    def _redis_keys(self, name: str, address: str) -> list[str]:
        return [self._prefix + key for key in self.keys(name, address)]

    async def attempt(self, name: str, address: str) -> int | None:
        args = [self.NAME_FREE_ATTEMPTS, self.ADDRESS_FREE_ATTEMPTS, int(self.base_delay * 1000),
                int(self.max_delay * 1000), int(self.forget_after * 1000)]
        try:
            wait_ms = int(await self._attempt(keys=self._redis_keys(name, address), args=args))
        except (RedisError, OSError) as error:
            log.warning("sign-in throttle store unavailable, counting in memory: %s", type(error).__name__)
            return self._fallback.attempt_now(name, address)
        return math.ceil(wait_ms / 1000) if wait_ms > 0 else None

    async def succeeded(self, name: str, address: str) -> None:
        self._fallback.succeeded_now(name, address)
        try:
            await self._succeeded(keys=self._redis_keys(name, address), args=[self.ADDRESS_FREE_ATTEMPTS])
        except (RedisError, OSError) as error:
            log.warning("sign-in throttle store unavailable: %s", type(error).__name__)

    async def close(self) -> None:
        await self._client.aclose()


def create_sign_in_throttle(redis_url: str) -> SignInThrottle:
    return RedisSignInThrottle.from_url(redis_url) if redis_url else MemorySignInThrottle()
