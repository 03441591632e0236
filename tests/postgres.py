"""The test PostgreSQL server (127.0.0.1:5432, database ``test``, trust authentication;
override with BARRI_TEST_POSTGRES_URL), and a schema of its own for each test that uses it,
selected through the connection's search_path and dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

POSTGRES_URL = os.environ.get("BARRI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def admin_engine() -> Engine:
    """An autocommit engine on the server; skips the test when it does not answer."""
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        engine.dispose()
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {exc.orig or exc}")
    return engine


def schema_url(admin: Engine, prefix: str = "barri_test") -> Iterator[str]:
    """Yield the URL of a fresh schema (``prefix_<random>``); drop it afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
