"""Alembic environment for Barri: migrations of ``SQLModel.metadata`` (``storage.models``).

The database URL comes, in this order, from ``config.attributes["database_url"]``,
``-x url=...`` on the command line, or the ``DATABASE_URL`` environment variable. It is read
inside the functions below, never at import time.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from storage.db import create_db_engine, normalise_database_url
from storage.models import TZDateTime

config = context.config
target_metadata = SQLModel.metadata


def _database_url() -> str:
    url = config.attributes.get("database_url")
    if not url:
        url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        url = os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("no database URL: pass -x url=... or set DATABASE_URL")
    return str(url)


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render TZDateTime as the plain type it stores, so revisions need not import storage."""
    if type_ == "type" and isinstance(obj, TZDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Only Barri's tables: others sharing the database (Rasa's tracker store) are left alone."""
    if type_ == "table":
        return name in target_metadata.tables
    return True


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        render_item=_render_item,
        include_name=_include_name,
        **kwargs,
    )


def run_migrations_offline() -> None:
    url = normalise_database_url(_database_url())
    _configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_db_engine(_database_url())
    try:
        with engine.connect() as connection:
            _configure(
                connection=connection,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def main() -> None:
    if config.config_file_name is not None and not config.attributes.get("skip_logging_config"):
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()


main()
