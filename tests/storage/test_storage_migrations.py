"""The Alembic migration: it creates exactly the tables of storage.models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables)
from storage.db import create_db_engine
from storage.migrate import ALEMBIC_INI, alembic_config, upgrade_database

TABLES = {
    "reporters", "cases", "case_events", "attachments", "attachment_data", "audit_log", "staff_users",
    "staff_sessions", "subscriptions", "alerts", "outbox", "survey_responses", "leases",
    "pending_messages",
}


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def _diff(url: str) -> list[object]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def test_alembic_ini_ships_inside_the_package() -> None:
    assert ALEMBIC_INI.is_file()
    assert (ALEMBIC_INI.parent / "migrations" / "env.py").is_file()
    assert (ALEMBIC_INI.parent / "migrations" / "script.py.mako").is_file()


def test_single_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert heads == ["0008"]


def test_upgrade_creates_all_tables(migrated_url: str) -> None:
    engine = create_db_engine(migrated_url)
    try:
        assert set(inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
        with engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version"))
            assert version.scalar_one() == _head()
    finally:
        engine.dispose()


def test_migration_matches_models(migrated_url: str) -> None:
    assert _diff(migrated_url) == []


def test_models_differ_from_an_empty_database(database_url: str) -> None:
    # Guards the test above: compare_metadata does see missing tables.
    diff = _diff(database_url)
    added = {op[1].name for op in diff if isinstance(op, tuple) and op[0] == "add_table"}
    assert added == TABLES


def test_upgrade_is_idempotent_and_works_from_any_directory(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    upgrade_database(database_url)
    upgrade_database(database_url)
    assert _diff(database_url) == []


def test_downgrade_to_base_and_back(migrated_url: str) -> None:
    command.downgrade(alembic_config(migrated_url), "base")
    engine = create_db_engine(migrated_url)
    try:
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()
    upgrade_database(migrated_url)
    assert _diff(migrated_url) == []


def test_url_from_environment(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    config = alembic_config(database_url)
    del config.attributes["database_url"]
    command.upgrade(config, "head")
    assert _diff(database_url) == []


def test_alembic_check_ignores_foreign_tables(migrated_url: str) -> None:
    # Rasa's SQL tracker store may share the database; autogenerate must never drop it.
    engine = create_db_engine(migrated_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id TEXT)"))
    finally:
        engine.dispose()
    command.check(alembic_config(migrated_url))  # raises when autogenerate finds differences


def test_migration_creates_staff_users_as_in_the_models(migrated_url: str) -> None:
    assert _diff(migrated_url) == []
    engine = create_db_engine(migrated_url)
    try:
        indexes = {i["name"]: i["unique"] for i in inspect(engine).get_indexes("staff_users")}
        assert indexes == {"ix_staff_users_name": True, "ix_staff_users_token_hash": True,
                           "ix_staff_users_telegram_id": True}
        assert inspect(engine).get_pk_constraint("staff_users")["name"] == "pk_staff_users"
    finally:
        engine.dispose()


def test_staff_users_revision_downgrades_and_upgrades(migrated_url: str) -> None:
    command.downgrade(alembic_config(migrated_url), "0001")
    engine = create_db_engine(migrated_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert "staff_users" not in tables
    assert "cases" in tables
    upgrade_database(migrated_url)
    assert _diff(migrated_url) == []
