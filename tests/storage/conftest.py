"""Fixtures for the storage tests: every test runs on SQLite and on PostgreSQL.

SQLite lives in the test's tmp_path. PostgreSQL is the server at 127.0.0.1:5432 (database
``test``, trust authentication; override with BARRI_TEST_POSTGRES_URL); each test gets its own
freshly created schema, selected through the connection's search_path and dropped afterwards,
so tests never see each other's rows. Tables are always created by the Alembic migration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from storage.db import create_db_engine
from storage.migrate import upgrade_database
from tests.postgres import admin_engine, schema_url


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An autocommit engine on the test PostgreSQL server; skips when it does not answer."""
    engine = admin_engine()
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'barri.db'}"
    else:
        yield from schema_url(request.getfixturevalue("postgres_admin"))


@pytest.fixture
def migrated_url(database_url: str) -> str:
    upgrade_database(database_url)
    return database_url


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = create_db_engine(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture
def new_session(engine: Engine) -> Iterator[Callable[[], Session]]:
    """Open independent sessions (closed at teardown), e.g. to read back what was stored."""
    sessions: list[Session] = []

    def factory() -> Session:
        session = Session(engine, expire_on_commit=False)
        sessions.append(session)
        return session

    yield factory
    for session in sessions:
        session.close()


@pytest.fixture
def session(new_session: Callable[[], Session]) -> Session:
    return new_session()
