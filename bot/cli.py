"""`barri`: the project's command-line tool.

    barri serve          the bot service (channels, desk, staff API, Open311, outbox, scheduler)
    barri db upgrade     apply the database migrations (a prestart step)
    barri db backup FILE a consistent copy of the database while it runs
    barri user add NAME --role dispatcher|community|admin [--lang en|es|ca]
                         create a staff user; prints its API token once
    barri user list          every staff user, their role, language and state
    barri user passwd NAME   set the dashboard password (BARRI_PASSWORD for scripts)
    barri user token NAME    replace the API token
    barri user role NAME ROLE    give a user another role
    barri user lang NAME LANG    the language of a user's desk
    barri user deactivate NAME   refuse their token and password; ends their desk sessions
    barri outbox retry-failed [--alert ID]   send failed messages again
    barri retention --dry-run    whose personal data the next sweeps would erase, and why
    barri user link-telegram NAME TELEGRAM_ID
                         the dispatch group's buttons act in NAME's name for that Telegram user
    barri run            engine, action server and bot service together (what `make run` starts)

The action server is a process of its own: `barri-actions` (python -m dialogues.actions).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from common.logs import TEXT_FORMAT, access_log_options, configure_logging
from common.settings import SUPPORTED_LOCALES, Settings, load_settings

ROLES = ("dispatcher", "community", "admin")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="barri", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the bot service")
    db = commands.add_parser("db", help="database tasks")
    db.add_argument("task", choices=["upgrade", "backup"])
    db.add_argument("file", nargs="?", help="backup: the new file to write")
    user = commands.add_parser("user", help="staff accounts (dispatcher, community, admin)")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser("add", help="create a user and print its API token (shown once)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--lang", choices=SUPPORTED_LOCALES, help="language of their desk (default: DEFAULT_LOCALE)")
    user_commands.add_parser("list", help="every user with role, language, state and last sign-in")
    passwd = user_commands.add_parser("passwd", help="set a user's dashboard password")
    passwd.add_argument("name")
    rotate = user_commands.add_parser("token", help="replace a user's API token (the old one stops working)")
    rotate.add_argument("name")
    role = user_commands.add_parser("role", help="give a user another role (applies to their next request)")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    lang = user_commands.add_parser("lang", help="the language of a user's desk")
    lang.add_argument("name")
    lang.add_argument("lang", choices=SUPPORTED_LOCALES)
    deactivate = user_commands.add_parser("deactivate", help="refuse their token and password, end their sessions")
    deactivate.add_argument("name")
    outbox = commands.add_parser("outbox", help="messages Barri sends on its own")
    outbox_commands = outbox.add_subparsers(dest="outbox_command", required=True)
    retry = outbox_commands.add_parser("retry-failed", help="put failed messages back in the queue")
    retry.add_argument("--alert", help="only the messages of this alert (its id)")
    retention = commands.add_parser("retention", help="personal data past RETENTION_DAYS")
    retention.add_argument("--dry-run", action="store_true", required=True,
                           help="list who the sweeps would erase and why (the scheduler does the erasing)")
    link = user_commands.add_parser(
        "link-telegram", help="link a user to their Telegram account: the dispatch group's buttons act in their name")
    link.add_argument("name")
    link.add_argument("telegram_id", type=int, help="their numeric Telegram user id (the group's buttons show it)")
    unlink = user_commands.add_parser("unlink-telegram", help="the user's Telegram account no longer acts for them")
    unlink.add_argument("name")
    run = commands.add_parser("run", help="run engine, action server and bot service")
    run.add_argument("--model", help="model archive (default: the newest in models/)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format=TEXT_FORMAT)  # until the settings are read
    settings = load_settings(args.command)
    configure_logging(args.log_level, settings)

    if args.command == "serve":
        from bot.app import create_app
        from bot.observability import metrics_listener

        app = create_app(settings)
        if settings.metrics_port:
            app.cleanup_ctx.append(metrics_listener(app, "127.0.0.1", settings.metrics_port))
        web.run_app(app, host=settings.bot_host, port=settings.bot_port, print=None,
                    **access_log_options(settings))
    elif args.command == "db" and args.task == "upgrade":
        from storage.migrate import upgrade_database

        upgrade_database(settings.database_url)
    elif args.command == "db":
        raise SystemExit(backup(settings, args.file))
    elif args.command == "user":
        raise SystemExit(manage_user(settings, args))
    elif args.command == "outbox":
        raise SystemExit(retry_failed(settings, args.alert))
    elif args.command == "retention":
        raise SystemExit(retention_dry_run(settings))
    elif args.command == "run":
        from bot.devserver import run_all

        raise SystemExit(run_all(settings, model=args.model))


def manage_user(settings: Settings, args: argparse.Namespace) -> int:
    from storage import users
    from storage.db import create_db_engine, session_scope
    from storage.errors import StorageError

    engine = create_db_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            if args.user_command == "add":
                user, token = users.create_user(session=session, name=args.name, role=args.role, locale=args.lang)
                print(f"Created {user.role} {user.name}. API token (shown only now, keep it safe):")  # noqa: T201
                print(token)  # noqa: T201
            elif args.user_command == "list":
                print(user_table(users.list_users(session=session), settings))  # noqa: T201
            elif args.user_command == "role":
                previous = users.set_role(session=session, name=args.name, role=args.role)
                print(f"{args.name}: {previous} -> {args.role}.")  # noqa: T201
            elif args.user_command == "lang":
                users.set_locale(session=session, name=args.name, locale=args.lang)
                print(f"{args.name}: the desk is now in {args.lang}.")  # noqa: T201
            elif args.user_command == "deactivate":
                ended = users.deactivate_user(session=session, name=args.name)
                print(f"{args.name} deactivated: API token refused, {ended} desk session(s) ended.")  # noqa: T201
            elif args.user_command == "token":
                print(users.rotate_token(session=session, name=args.name))  # noqa: T201
            elif args.user_command in ("link-telegram", "unlink-telegram"):
                telegram_id = args.telegram_id if args.user_command == "link-telegram" else None
                users.link_telegram(session=session, name=args.name, telegram_id=telegram_id)
                print(f"Telegram account {'linked to' if telegram_id else 'unlinked from'} {args.name}.")  # noqa: T201
            elif args.user_command == "passwd":
                password = os.environ.get("BARRI_PASSWORD") or getpass.getpass(f"New password for {args.name}: ")
                if not os.environ.get("BARRI_PASSWORD") and password != getpass.getpass("Again: "):
                    print("barri: the passwords differ", file=sys.stderr)  # noqa: T201
                    return 1
                users.set_password(session=session, name=args.name, password=password)
                print(f"Password set for {args.name}.")  # noqa: T201
    except (ValueError, StorageError) as problem:
        print(f"barri: {problem}", file=sys.stderr)  # noqa: T201
        return 1
    finally:
        engine.dispose()
    return 0


def user_table(rows: list[Any], settings: Settings) -> str:
    """The staff accounts as an aligned table (no secrets: hashes are never shown)."""
    lines = [("name", "role", "language", "state", "password", "last sign-in")]
    for user in rows:
        last = user.last_login_at.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M") if user.last_login_at else "-"
        lines.append((user.name, user.role, user.locale or f"({settings.default_locale})",
                      "active" if user.active else "deactivated", "set" if user.password_hash else "none", last))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def backup(settings: Settings, file: str | None) -> int:
    from storage.backup import BackupError, backup_database

    if not file:
        print("barri: db backup needs the file to write, e.g. barri db backup barri-$(date +%F).dump",  # noqa: T201
              file=sys.stderr)
        return 2
    try:
        method = backup_database(settings.database_url, Path(file))
    except BackupError as problem:
        print(f"barri: {problem}", file=sys.stderr)  # noqa: T201
        return 1
    print(f"Backed up to {file} ({method}, {Path(file).stat().st_size:,} bytes).")  # noqa: T201
    return 0


def retry_failed(settings: Settings, alert: str | None) -> int:
    from storage import outbox
    from storage.db import create_db_engine, session_scope

    try:
        alert_id = uuid.UUID(alert) if alert else None
    except ValueError:
        print(f"barri: {alert!r} is not an alert id", file=sys.stderr)  # noqa: T201
        return 2
    engine = create_db_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            count = outbox.retry_failed(session=session, alert_id=alert_id)
    finally:
        engine.dispose()
    print(f"{count} failed message(s) queued again; the outbox worker sends them now.")  # noqa: T201
    return 0


def retention_dry_run(settings: Settings) -> int:
    """Whose personal data the retention sweeps would erase, named by case references only."""
    from storage import followups
    from storage.db import create_db_engine, session_scope
    from storage.models import utcnow
    from storage.tracker import conversation_last_active

    engine, tracker = create_db_engine(settings.database_url), create_db_engine(settings.tracker_store_url)
    retention = timedelta(days=settings.retention_days)
    now = utcnow()
    try:
        with session_scope(engine) as session:
            due = followups.retention_due(session=session, now=now, retention=retention, limit=None)
        erase: list[tuple[Any, datetime | None]] = []
        keep: list[tuple[Any, datetime | None]] = []
        for item in due:
            talked = conversation_last_active(tracker=tracker, sender_id=item.sender_id)
            (keep if talked is not None and talked > now - retention else erase).append((item, talked))
    finally:
        engine.dispose()
        tracker.dispose()

    def day(moment: datetime) -> str:
        return moment.astimezone(settings.zone).strftime("%Y-%m-%d")

    print(f"Retention: {settings.retention_days:g} days (RETENTION_DAYS); nothing is erased by this command.")  # noqa: T201
    print(f"{len(erase)} reporter(s) would be erased:")  # noqa: T201
    for item, _ in erase:
        print(f"  cases {', '.join(item.case_refs)}: every case finished, the last on {day(item.last_closed_at)} "  # noqa: T201
              f"({(now - item.last_closed_at).days} days ago); last message {day(item.last_seen_at)}")
    if keep:
        print(f"{len(keep)} reporter(s) kept: they still talk with the assistant:")  # noqa: T201
        for item, talked in keep:
            print(f"  cases {', '.join(item.case_refs)}: last conversation {day(talked) if talked else '-'}")  # noqa: T201
    return 0


if __name__ == "__main__":
    main()
