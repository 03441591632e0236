"""Shared fixtures: settings for tests, and ONE real engine + action server per test run.

The engine (Rasa 3.6 with the trained model) and the action server start once, on free
loopback ports, against a SQLite database in a temporary folder; every test that needs
them shares them. They are real processes, exactly the commands `make run` starts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.devserver import engine_command, engine_env, newest_model, stop, write_engine_endpoints
from common.geo import Neighbourhoods
from common.places import Gazetteer, load_gazetteer
from common.settings import PROJECT_ROOT, Settings
from storage.migrate import upgrade_database

TEST_SECRET = "test-secret-key-0123456789abcdef"
TEST_RASA_TOKEN = "test-rasa-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ENGINE_PYTHON = PROJECT_ROOT / ".venv-engine" / "bin" / "python"


def engine_python(script: str, **env: str) -> str:
    """The last line a Python script prints when run in the engine's environment (Rasa 3.6,
    Python 3.10), from the project folder; skipped where that environment is missing."""
    if not ENGINE_PYTHON.exists():
        pytest.skip("no engine environment (.venv-engine)")
    run = subprocess.run([str(ENGINE_PYTHON), "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **env},
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip().splitlines()[-1]


def make_settings(tmp: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "secret_key": TEST_SECRET,
        "rasa_token": TEST_RASA_TOKEN,
        "database_url": f"sqlite:///{tmp / 'barri.db'}",
        "tracker_store_url": f"sqlite:///{tmp / 'tracker.db'}",
        "bot_port": free_port(),
        # no quiet hours unless a test sets them: at night (22:00-08:00 in TIME_ZONE) the outbox
        # holds every message that is not urgent, and a test must not pass by day and fail by night
        "quiet_hours_start": "00:00",
        "quiet_hours_end": "00:00",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the shared engine carries the ``engine`` marker, so `make test` can run
    the others (``-m "not engine"``) while the model trains."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.engine)


@dataclass(frozen=True)
class Stack:
    settings: Settings
    engine_log: Path
    actions_log: Path


def wait_until_up(url: str, timeout: float, processes: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process, log in zip(processes, logs, strict=True):
            if process.poll() is not None:
                raise RuntimeError(f"{process.args[0]} exited:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout}s")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The real engine and action server, started once for the whole run."""
    model_env = os.environ.get("BARRI_TEST_MODEL")
    model = Path(model_env) if model_env else newest_model()
    if not model.is_absolute():
        model = PROJECT_ROOT / model
    tmp = tmp_path_factory.mktemp("stack")
    settings = make_settings(tmp, rasa_port=free_port(), actions_port=free_port())
    upgrade_database(settings.database_url)
    env = {
        **os.environ,
        "SECRET_KEY": TEST_SECRET,
        "RASA_TOKEN": TEST_RASA_TOKEN,
        "DATABASE_URL": settings.database_url,
        "TRACKER_STORE_URL": settings.tracker_store_url,
        "ACTIONS_PORT": str(settings.actions_port),
        "RASA_PORT": str(settings.rasa_port),
    }
    endpoints = write_engine_endpoints(settings, tmp / "endpoints.yml")
    actions_log, engine_log = tmp / "actions.log", tmp / "engine.log"
    processes: list[subprocess.Popen[bytes]] = []
    with actions_log.open("wb") as actions_out, engine_log.open("wb") as engine_out:
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "dialogues.actions"], env=env, cwd=PROJECT_ROOT,
            stdout=actions_out, stderr=subprocess.STDOUT, start_new_session=True,
        ))
        processes.append(subprocess.Popen(
            engine_command(settings, model, endpoints), env=engine_env(env), cwd=PROJECT_ROOT,
            stdout=engine_out, stderr=subprocess.STDOUT, start_new_session=True,
        ))
    try:
        logs = [actions_log, engine_log]
        wait_until_up(f"{settings.action_server_url}/health", 120, processes, logs)
        wait_until_up(f"{settings.engine_url}/status?token={TEST_RASA_TOKEN}", 300, processes, logs)
        yield Stack(settings=settings, engine_log=engine_log, actions_log=actions_log)
    finally:
        stop(processes, grace=10)


@dataclass(frozen=True)
class StaffApp:
    """The bot service on a fresh database with one staff user per role (engine not started)."""

    client: Any
    tokens: dict[str, str]
    db: Any
    settings: Settings


async def start_staff_app(tmp: Path, aiohttp_client: Any, **overrides: object) -> StaffApp:
    from bot.app import create_app
    from storage import users
    from storage.db import create_db_engine, session_scope

    settings = make_settings(tmp, rasa_port=free_port(), actions_port=free_port(), **overrides)
    upgrade_database(settings.database_url)
    db = create_db_engine(settings.database_url)
    tokens = {}
    with session_scope(db) as session:
        for role in users.ROLES:
            _, tokens[role] = users.create_user(session=session, name=f"{role}1", role=role)
    client = await aiohttp_client(create_app(settings))
    return StaffApp(client=client, tokens=tokens, db=db, settings=settings)


@pytest.fixture(scope="session")
def gazetteer() -> Gazetteer:
    """Barcelona's gazetteer from the project's data, loaded once (a few seconds)."""
    settings = Settings(secret_key="test-secret-key-for-the-gazetteer")
    return load_gazetteer(Neighbourhoods.from_geojson(settings.neighbourhoods_geojson), settings.gazetteer_dir)
