"""LOG_FORMAT=json: `barri serve` as a real process writes one JSON object per line (timestamp,
level, logger, message, request id, channel) that a log collector can parse, with the proxy's
request id kept, each citizen message's channel, and none of the citizen's words."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import aiohttp

from common.logs import JsonFormatter
from common.settings import PROJECT_ROOT
from storage.migrate import upgrade_database
from tests.conftest import TEST_SECRET, free_port

FIELDS = {"timestamp", "level", "logger", "message", "request_id", "channel"}
SECRET_WORDS = "my phone is 612 345 678, they stole my bike"


async def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as session:
        while asyncio.get_running_loop().time() < deadline:
            assert process.poll() is None, "barri serve exited"
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


def start_serve(env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    with log_file.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], env=env, cwd=PROJECT_ROOT,
                                stdout=subprocess.DEVNULL, stderr=out, start_new_session=True)


async def test_barri_serve_writes_one_parsable_json_object_per_line(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'barri.db'}"
    upgrade_database(database)
    port = free_port()
    env = {**os.environ, "SECRET_KEY": TEST_SECRET, "DATABASE_URL": database, "LOG_FORMAT": "json",
           "TRACKER_STORE_URL": f"sqlite:///{tmp_path / 'tracker.db'}", "BOT_PORT": str(port),
           "RASA_PORT": str(free_port()), "ACTIONS_PORT": str(free_port()), "METRICS_PORT": str(free_port())}
    log_file = tmp_path / "serve.log"
    process = start_serve(env, log_file)
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_for(f"{base}/livez", process)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/desk/login", headers={"X-Request-ID": "proxy-4f2a"}) as page:
                assert page.status == 200 and page.headers["X-Request-ID"] == "proxy-4f2a"
            async with session.get(f"{base}/readyz", headers={"X-Request-ID": "bad id {}"}) as ready:
                generated = ready.headers["X-Request-ID"]  # an insane header is replaced, never logged
                assert generated != "bad id {}" and generated.isalnum()
            async with session.ws_connect(f"{base}/webchat/ws") as ws:
                await ws.send_json({"type": "hello", "session": None, "locale": "en-GB"})
                assert (await ws.receive_json(timeout=10))["type"] == "welcome"
                await ws.send_json({"type": "text", "text": SECRET_WORDS})
                while (await ws.receive_json(timeout=30)).get("type") != "message":
                    pass  # the engine is down: the message is kept, the citizen told so
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

    lines = log_file.read_text().splitlines()
    assert lines, "nothing was logged"
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    for entry in entries:
        assert set(entry) - {"exception"} == FIELDS, entry
        assert datetime.fromisoformat(entry["timestamp"]).utcoffset() is not None
        assert entry["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    access = [e for e in entries if e["logger"] == "aiohttp.access" and "/desk/login" in e["message"]]
    assert access and access[0]["request_id"] == "proxy-4f2a" and access[0]["channel"] is None
    kept = [e for e in entries if e["logger"] == "bot.engine" and "engine unavailable" in e["message"]]
    assert kept and kept[0]["channel"] == "web" and kept[0]["level"] == "WARNING"
    assert kept[0]["request_id"] and kept[0]["request_id"] != "proxy-4f2a"  # each message its own
    text = log_file.read_text()
    assert "612 345 678" not in text and "stole my bike" not in text  # no citizen's words in the logs
    assert "bad id" not in text


def test_the_formatter_keeps_tracebacks_and_unicode() -> None:
    import logging

    try:
        raise ValueError("àèìòù")
    except ValueError:
        record = logging.LogRecord("bot.x", logging.ERROR, __file__, 1, "failed %s", ("Gràcia",), sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed Gràcia" and "ValueError: àèìòù" in entry["exception"]
    assert entry["request_id"] is None and entry["channel"] is None
