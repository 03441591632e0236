"""Benchmark: what the engine costs (issue #12's figures), for one model or one pipeline.

    .venv/bin/python bench/engine.py                          # the newest model in models/
    .venv/bin/python bench/engine.py --model models/x.tar.gz
    .venv/bin/python bench/engine.py --train nlu/config.yml   # train from scratch first, timed
    .venv/bin/python bench/engine.py --train x.yml --keep results/x.tar.gz   # and keep the model

Prints, as a Markdown table row: training time (with --train), the model archive's size and
its unpacked size, the engine's start to ready with the model present, its resident memory
once loaded and its peak, the engine's CPU per turn and the turns per second one engine
answers with 50 citizens at once.

CPU per turn: one citizen at a time files the load benchmark's scripted reports (``--rounds``
times each, a new conversation each time) through the REST channel; each turn's CPU is the
engine's threads' run time from /proc's schedstat (nanoseconds, not 10 ms ticks) before and
after it. Printed: the median turn, the mean turn, and the median over conversations of
their CPU divided by their turns; then the costliest turns (``--heavy``). The action server runs beside it, as in
`make run`; the bot service is not started (bench/load.py measures it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load  # noqa: E402
from bench.citizen import SCRIPTS, Frame, file_report, rest_say  # noqa: E402
from bot.devserver import engine_command, engine_env, newest_model, stop, wait_for, write_engine_endpoints  # noqa: E402
from common.settings import PROJECT_ROOT, Settings  # noqa: E402
from storage.migrate import upgrade_database  # noqa: E402

MB = 1024 * 1024


def train(config: Path, out: Path) -> tuple[Path, float]:
    """A model trained from scratch with this pipeline, and the seconds it took."""
    data = subprocess.run(["scripts/engine-data.sh", "paths"], cwd=PROJECT_ROOT, check=True,
                          capture_output=True, text=True).stdout.split()
    python = PROJECT_ROOT / ".venv-engine" / "bin" / "python"
    started = time.monotonic()
    # as `make model` trains (scripts/train-if-changed.sh): nlu/fast_train.py, no training cache
    subprocess.run([str(python), "-m", "nlu.serve", "train", "--skip-validation", "--config", str(config), "--domain", "dialogues/domain",
                    "--data", *data, "--out", str(out), "--fixed-model-name", "bench"],
                   cwd=PROJECT_ROOT, env={**engine_env(os.environ), "RASA_MAX_CACHE_SIZE": "0"},
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out / "bench.tar.gz", time.monotonic() - started


def unpacked_bytes(model: Path) -> int:
    with tarfile.open(model) as archive:
        return sum(member.size for member in archive.getmembers())


def group_memory(pgid: int) -> tuple[int, int]:
    """Resident and peak resident bytes of a process group (Linux /proc)."""
    rss = peak = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            stat = (status.parent / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[2]) != pgid:
                continue
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        rss += int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
        peak += int(fields.get("VmHWM", "0 kB").split()[0]) * 1024
    return rss, peak


def group_cpu_ns(pgid: int) -> int:
    """CPU nanoseconds the live threads of a process group have run (Linux schedstat).

    Finer than /proc/<pid>/stat's utime + stime, which count in 10 ms ticks: a turn of 40-60
    ms moves by a whole tick either way. The engine's threads (Sanic's loop, TensorFlow's
    pools) live as long as it does, so no time is lost with a finished thread."""
    used = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for task in (stat.parent / "task").iterdir():
                used += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return used


@dataclass
class Turn:
    conversation: int
    number: int
    what: str  # what the citizen sent
    cpu_ms: float
    replies: list[Frame]


async def cpu_per_turn(engine_url: str, pgid: int, rounds: int) -> list[Turn]:
    """Engine CPU of each turn, one citizen at a time (nothing else in flight), the load
    benchmark's scripted reports ``rounds`` times each, a new conversation every time."""
    turns: list[Turn] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        for conversation, script in enumerate(SCRIPTS * rounds):
            sender = f"web:{secrets.token_hex(16)}"

            async def send(number: int, frame: Frame, sender: str = sender, locale: str = script.locale,
                           conversation: int = conversation) -> list[Frame]:
                before = group_cpu_ns(pgid)
                replies = await rest_say(http, engine_url, sender, locale, frame)
                used = group_cpu_ns(pgid) - before
                what = str(frame.get("text") or frame.get("payload") or frame["type"])[:40]
                turns.append(Turn(conversation, number, what, used / 1e6, replies))
                return replies

            outcome = await file_report(script, send)
            if not outcome.ref:
                raise SystemExit(f"the scripted report did not file: {outcome}")
    return turns


def cpu_summary(turns: list[Turn]) -> str:
    """Median and mean per turn, and the median over conversations of their CPU / turns."""
    per_turn = [t.cpu_ms for t in turns]
    conversations: dict[int, list[float]] = {}
    for turn in turns:
        conversations.setdefault(turn.conversation, []).append(turn.cpu_ms)
    per_conversation = [sum(c) / len(c) for c in conversations.values()]
    return (f"{statistics.median(per_turn):.1f} / {statistics.fmean(per_turn):.1f} / "
            f"{statistics.median(per_conversation):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model archive (default: the newest in models/)")
    parser.add_argument("--train", type=Path, help="train from scratch with this pipeline config first")
    parser.add_argument("--keep", type=Path, help="with --train: copy the trained model here")
    parser.add_argument("--citizens", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="times each scripted report is filed for CPU per turn")
    parser.add_argument("--transcripts", type=Path,
                        help="write what each turn sent and got (JSON lines): diff two engines' decisions")
    parser.add_argument("--heavy", type=int, default=8, help="print this many of the costliest turns")
    args = parser.parse_args()
    from tests.conftest import free_port

    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)  # noqa: T201
    with tempfile.TemporaryDirectory(prefix="barri-bench-engine-") as tmp_name:
        tmp = Path(tmp_name)
        trained = ""
        if args.train:
            model, seconds = train(args.train, tmp)
            trained = f"{seconds / 60:.1f} min"
            if args.keep:
                args.keep.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(model, args.keep)
        else:
            model = Path(args.model) if args.model else newest_model()
        # measured now: a model trained here goes with the temporary folder
        model_bytes, model_unpacked = model.stat().st_size, unpacked_bytes(model)
        settings = Settings(secret_key=secrets.token_urlsafe(32), rasa_token=secrets.token_urlsafe(32),
                            database_url=f"sqlite:///{tmp / 'barri.db'}",
                            tracker_store_url=f"sqlite:///{tmp / 'tracker.db'}",
                            rasa_port=free_port(), actions_port=free_port())
        upgrade_database(settings.database_url)
        endpoints = write_engine_endpoints(settings, tmp / "endpoints.yml")
        os.environ["RASA_TOKEN"] = settings.rasa_token  # the REST path (bench.citizen.rest_say) sends it
        env = {**os.environ, "SECRET_KEY": settings.secret_key, "DATABASE_URL": settings.database_url,
               "TRACKER_STORE_URL": settings.tracker_store_url, "ACTIONS_PORT": str(settings.actions_port),
               "RASA_PORT": str(settings.rasa_port)}
        processes: list[subprocess.Popen[bytes]] = []
        with (tmp / "actions.log").open("wb") as actions_log, (tmp / "engine.log").open("wb") as engine_log:
            try:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "dialogues.actions", "--log-level", "WARNING"], env=env,
                    cwd=PROJECT_ROOT, stdout=actions_log, stderr=subprocess.STDOUT, start_new_session=True))
                load.GROUPS["actions"] = processes[-1].pid
                if not wait_for(f"{settings.action_server_url}/health", 120, processes):
                    raise SystemExit("the action server did not start")
                started = time.monotonic()
                processes.append(subprocess.Popen(
                    engine_command(settings, model, endpoints), env=engine_env(env), cwd=PROJECT_ROOT,
                    stdout=engine_log, stderr=subprocess.STDOUT, start_new_session=True))
                load.GROUPS["engine"] = processes[-1].pid
                if not wait_for(f"{settings.engine_url}/status?token={settings.rasa_token}", 600, processes):
                    raise SystemExit((tmp / "engine.log").read_text()[-3000:])
                ready = time.monotonic() - started
                loaded_rss, _ = group_memory(processes[-1].pid)
                turns = asyncio.run(cpu_per_turn(settings.engine_url, processes[-1].pid, args.rounds))
                crowd = asyncio.run(load.one_run("REST", args.citizens, "", settings.engine_url))
                _, peak = group_memory(processes[-1].pid)
            finally:
                stop(processes, grace=10)
    if crowd.failures:
        raise SystemExit("\n".join(crowd.failures[:5]))
    print("| training | model | unpacked | start to ready | memory loaded | peak | "  # noqa: T201
          f"CPU per turn (median / mean / conversations' median) | turns/s with {args.citizens} |")
    print("|---|---|---|---|---|---|---|---|")  # noqa: T201
    print(f"| {trained or '–'} | {model_bytes / MB:.1f} MB | {model_unpacked / MB:.0f} MB | "  # noqa: T201
          f"{ready:.1f} s | {loaded_rss / MB:.0f} MB | {peak / MB:.0f} MB | "
          f"{cpu_summary(turns)} ({len(turns)} turns) | {crowd.rate:.1f} |")
    if args.transcripts:
        with args.transcripts.open("w", encoding="utf-8") as out:
            for turn in turns:
                out.write(json.dumps({"conversation": turn.conversation, "turn": turn.number, "sent": turn.what,
                                      "replies": turn.replies}, ensure_ascii=False) + "\n")
    print(f"# with {args.citizens} citizens, CPU ms per turn: {crowd.cpu_per_turn()}")  # noqa: T201
    for turn in sorted(turns, key=lambda t: -t.cpu_ms)[: args.heavy]:
        print(f"# heavy: {turn.cpu_ms:.1f} ms, conversation {turn.conversation} turn {turn.number}: {turn.what!r}")  # noqa: T201
    print(f"# load average {os.getloadavg()[0]:.1f} at end", flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
