"""Benchmark: N citizens filing whole reports at once, through the bot service's web-chat
WebSocket and, in the same run, the same turns straight to the engine's REST channel.

    .venv/bin/python bench/load.py                      # starts its own stack (SQLite, as `make run`)
    .venv/bin/python bench/load.py --citizens 1 10 50 --repeat 2
    RASA_TOKEN=$(cat var/rasa_token) .venv/bin/python bench/load.py --bot http://127.0.0.1:8080 --engine http://127.0.0.1:5005

For each N it runs the REST path and the web-chat path in A-B-B-A order (``--repeat 2``)
so that a change in the machine's load during the run weighs on both, and prints p50/p95
per turn, messages per second (turns answered / wall time) and web chat ÷ REST.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.citizen import SCRIPTS, Frame, Outcome, Script, file_report, hello, rest_say, say  # noqa: E402
from bot.devserver import engine_command, engine_env, newest_model, stop, wait_for, write_engine_endpoints  # noqa: E402
from common.settings import PROJECT_ROOT, Settings  # noqa: E402
from storage.migrate import upgrade_database  # noqa: E402

GROUPS: dict[str, int] = {}  # service name -> process group id, when the benchmark started the stack


def cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) used so far by each service's processes (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = dict.fromkeys(GROUPS, 0.0)
    names = {pgid: name for name, pgid in GROUPS.items()}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(fields[2]))  # pgrp
        if name:
            used[name] += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return used


@dataclass
class Run:
    path: str
    citizens: int
    latencies: list[float] = field(default_factory=list)
    turns: int = 0
    wall: float = 0.0
    failures: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # seconds per service during the run

    def add(self, other: Run) -> None:
        self.latencies += other.latencies
        self.turns += other.turns
        self.wall += other.wall
        self.failures += other.failures
        for name, seconds in other.cpu.items():
            self.cpu[name] = self.cpu.get(name, 0.0) + seconds

    def cpu_per_turn(self) -> str:
        return ", ".join(f"{name} {1000 * s / max(self.turns, 1):.0f}" for name, s in self.cpu.items())

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")

    @property
    def rate(self) -> float:
        return self.turns / self.wall if self.wall else 0.0


async def websocket_citizen(http: aiohttp.ClientSession, bot_url: str, script: Script) -> Outcome:
    ws_url = bot_url.replace("http", "ws", 1) + "/webchat/ws"
    async with http.ws_connect(ws_url) as ws:
        await hello(ws, None, script.locale)

        async def send(_turn: int, frame: Frame) -> list[Frame]:
            return await say(ws, frame)

        return await file_report(script, send)


async def rest_citizen(http: aiohttp.ClientSession, engine_url: str, script: Script) -> Outcome:
    sender = f"web:{secrets.token_hex(16)}"  # the same shape as a web-chat sender

    async def send(_turn: int, frame: Frame) -> list[Frame]:
        return await rest_say(http, engine_url, sender, script.locale, frame)

    return await file_report(script, send)


async def one_run(path: str, citizens: int, bot_url: str, engine_url: str) -> Run:
    run = Run(path=path, citizens=citizens)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as http:
        async def citizen(i: int) -> Outcome:
            script = SCRIPTS[i % len(SCRIPTS)]
            if path == "web chat":
                return await websocket_citizen(http, bot_url, script)
            return await rest_citizen(http, engine_url, script)

        cpu_before = cpu_seconds()
        started = time.perf_counter()
        results = await asyncio.gather(*(citizen(i) for i in range(citizens)), return_exceptions=True)
        run.wall = time.perf_counter() - started
        run.cpu = {name: used - cpu_before[name] for name, used in cpu_seconds().items()}
    for result in results:
        if isinstance(result, Outcome) and result.ref:
            run.latencies += result.latencies
            run.turns += result.turns
        else:
            run.failures.append(f"{type(result).__name__}: {str(result)[:300]}")
    return run


async def measure(citizens: list[int], repeat: int, bot_url: str, engine_url: str) -> list[tuple[Run, Run]]:
    # warm both paths (first requests load caches and connection pools)
    await one_run("REST", 1, bot_url, engine_url)
    await one_run("web chat", 1, bot_url, engine_url)
    table = []
    for n in citizens:
        rest, web = Run("REST", n), Run("web chat", n)
        order = ["REST", "web chat", "web chat", "REST"] * ((repeat + 1) // 2)
        for path in order[: 2 * repeat]:
            result = await one_run(path, n, bot_url, engine_url)
            (rest if path == "REST" else web).add(result)
            print(f"  N={n} {path}: {result.turns} turns in {result.wall:.1f}s, p50 {result.percentile(0.5):.0f} ms, "  # noqa: T201
                  f"p95 {result.percentile(0.95):.0f} ms, {len(result.failures)} failed; "
                  f"CPU ms per turn: {result.cpu_per_turn() or 'n/a'}", flush=True)
            for failure in result.failures[:3]:
                print(f"    {failure}", flush=True)  # noqa: T201
        table.append((web, rest))
    return table


def print_table(table: list[tuple[Run, Run]]) -> None:
    print("\n| citizens | path | turns | p50 ms | p95 ms | msg/s | failed reports | CPU ms per turn |")  # noqa: T201
    print("|---|---|---|---|---|---|---|---|")  # noqa: T201
    for web, rest in table:
        for run in (web, rest):
            print(f"| {run.citizens} | {run.path} | {run.turns} | {run.percentile(0.5):.0f} | "  # noqa: T201
                  f"{run.percentile(0.95):.0f} | {run.rate:.1f} | {len(run.failures)} | {run.cpu_per_turn()} |")
    print("\n| citizens | p50 web chat ÷ REST | p95 web chat ÷ REST | msg/s REST ÷ web chat |")  # noqa: T201
    print("|---|---|---|---|")  # noqa: T201
    for web, rest in table:
        print(f"| {web.citizens} | {web.percentile(0.5) / rest.percentile(0.5):.2f} | "  # noqa: T201
              f"{web.percentile(0.95) / rest.percentile(0.95):.2f} | {rest.rate / web.rate:.2f} |")


@contextmanager
def own_stack(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    """Engine, action server and bot service as `make run` starts them, on free ports."""
    from tests.conftest import free_port

    with tempfile.TemporaryDirectory(prefix="barri-bench-") as tmp_name:
        tmp = Path(tmp_name)
        settings = Settings(
            secret_key=secrets.token_urlsafe(32), rasa_token=secrets.token_urlsafe(32),
            database_url=args.database_url or f"sqlite:///{tmp / 'barri.db'}",
            tracker_store_url=args.tracker_store_url or f"sqlite:///{tmp / 'tracker.db'}",
            redis_url=args.redis_url,
            bot_port=free_port(), rasa_port=free_port(), actions_port=free_port(),
        )
        upgrade_database(settings.database_url)
        endpoints = write_engine_endpoints(settings, tmp / "endpoints.yml")
        env = {
            **os.environ, "SECRET_KEY": settings.secret_key, "RASA_TOKEN": settings.rasa_token,
            "DATABASE_URL": settings.database_url,
            "TRACKER_STORE_URL": settings.tracker_store_url, "BOT_PORT": str(settings.bot_port),
            "RASA_PORT": str(settings.rasa_port), "ACTIONS_PORT": str(settings.actions_port),
            # every simulated citizen comes from this machine's one address
            "MAX_MESSAGES_PER_MINUTE_PER_ADDRESS": "0", "MAX_HELLOS_PER_MINUTE_PER_ADDRESS": "0",
            "MAX_NEW_SESSIONS_PER_MINUTE_PER_ADDRESS": "0",
        }
        os.environ["RASA_TOKEN"] = settings.rasa_token  # for the REST path (bench.citizen.rest_say)
        model = Path(args.model) if args.model else newest_model()
        processes: list[subprocess.Popen[bytes]] = []
        logs = [(tmp / name).open("wb") for name in ("actions.log", "engine.log", "bot.log")]
        commands = [
            ([sys.executable, "-m", "dialogues.actions", "--log-level", "WARNING"], env),
            (engine_command(settings, model, endpoints), engine_env(env)),
            ([sys.executable, "-m", "bot.cli", "--log-level", "WARNING", "serve"], env),
        ]
        try:
            for (command, environment), log, name in zip(commands, logs, ("actions", "engine", "bot"), strict=True):
                processes.append(subprocess.Popen(command, env=environment, cwd=PROJECT_ROOT, stdout=log,
                                                  stderr=subprocess.STDOUT, start_new_session=True))
                GROUPS[name] = processes[-1].pid  # start_new_session: its own process group
            bot_url = f"http://127.0.0.1:{settings.bot_port}"
            started = time.monotonic()
            if not wait_for(f"{bot_url}/healthz", timeout=600, processes=processes):
                for log in logs:
                    log.flush()
                    print(Path(log.name).read_text()[-3000:], file=sys.stderr)  # noqa: T201
                raise SystemExit("the stack did not start")
            print(f"# stack up in {time.monotonic() - started:.0f}s (model {model.name})", flush=True)  # noqa: T201
            yield bot_url, settings.engine_url
        finally:
            stop(processes, grace=10)
            for log in logs:
                log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--citizens", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--repeat", type=int, default=2, help="runs per path and N (A-B-B-A order)")
    parser.add_argument("--bot", help="a running bot service, e.g. http://127.0.0.1:8080")
    parser.add_argument("--engine", help="its engine, e.g. http://127.0.0.1:5005")
    parser.add_argument("--model", help="model archive for the own stack (default: newest in models/)")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--tracker-store-url", default="")
    parser.add_argument("--redis-url", default="")
    args = parser.parse_args()
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)  # noqa: T201
    if args.bot and args.engine:
        table = asyncio.run(measure(args.citizens, args.repeat, args.bot.rstrip("/"), args.engine.rstrip("/")))
    else:
        with own_stack(args) as (bot_url, engine_url):
            table = asyncio.run(measure(args.citizens, args.repeat, bot_url, engine_url))
    print_table(table)
    print(f"# load average {os.getloadavg()[0]:.1f} at end", flush=True)  # noqa: T201
    if any(run.failures for pair in table for run in pair):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
