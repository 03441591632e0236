"""Benchmark: cases per second through the storage layer (storage.cases.create_case).

Each case is one transaction in its own session, with a new reporter, its first event and
its audit entry, exactly as the action server stores a confirmed report. Runs on a fresh
SQLite file and on a freshly created PostgreSQL database (dropped afterwards), with one
writer and with several writers at once (threads, each with its own session).

    .venv/bin/python bench/case_writes.py [--cases 1000] [--writers 1 4] \
        [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402

from storage.cases import create_case  # noqa: E402
from storage.db import create_db_engine, session_scope  # noqa: E402
from storage.migrate import upgrade_database  # noqa: E402
from storage.models import CATEGORIES, CaseCreate  # noqa: E402

PLACES = [("Sants", "Sants-Montjuïc", 41.3755, 2.1335), ("el Raval", "Ciutat Vella", 41.3800, 2.1680),
          ("la Vila de Gràcia", "Gràcia", 41.4036, 2.1565), ("el Poblenou", "Sant Martí", 41.4005, 2.2010)]


def sample_case(rng: random.Random) -> CaseCreate:
    place, district, lat, lon = rng.choice(PLACES)
    contact = rng.random() < 0.3
    return CaseCreate(
        sender_id=f"web:{uuid.uuid4().hex}",
        channel="web",
        locale=rng.choice(["en", "es", "ca"]),
        category=rng.choice(CATEGORIES),
        description="Someone broke the lock of the bicycle parked at the corner, second time this month.",
        address=f"Carrer de prova {rng.randint(1, 200)}",
        latitude=lat + rng.uniform(-0.003, 0.003),
        longitude=lon + rng.uniform(-0.003, 0.003),
        neighbourhood_code=f"{rng.randint(1, 73):02d}",
        neighbourhood_name=place,
        district_name=district,
        occurred_at=datetime.now(UTC) - timedelta(hours=rng.randint(0, 48)),
        occurred_text="yesterday at night",
        contact_mode="contact" if contact else rng.choice(["anonymous", "chat"]),
        contact_name="Montserrat Ferrer" if contact else None,
        contact_phone="+34 612 345 678" if contact else None,
    )


def run(engine: Engine, cases: int, writers: int) -> tuple[float, list[float]]:
    """Store ``cases`` cases with ``writers`` threads; returns (cases per second, latencies in ms)."""
    per_writer = cases // writers

    def writer(seed: int) -> list[float]:
        rng = random.Random(seed)
        latencies = []
        for _ in range(per_writer):
            case_in = sample_case(rng)
            started = time.perf_counter()
            with session_scope(engine) as session:
                create_case(session=session, case_in=case_in)
            latencies.append((time.perf_counter() - started) * 1000)
        return latencies

    writer(-1)  # warm the pool and the caches
    started = time.perf_counter()
    with ThreadPoolExecutor(writers) as pool:
        results = list(pool.map(writer, range(writers)))
    elapsed = time.perf_counter() - started
    latencies = [ms for result in results for ms in result]
    return len(latencies) / elapsed, latencies


def report(backend: str, writers: int, rate: float, latencies: list[float]) -> None:
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    print(f"| {backend} | {writers} | {len(latencies)} | {rate:,.0f} | {p50:.1f} | {p95:.1f} |", flush=True)  # noqa: T201


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--postgres", default=os.environ.get("BARRI_BENCH_POSTGRES_URL",
                                                              "postgresql://postgres@127.0.0.1:5432/test"),
                        help="a PostgreSQL server where a scratch database may be created ('' to skip)")
    args = parser.parse_args()
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)  # noqa: T201
    print("| backend | writers | cases | cases/s | p50 ms | p95 ms |\n|---|---|---|---|---|---|", flush=True)  # noqa: T201
    with tempfile.TemporaryDirectory() as tmp:
        for writers in args.writers:
            url = f"sqlite:///{Path(tmp) / f'bench-{writers}.db'}"
            upgrade_database(url)
            engine = create_db_engine(url)
            try:
                report("SQLite", writers, *run(engine, args.cases, writers))
            finally:
                engine.dispose()
    if not args.postgres:
        return
    admin_url = make_url(args.postgres).set(drivername="postgresql+psycopg")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    for writers in args.writers:
        name = f"barri_bench_cases_{os.getpid()}_{writers}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        try:
            upgrade_database(url)
            engine = create_db_engine(url)
            try:
                report("PostgreSQL", writers, *run(engine, args.cases, writers))
            finally:
                engine.dispose()
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
    print(f"# load average {os.getloadavg()[0]:.1f} at end", flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
