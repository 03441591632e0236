"""`barri`: the project's command-line tool.

    barri serve          the bot service (web chat; later Telegram and the desk)
    barri actions        the action server (custom actions + NLG) for the engine
    barri db upgrade     apply the database migrations (a prestart step)
    barri run            engine, action server and bot service together (what `make run` starts)
"""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web
from pydantic import ValidationError

from bot.settings import Settings


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(p) for p in problem["loc"]) or "settings"
            print(f"barri: {where}: {problem['msg']}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="barri", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the bot service")
    commands.add_parser("actions", help="run the action server")
    db = commands.add_parser("db", help="database tasks")
    db.add_argument("task", choices=["upgrade"])
    run = commands.add_parser("run", help="run engine, action server and bot service")
    run.add_argument("--model", help="model archive (default: the newest in models/)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()

    if args.command == "serve":
        from bot.app import create_app

        web.run_app(create_app(settings), host=settings.bot_host, port=settings.bot_port, print=None)
    elif args.command == "actions":
        from dialogues.actions.server import create_actions_app

        web.run_app(create_actions_app(settings), host=settings.actions_host, port=settings.actions_port, print=None)
    elif args.command == "db":
        from storage.migrate import upgrade_database

        upgrade_database(settings.database_url)
    elif args.command == "run":
        from bot.devserver import run_all

        raise SystemExit(run_all(settings, model=args.model))


if __name__ == "__main__":
    main()
