"""The probes a load balancer or an orchestrator uses, on a real bot service: /livez (the
process answers), /readyz (it can take citizens' messages: the database answers, whatever
the engine does), and /healthz, the detailed view."""

from __future__ import annotations

from pathlib import Path

from bot.app import create_app
from storage.migrate import upgrade_database
from tests.conftest import free_port, make_settings


async def test_an_instance_without_its_engine_is_alive_and_ready_but_not_healthy(tmp_path: Path,
                                                                                  aiohttp_client) -> None:
    settings = make_settings(tmp_path, rasa_port=free_port(), actions_port=free_port())  # nothing listens there
    upgrade_database(settings.database_url)
    client = await aiohttp_client(create_app(settings))
    live = await client.get("/livez")
    assert live.status == 200 and await live.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"status": "ready", "database": "ok",
                                  "engine": "down (messages are kept and replayed)"}
    assert ready.headers["Cache-Control"] == "no-store"
    health = await client.get("/healthz")
    assert health.status == 503 and (await health.json())["engine"] == "down"


async def test_an_instance_without_its_database_is_alive_but_not_ready(tmp_path: Path, aiohttp_client) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/barri"  # a port nobody listens on
    settings = make_settings(tmp_path, database_url=nowhere, rasa_port=free_port(), actions_port=free_port())
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/livez")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["database"] == "down" and (await ready.json())["status"] == "not ready"
    assert (await client.get("/healthz")).status == 503
