"""The desk's sign-in throttle holds under a burst, behind a proxy, and across instances.

Each attempt is counted before the password is checked, so concurrent guesses cannot all slip
through; the counters are per name (a growing delay) and per citizen address read through
TRUSTED_PROXIES, so one stranger cannot lock every dispatcher out; with REDIS_URL every
instance shares them.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from redis import asyncio as aioredis

from storage import users
from storage.db import session_scope
from tests.conftest import start_staff_app

REDIS_URL = "redis://127.0.0.1:6379/15"
PASSWORD = "correct horse battery staple"
NAME_FREE_ATTEMPTS = 5  # wrong passwords per name before the delay starts


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


async def desk_app(tmp_path: Path, aiohttp_client: Any, **overrides: object) -> Any:
    staff = await start_staff_app(tmp_path, aiohttp_client, **overrides)
    with session_scope(staff.db) as session:
        for role in users.ROLES:
            users.set_password(session=session, name=f"{role}1", password=PASSWORD)
    return staff


async def login_form(client: Any, address: str | None = None) -> str:
    headers = {"X-Forwarded-For": address} if address else {}
    page = await client.get("/desk/login", headers=headers)
    token = re.search(r'name="login_token" value="([^"]+)"', await page.text())
    assert token, "the sign-in form has a token"
    return token.group(1)


async def post_login(client: Any, token: str, name: str, password: str, address: str | None = None) -> int:
    headers = {"X-Forwarded-For": address} if address else {}
    response = await client.post("/desk/login", data={"login_token": token, "name": name, "password": password,
                                                      "next": "/desk/"}, headers=headers, allow_redirects=False)
    await response.read()
    return response.status


async def sign_in(client: Any, name: str, password: str, address: str | None = None) -> int:
    """One sign-in as a browser does it: the form (each one binds a new token), then the post."""
    return await post_login(client, await login_form(client, address), name, password, address)


async def test_forty_simultaneous_wrong_passwords_are_not_all_checked(tmp_path: Path, aiohttp_client) -> None:
    staff = await desk_app(tmp_path, aiohttp_client)
    token = await login_form(staff.client)
    statuses = await asyncio.gather(*(post_login(staff.client, token, "dispatcher1", f"guess {n}")
                                      for n in range(40)))
    assert statuses.count(401) == NAME_FREE_ATTEMPTS, statuses
    assert statuses.count(429) == 40 - NAME_FREE_ATTEMPTS
    # even the right password waits now
    assert await sign_in(staff.client, "dispatcher1", PASSWORD) == 429


async def test_instances_sharing_redis_share_the_sign_in_counters(tmp_path: Path, aiohttp_client) -> None:
    redis = aioredis.Redis.from_url(REDIS_URL)
    await redis.delete(*[key async for key in redis.scan_iter(match="barri:signin:*")] or ["-"])
    await redis.aclose()
    one = await desk_app(tmp_path / "one", aiohttp_client, redis_url=REDIS_URL)
    # the second instance serves the same database (the staff users), as several instances do
    two_settings = one.settings.model_copy(update={"bot_port": one.settings.bot_port + 1})
    from bot.app import create_app

    two = await aiohttp_client(create_app(two_settings))
    tokens = [await login_form(one.client), await login_form(two)]
    clients = [one.client, two]
    statuses = await asyncio.gather(*(post_login(clients[n % 2], tokens[n % 2], "admin1", f"guess {n}")
                                      for n in range(40)))
    assert statuses.count(401) == NAME_FREE_ATTEMPTS, statuses
    assert statuses.count(429) == 40 - NAME_FREE_ATTEMPTS
    redis = aioredis.Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(match="barri:signin:*")]
    await redis.aclose()
    assert keys, "the counters live in Redis"
    assert not any(b"admin1" in key for key in keys), "typed names are never kept as they were typed"


async def test_behind_a_proxy_one_strangers_guesses_do_not_lock_out_the_desk(tmp_path: Path, aiohttp_client) -> None:
    staff = await desk_app(tmp_path, aiohttp_client, trusted_proxies=1)
    stranger = "203.0.113.66"
    for n in range(30):  # spraying names from one address...
        assert await sign_in(staff.client, f"someone{n}", "guess", address=stranger) in (401, 429)
    assert await sign_in(staff.client, "someone99", "guess", address=stranger) == 429
    # a client-written X-Forwarded-For entry to the left of the proxy's is not believed
    assert await sign_in(staff.client, "someone100", "guess", address=f"10.9.9.9, {stranger}") == 429
    # ...and it pauses that address only: a dispatcher elsewhere, through the same proxy, signs in
    assert await sign_in(staff.client, "dispatcher1", PASSWORD, address="198.51.100.23") == 303


async def test_guessing_one_name_delays_that_name_only(tmp_path: Path, aiohttp_client) -> None:
    staff = await desk_app(tmp_path, aiohttp_client, trusted_proxies=1)
    for n in range(NAME_FREE_ATTEMPTS):
        assert await sign_in(staff.client, "dispatcher1", f"guess {n}", address=f"203.0.113.{n}") == 401
    assert await sign_in(staff.client, "dispatcher1", PASSWORD, address="198.51.100.1") == 429
    assert await sign_in(staff.client, "admin1", PASSWORD, address="203.0.113.1") == 303


def test_the_delay_grows_per_name_and_is_forgotten() -> None:
    from bot.dashboard.throttle import MemorySignInThrottle

    clock = Clock()
    throttle = MemorySignInThrottle(clock=clock)
    free = throttle.NAME_FREE_ATTEMPTS
    for n in range(free):
        assert throttle.attempt_now("ana", f"10.0.0.{n}") is None
    waits = []
    for _ in range(6):
        wait = throttle.attempt_now("ana", "10.0.1.1")
        assert wait is not None and wait > 0
        clock.now += wait
        assert throttle.attempt_now("ANA ", "10.0.1.2") is None  # names compare case-insensitively
        waits.append(wait)
    assert waits == sorted(waits) and waits[-1] > waits[0], waits
    assert max(waits) <= throttle.max_delay + 1
    assert throttle.attempt_now("bob", "10.0.1.3") is None  # other names are not affected
    clock.now += throttle.max_delay + throttle.forget_after + 1
    assert throttle.attempt_now("ana", "10.0.1.4") is None  # forgotten after a quiet spell
    throttle.succeeded_now("ana", "10.0.1.4")
    for _ in range(free - 1):
        assert throttle.attempt_now("ana", "10.0.2.1") is None  # a success cleared the name


async def test_a_success_gives_the_address_its_attempt_back() -> None:
    from bot.dashboard.throttle import MemorySignInThrottle

    throttle = MemorySignInThrottle(clock=Clock())
    for n in range(throttle.ADDRESS_FREE_ATTEMPTS * 2):  # a busy office behind one address
        assert await throttle.attempt(f"staff{n}", "192.0.2.10") is None
        await throttle.succeeded(f"staff{n}", "192.0.2.10")


async def test_redis_down_falls_back_to_this_process() -> None:
    from bot.dashboard.throttle import RedisSignInThrottle

    throttle = RedisSignInThrottle(aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5),
                                   prefix="barri-test:signin:")
    results = [await throttle.attempt("carla", "192.0.2.1") for _ in range(throttle.NAME_FREE_ATTEMPTS + 1)]
    assert results[:-1] == [None] * throttle.NAME_FREE_ATTEMPTS and results[-1] is not None
    await throttle.close()
