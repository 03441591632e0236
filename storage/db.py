"""Engines and sessions.

SQLite is used for development and small deployments; the bot service and the action server
may write the same file, hence WAL and a generous busy timeout. PostgreSQL is reached through
psycopg 3. Sessions are synchronous: async callers run storage functions in a thread with
``run_storage``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlmodel import Session, create_engine

from storage.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 5

_POSTGRES_DRIVERNAMES = {"postgres", "postgresql"}


def normalise_database_url(database_url: str | URL) -> URL:
    """Parse ``database_url``; ``postgres://`` and ``postgresql://`` become psycopg 3 URLs."""
    url = make_url(database_url)
    if url.drivername in _POSTGRES_DRIVERNAMES:
        url = url.set(drivername="postgresql+psycopg")
    return url


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or ``None`` for in-memory and URI-style databases."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if url.query.get("mode") == "memory":
        return None
    return Path(database)


def _set_sqlite_pragmas(dbapi_connection: Any, _connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def create_db_engine(database_url: str | URL) -> Engine:
    """Create the engine for ``database_url`` (``sqlite:///path`` or a PostgreSQL URL)."""
    url = normalise_database_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        db_file = sqlite_file(url)
        if db_file is not None:
            db_file.expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            hide_parameters=True,  # errors are logged: never with a citizen's words in them
        )
        event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    if backend == "postgresql":
        # a database that hangs must fail a request, not stall it: connect within a few seconds
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
                             hide_parameters=True)  # errors are logged: never with a citizen's words in them
    raise ValueError(f"unsupported database backend {backend!r} (use sqlite or postgresql)")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """Yield a session; commit what is left pending on success, roll back on any exception.

    The storage functions that write commit their own work; the final commit here only
    matters for changes the caller made itself (for instance ``record_audit``). Connection
    failures are raised as ``DatabaseUnavailable``.
    """
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except (OperationalError, InterfaceError) as exc:
        _rollback_quietly(session)
        raise DatabaseUnavailable(f"database error: {type(exc.orig or exc).__name__}") from exc
    except BaseException:
        _rollback_quietly(session)
        raise
    finally:
        session.close()


@contextmanager
def atomic(session: Session) -> Iterator[None]:
    """Commit once at the end of the block; roll back everything on any exception.

    Every storage function that writes runs in one, so a failure part-way leaves nothing behind.
    """
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


def _rollback_quietly(session: Session) -> None:
    try:
        session.rollback()
    except SQLAlchemyError:
        log.warning("rollback failed after an error; the connection is discarded", exc_info=True)


def ping(engine: Engine) -> None:
    """Run ``SELECT 1``; raise ``DatabaseUnavailable`` when the database does not answer."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(
            f"database at {engine.url!r} is unavailable: {type(exc).__name__}"
        ) from exc


async def run_storage(engine: Engine, work: Callable[..., T], /, **kwargs: Any) -> T:
    """``work(session=..., **kwargs)`` in a worker thread, in its own ``session_scope``: how
    async code (the bot service, the action server) calls a storage function off the loop."""

    def run() -> T:
        with session_scope(engine) as session:
            return work(session=session, **kwargs)

    return await asyncio.to_thread(run)
