"""The action server, a process of its own: ``barri-actions`` or ``python -m dialogues.actions``.

The engine calls it for custom actions (``/webhook``) and for every text it sends (``/nlg``);
both need RASA_TOKEN (see dialogues/actions/server.py).
"""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from common.logs import TEXT_FORMAT, access_log_options, configure_logging
from common.settings import load_settings
from dialogues.actions.server import create_actions_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="barri-actions", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format=TEXT_FORMAT)  # until the settings are read
    settings = load_settings("actions")
    configure_logging(args.log_level, settings)
    web.run_app(create_actions_app(settings), host=settings.actions_host, port=settings.actions_port, print=None,
                **access_log_options(settings))


if __name__ == "__main__":
    main()
