"""Live conversation: while a dispatcher talks with a citizen, the citizen's typed messages
go to the case (and the dashboard) instead of the assistant. Buttons and commands still
reach the assistant, so the citizen is never stuck."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from bot.channels.base import IncomingMessage
from storage.db import run_storage
from storage.desk import take_citizen_message
from storage.errors import StorageError

log = logging.getLogger(__name__)


class LiveChat:
    def __init__(self, db: Engine) -> None:
        self._db = db

    async def take(self, message: IncomingMessage) -> bool:
        """Keep the message for the dispatcher if its sender is in a live chat."""
        if message.text.startswith("/"):
            return False

        try:
            return await run_storage(self._db, take_citizen_message, sender_id=message.sender_id, text=message.text)
        except StorageError:
            # the database is down: the assistant answers instead of a silent loss
            log.warning("live chat check failed; the message goes to the assistant")
            return False
