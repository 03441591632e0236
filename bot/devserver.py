"""Start the engine, the action server and the bot service together, and stop all three.

Each runs in its own process group so that Ctrl-C (or SIGTERM) stops every process it
started, Rasa's workers included. The tests start the same commands.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml
from sqlalchemy.engine import make_url

from common.settings import PROJECT_ROOT, Settings

ENGINE_VENV = PROJECT_ROOT / ".venv-engine"
MODELS_DIR = PROJECT_ROOT / "models"
ATOMIC_REDIS_LOCK_STORE = "nlu.lock_store.AtomicRedisLockStore"


def newest_model(models_dir: Path = MODELS_DIR) -> Path:
    models = sorted(models_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise SystemExit("no trained model in models/: run `make model`")
    return models[-1]


def tracker_store_config(url: str) -> dict[str, object]:
    """Rasa's SQL tracker store settings for a SQLAlchemy URL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
        return {"type": "SQL", "dialect": "sqlite", "db": parsed.database}
    config: dict[str, object] = {
        "type": "SQL",
        "dialect": "postgresql",
        "url": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "db": parsed.database,
        "username": parsed.username or "postgres",
    }
    if parsed.password:
        config["password"] = parsed.password
    return config


def lock_store_config(url: str) -> dict[str, object]:
    """Rasa's Redis lock store settings for a ``redis://[user:password@]host[:port][/db]`` URL.

    Engines that share the tracker store must share the lock store too, or two of them may
    process the same conversation at once and overwrite each other's events. Rasa's own
    ``redis`` lock store is not safe between processes (see nlu/lock_store.py): ours is.
    """
    parsed = urlsplit(url)
    if parsed.scheme not in ("redis", "rediss"):
        raise ValueError("REDIS_URL must start with redis:// or rediss://")
    config: dict[str, object] = {
        "type": ATOMIC_REDIS_LOCK_STORE,
        "url": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 6379,
        "db": int(parsed.path.strip("/") or 1),  # Rasa's own default for its locks
    }
    if parsed.username:
        config["username"] = unquote(parsed.username)
    if parsed.password:
        config["password"] = unquote(parsed.password)
    if parsed.scheme == "rediss":
        config["use_ssl"] = True
    return config


# Rasa fills ${RASA_TOKEN} from the engine's environment when it reads its endpoints, so
# the file holds no secret: the action server refuses calls without this header.
ACTION_SERVER_HEADERS = {"Authorization": "Bearer ${RASA_TOKEN}"}


def write_engine_endpoints(settings: Settings, path: Path) -> Path:
    actions = settings.action_server_url
    endpoints: dict[str, object] = {
        "action_endpoint": {"url": f"{actions}/webhook", "headers": dict(ACTION_SERVER_HEADERS)},
        "nlg": {"url": f"{actions}/nlg", "headers": dict(ACTION_SERVER_HEADERS)},
        "tracker_store": tracker_store_config(settings.tracker_store_url),
    }
    if settings.redis_url:
        endpoints["lock_store"] = lock_store_config(settings.redis_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    # it may hold database and Redis passwords
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(yaml.safe_dump(endpoints, sort_keys=False), encoding="utf-8")
    return path


def engine_command(settings: Settings, model: Path, endpoints: Path) -> list[str]:
    """``rasa run`` through nlu.serve, which takes the API token from RASA_TOKEN (see
    ``engine_env``): no secret on the command line. Loopback only."""
    return [
        str(ENGINE_VENV / "bin" / "python"), "-m", "nlu.serve", "run",
        "--enable-api", "--interface", "127.0.0.1", "--port", str(settings.rasa_port),
        "--model", str(model),
        "--endpoints", str(endpoints),
        "--credentials", str(PROJECT_ROOT / "dialogues" / "credentials.yml"),
    ]


def engine_env(base: Mapping[str, str]) -> dict[str, str]:
    """The engine imports our NLU component from the project folder (and reads the shared
    secret from RASA_TOKEN, which ``base`` must hold)."""
    env = dict(base)
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # one turn at a time per thread pool, as wide as the machine (TensorFlow's defaults idle a core)
    env.setdefault("TF_INTRA_OP_PARALLELISM_THREADS", str(os.cpu_count() or 2))
    env.setdefault("TF_INTER_OP_PARALLELISM_THREADS", "2")
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    return env


def wait_for(url: str, timeout: float, processes: list[subprocess.Popen[bytes]] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if processes and any(p.poll() is not None for p in processes):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    return False


def stop(processes: list[subprocess.Popen[bytes]], grace: float = 15.0) -> None:
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the group may outlive its leader


def prefix_lines(name: str, process: subprocess.Popen[bytes]) -> None:
    """Copy a service's output to ours, each line behind the service's name."""
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(f"{name:<7} | {line.decode('utf-8', 'replace')}")
        sys.stdout.flush()


def run_all(settings: Settings, model: str | None = None) -> int:
    model_path = Path(model) if model else newest_model()
    endpoints = write_engine_endpoints(settings, PROJECT_ROOT / "var" / "engine" / "endpoints.yml")
    python = sys.executable
    # the children read the secrets from here (var/ may not be where they look)
    env = {**os.environ, "SECRET_KEY": settings.secret_key, "RASA_TOKEN": settings.rasa_token}
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, command: list[str], environment: Mapping[str, str]) -> None:
        process = subprocess.Popen(command, env=dict(environment), cwd=PROJECT_ROOT, start_new_session=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        processes.append(process)
        threading.Thread(target=prefix_lines, args=(name, process), daemon=True).start()

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM both stop everything (set explicitly: a shell may start us with SIGINT ignored)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        start("actions", [python, "-m", "dialogues.actions"], env)
        start("engine", engine_command(settings, model_path, endpoints), engine_env(env))
        start("bot", [python, "-m", "bot.cli", "serve"], env)
        url = f"http://{settings.bot_host}:{settings.bot_port}"
        if not wait_for(f"{url}/healthz", timeout=600, processes=processes):
            print("barri: a service did not start; see the messages above", file=sys.stderr)  # noqa: T201
            return 1
        print(f"\n  Barri is running. Web chat: {url}/\n  Stop with Ctrl-C.\n", flush=True)  # noqa: T201
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        print("barri: a service stopped unexpectedly", file=sys.stderr)  # noqa: T201
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(processes)
