"""Fixtures for the storage tests: every test runs on SQLite and on PostgreSQL.

SQLite lives in the test's tmp_path. PostgreSQL is the server at 127.0.0.1:5432 (database
``test``, trust authentication; override with BARRI_TEST_POSTGRES_URL); each test gets its own
freshly created schema, selected through the connection's search_path and dropped afterwards,
so tests never see each other's rows. Tables are always created by the Alembic migration.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from storage.db import create_db_engine
from storage.migrate import upgrade_database

POSTGRES_URL = os.environ.get(
    "BARRI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An autocommit engine on the test PostgreSQL server; skips when it does not answer."""
    engine = create_engine(
        POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        engine.dispose()
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {exc.orig or exc}")
    yield engine
    engine.dispose()


def _postgres_schema_url(postgres_admin: Engine) -> Iterator[str]:
    schema = f"barri_test_{uuid.uuid4().hex[:16]}"
    with postgres_admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with postgres_admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'barri.db'}"
    else:
        yield from _postgres_schema_url(request.getfixturevalue("postgres_admin"))


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
