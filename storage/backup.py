"""A consistent copy of the app database while the service runs (``barri db backup FILE``).

SQLite: the online backup API, page by page, so writers are never blocked for long and the
copy is a whole database even if Barri writes meanwhile. PostgreSQL: ``pg_dump`` in its custom
format (one consistent snapshot; restore with ``pg_restore``), with the URL's credentials:
the password goes to ``pg_dump`` in its environment, never on its command line where any user
of the machine could read it. A URL that selects a schema (``?options=-csearch_path=NAME``)
dumps that schema only.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy.engine import URL

from storage.db import normalise_database_url, sqlite_file


class BackupError(RuntimeError):
    """The copy could not be made; the message says why."""


def backup_database(database_url: str | URL, destination: Path) -> str:
    """Copy the database to ``destination`` (refused if it exists); returns the method used."""
    if destination.exists():
        raise BackupError(f"{destination} exists: choose a new file name")
    url = normalise_database_url(database_url)
    if url.get_backend_name() == "sqlite":
        _backup_sqlite(url, destination)
        return "sqlite online backup"
    if url.get_backend_name() == "postgresql":
        _backup_postgres(url, destination)
        return "pg_dump (custom format)"
    raise BackupError(f"no backup method for {url.get_backend_name()} databases")


def _backup_sqlite(url: URL, destination: Path) -> None:
    source_file = sqlite_file(url)
    if source_file is None or not source_file.exists():
        raise BackupError("the SQLite database is not a file on this machine")
    partial = destination.with_name(destination.name + ".partial")
    source = sqlite3.connect(f"file:{source_file}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(partial)
        try:
            source.backup(target, pages=256)
        finally:
            target.close()
    except sqlite3.Error as error:
        partial.unlink(missing_ok=True)
        raise BackupError(f"SQLite backup failed: {error}") from error
    finally:
        source.close()
    partial.rename(destination)  # only a whole copy gets the name


def _backup_postgres(url: URL, destination: Path) -> None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError("pg_dump is not installed (Debian: apt-get install postgresql-client)")
    environment = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if url.password is not None:
        environment["PGPASSWORD"] = str(url.password)
    # libpq understands a plain postgresql:// URI; the query keeps sslmode and the like
    target = url.set(drivername="postgresql", password=None)
    arguments = [pg_dump, "--format=custom", "--no-owner", f"--file={destination}"]
    options = unquote(str(target.query.get("options", "")))
    if options.startswith("-csearch_path="):
        arguments.append(f"--schema={options.removeprefix('-csearch_path=').split(',')[0]}")
    arguments.append(f"--dbname={target.render_as_string(hide_password=False)}")
    result = subprocess.run(arguments, env=environment, capture_output=True, text=True, timeout=3600, check=False)
    if result.returncode != 0:
        destination.unlink(missing_ok=True)
        raise BackupError("pg_dump failed: " + (result.stderr.strip().splitlines() or ["no message"])[-1])
