"""Run Alembic migrations from Python (the prestart step), from any working directory."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"


def alembic_config(database_url: str) -> Config:
    """An Alembic ``Config`` for Barri's migrations pointed at ``database_url``."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option(
        "script_location", str(ALEMBIC_INI.parent / "migrations").replace("%", "%%")
    )
    config.attributes["database_url"] = database_url
    # Leave the application's logging alone when migrating from Python.
    config.attributes["skip_logging_config"] = True
    return config


def upgrade_database(database_url: str) -> None:
    """Bring the database at ``database_url`` to the latest revision (``alembic upgrade head``)."""
    command.upgrade(alembic_config(database_url), "head")
