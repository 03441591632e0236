"""`barri`: the project's command-line tool.

    barri serve          the bot service (web chat; later Telegram and the desk)
    barri actions        the action server (custom actions + NLG) for the engine
    barri db upgrade     apply the database migrations (a prestart step)
    barri user add NAME --role dispatcher|community|admin
                         create a staff user; prints its API token once
    barri user passwd NAME   set the dashboard password (BARRI_PASSWORD for scripts)
    barri user token NAME    replace the API token
    barri user link-telegram NAME TELEGRAM_ID
                         the dispatch group's buttons act in NAME's name for that Telegram user
    barri run            engine, action server and bot service together (what `make run` starts)
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from bot.settings import PROJECT_ROOT, SECRETS, MissingSecret, Settings

# the secrets each command needs (the others need none: `barri db upgrade` runs without any)
NEEDED_SECRETS = {"serve": ("secret_key", "rasa_token"), "actions": ("rasa_token",),
                  "run": ("secret_key", "rasa_token")}


def load_settings(command: str = "") -> Settings:
    """Settings from the environment; in a development checkout SECRET_KEY and RASA_TOKEN may
    come from var/secret_key and var/rasa_token, which `make run` generates. Refuses to go on
    without the secrets ``command`` needs."""
    overrides: dict[str, Any] = {}
    for name in SECRETS:
        dev_secret = PROJECT_ROOT / "var" / name
        if name.upper() not in os.environ and dev_secret.exists():
            overrides[name] = dev_secret.read_text().strip()
    try:
        settings = Settings(**overrides)
        settings.require(*NEEDED_SECRETS.get(command, ()))
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(p) for p in problem["loc"]) or "settings"
            print(f"barri: {where}: {problem['msg']}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None
    except MissingSecret as problem:
        print(f"barri: {problem}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None
    return settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="barri", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the bot service")
    commands.add_parser("actions", help="run the action server")
    db = commands.add_parser("db", help="database tasks")
    db.add_argument("task", choices=["upgrade"])
    user = commands.add_parser("user", help="staff accounts (dispatcher, community, admin)")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser("add", help="create a user and print its API token (shown once)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["dispatcher", "community", "admin"])
    passwd = user_commands.add_parser("passwd", help="set a user's dashboard password")
    passwd.add_argument("name")
    rotate = user_commands.add_parser("token", help="replace a user's API token (the old one stops working)")
    rotate.add_argument("name")
    link = user_commands.add_parser(
        "link-telegram", help="link a user to their Telegram account: the dispatch group's buttons act in their name")
    link.add_argument("name")
    link.add_argument("telegram_id", type=int, help="their numeric Telegram user id (the group's buttons show it)")
    unlink = user_commands.add_parser("unlink-telegram", help="the user's Telegram account no longer acts for them")
    unlink.add_argument("name")
    run = commands.add_parser("run", help="run engine, action server and bot service")
    run.add_argument("--model", help="model archive (default: the newest in models/)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(args.command)

    if args.command == "serve":
        from bot.app import create_app

        web.run_app(create_app(settings), host=settings.bot_host, port=settings.bot_port, print=None)
    elif args.command == "actions":
        from dialogues.actions.server import create_actions_app

        web.run_app(create_actions_app(settings), host=settings.actions_host, port=settings.actions_port, print=None)
    elif args.command == "db":
        from storage.migrate import upgrade_database

        upgrade_database(settings.database_url)
    elif args.command == "user":
        raise SystemExit(manage_user(settings, args))
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
                user, token = users.create_user(session=session, name=args.name, role=args.role)
                print(f"Created {user.role} {user.name}. API token (shown only now, keep it safe):")  # noqa: T201
                print(token)  # noqa: T201
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


if __name__ == "__main__":
    main()
