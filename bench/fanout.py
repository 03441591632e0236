"""Benchmark: fan one neighbourhood alert out to N Telegram subscribers through the outbox.

The Telegram side is the local Bot API server of the tests (tests/telegram_server.py) with
Telegram's limits enforced: 30 messages per second over all chats, 1 per second per chat,
429 with ``retry_after`` beyond them. The sender is the real outbox worker (``python -m
bot.outbox``) in its own process, on PostgreSQL (a scratch database created and dropped here)
or on ``--database-url``. Two runs, each with N fresh subscribers:

1. the worker sends the whole fan-out;
2. the worker is killed with SIGKILL when about half were delivered and started again
   (``--kills K``: K times, evenly spread).

For each: messages per second achieved (first to last delivery) against the 30/s limit, the
busiest one-second window, 429 answers, duplicates (chats that got the alert more than once:
must be 0), lost (chats that never got it: must be 0), and the database's final statuses.

    .venv/bin/python -m bench.fanout            # N = 10,000: about 12 minutes
    .venv/bin/python -m bench.fanout -n 1000    # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import Engine, make_url

from common.settings import PROJECT_ROOT
from storage import outbox as store
from storage.alerts import delivery_report
from storage.db import create_db_engine, session_scope
from storage.migrate import upgrade_database
from storage.models import Alert, Reporter, utcnow
from tests.telegram_server import FakeTelegram

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TOKEN = "123456:bench-fanout-token"
TEXT = "⚠️ Corte de agua en el Raval hoy de 10:00 a 14:00. Más información: barcelona.cat"


@dataclass
class RunResult:
    name: str
    subscribers: int
    seconds: float = 0.0  # first to last delivery
    wall_seconds: float = 0.0  # worker start to outbox drained
    rate: float = 0.0
    busiest_second: int = 0
    answers_429: int = 0
    duplicates: int = 0
    lost: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    kills: list[dict[str, int]] = field(default_factory=list)  # deliveries so far, rows left claimed


def make_subscribers(db: Engine, count: int, first_chat: int) -> tuple[uuid.UUID, list[int]]:
    """N reporters on Telegram, one alert, and its N outbox rows (as the alerts API would)."""
    chats = list(range(first_chat, first_chat + count))
    ids = [uuid.uuid4() for _ in chats]
    now = utcnow()
    with session_scope(db) as session:
        session.execute(insert(Reporter), [
            {"id": reporter_id, "channel": "telegram", "sender_id": f"telegram:{chat}", "locale": "es",
             "unreachable": False, "created_at": now, "last_seen_at": now}
            for reporter_id, chat in zip(ids, chats, strict=True)
        ])
        alert = Alert(created_by="bench", neighbourhood_codes='["01-01"]', texts=json.dumps({"es": TEXT}))
        session.add(alert)
        session.flush()
        alert_id = alert.id
    with session_scope(db) as session:
        store.enqueue(session=session, items=[
            store.OutgoingItem(reporter_id=reporter_id, channel="telegram", kind="alert", text=TEXT,
                               dedupe_key=f"alert:{alert_id}:{reporter_id}", alert_id=alert_id)
            for reporter_id in ids
        ])
    return alert_id, chats


def start_worker(database_url: str, api_url: str, lease: float, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SECRET_KEY": secrets.token_hex(16),
        "DATABASE_URL": database_url,
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": api_url,
        "OUTBOX_LEASE_SECONDS": str(lease),
        # the benchmark measures throughput, whatever the hour
        "QUIET_HOURS_START": "00:00",
        "QUIET_HOURS_END": "00:00",
    }
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bot.outbox"], env=env, cwd=PROJECT_ROOT,
                                stdout=out, stderr=subprocess.STDOUT)


def delivered(fake: FakeTelegram, chats: set[int]) -> list[dict[str, Any]]:
    return [entry for entry in fake.sent_messages(method="sendMessage") if entry["chat_id"] in chats]


def sent_rows(db: Engine, alert_id: uuid.UUID) -> int:
    with session_scope(db) as session:
        return delivery_report(session=session, alert_id=alert_id).sent


async def one_run(name: str, db: Engine, database_url: str, count: int, first_chat: int, kill_at: list[float],
                  lease: float, log: Path, signum: int = signal.SIGKILL) -> RunResult:
    result = RunResult(name=name, subscribers=count)
    alert_id, chat_list = await asyncio.to_thread(make_subscribers, db, count, first_chat)
    chats = set(chat_list)
    async with FakeTelegram(enforce_limits=True, strict_chats=False) as fake:
        started = time.monotonic()
        worker = start_worker(database_url, fake.base_url, lease, log)
        try:
            for fraction in kill_at:
                # the moment comes from the database (rows recorded sent), not from the fake's
                # own count, so it falls anywhere in the worker's send cycle
                target = int(count * fraction)
                while (await asyncio.to_thread(sent_rows, db, alert_id)) < target:  # noqa: ASYNC110
                    await asyncio.sleep(secrets.randbelow(100) / 1000)  # noqa: ASYNC110 - polling another process
                worker.send_signal(signum)
                await asyncio.to_thread(worker.wait)
                with session_scope(db) as session:
                    claimed = store.counts_by_status(session=session)["sending"]
                done = len(delivered(fake, chats))
                result.kills.append({"after": done, "claimed": claimed})
                print(f"  {signal.Signals(signum).name} after {done} deliveries ({claimed} rows left claimed); "  # noqa: T201
                      "restarting", flush=True)
                worker = start_worker(database_url, fake.base_url, lease, log)
            while True:
                with session_scope(db) as session:
                    counts = store.counts_by_status(session=session)
                if counts["pending"] == counts["sending"] == 0:
                    break
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker exited ({worker.returncode}); see {log}")
                await asyncio.sleep(0.5)
            result.wall_seconds = time.monotonic() - started
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(worker.wait, 15)
                except subprocess.TimeoutExpired:
                    worker.kill()
        sends = delivered(fake, chats)
        times = sorted(entry["time"] for entry in sends)
        per_chat = Counter(entry["chat_id"] for entry in sends)
        result.seconds = times[-1] - times[0] if len(times) > 1 else 0.0
        result.rate = (len(times) - 1) / result.seconds if result.seconds else 0.0
        start = 0
        for end, moment in enumerate(times):  # the busiest sliding one-second window
            while moment - times[start] >= 1.0:
                start += 1
            result.busiest_second = max(result.busiest_second, end - start + 1)
        result.answers_429 = sum(1 for call in fake.calls_to("sendMessage") if call.status == 429)
        result.duplicates = sum(n - 1 for n in per_chat.values() if n > 1)
        result.lost = len(chats - set(per_chat))
        with session_scope(db) as session:
            result.statuses = delivery_report(session=session, alert_id=alert_id).as_dict()
    return result


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Any:
    name = f"barri_bench_fanout_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def table(results: list[RunResult]) -> str:
    lines = [
        "| run | subscribers | msg/s (limit 30) | busiest second | 429 answers | duplicates | lost | time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r.name} | {r.subscribers:,} | {r.rate:.1f} | {r.busiest_second} | {r.answers_429} | "
                     f"{r.duplicates} | {r.lost} | {r.wall_seconds:.0f} s |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> list[RunResult]:
    log = Path(args.log)
    await asyncio.to_thread(log.write_text, "")
    with contextlib.ExitStack() as stack:
        database_url = args.database_url or stack.enter_context(scratch_database(args.admin_url))
        upgrade_database(database_url)
        db = create_db_engine(database_url)
        stack.callback(db.dispose)
        results = []
        print(f"fan-out to {args.n:,} subscribers, uninterrupted ...", flush=True)  # noqa: T201
        results.append(await one_run("uninterrupted", db, database_url, args.n, 10_000_000, [], args.lease, log))
        if args.kills:
            fractions = [(i + 1) / (args.kills + 1) for i in range(args.kills)]
            name = "worker killed -9 halfway, restarted" if args.kills == 1 else f"worker killed -9 {args.kills} times"
            print(f"fan-out to {args.n:,} other subscribers, {name} ...", flush=True)  # noqa: T201
            results.append(await one_run(name, db, database_url, args.n, 20_000_000, fractions, args.lease, log))
        if args.term:
            print(f"fan-out to {args.n:,} other subscribers, SIGTERM halfway ...", flush=True)  # noqa: T201
            results.append(await one_run("worker stopped (SIGTERM) halfway, restarted", db, database_url, args.n,
                                         30_000_000, [0.5], args.lease, log, signal.SIGTERM))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="subscribers per run (default 10000)")
    parser.add_argument("--kills", type=int, default=1,
                        help="SIGKILLs in the second run, evenly spread (default 1: halfway; 0: no second run)")
    parser.add_argument("--term", action="store_true", help="a third run: SIGTERM (a clean stop) halfway, restart")
    parser.add_argument("--lease", type=float, default=30.0, help="OUTBOX_LEASE_SECONDS of the worker")
    parser.add_argument("--database-url", default="", help="use this database instead of a scratch PostgreSQL one")
    parser.add_argument("--admin-url", default=ADMIN_URL, help="PostgreSQL server for the scratch database")
    parser.add_argument("--log", default="/tmp/barri-bench-fanout-worker.log", help="the workers' log")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)
    results = asyncio.run(main_async(args))
    print()  # noqa: T201
    print(table(results))  # noqa: T201
    for r in results:
        kills = "; ".join(f"stopped after {k['after']} deliveries, {k['claimed']} rows left claimed" for k in r.kills)
        print(f"- {r.name}: delivery report {r.statuses}" + (f"; {kills}" if kills else ""))  # noqa: T201
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
