"""Live conversation: while a dispatcher talks with a citizen, the citizen's typed messages
go to the case (and the dashboard) instead of the assistant. Buttons and commands still
reach the assistant, so the citizen is never stuck."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine

from bot.channels.base import IncomingMessage
from storage.db import session_scope
from storage.desk import add_chat_message, live_case_for_sender
from storage.errors import StorageError

log = logging.getLogger(__name__)


class LiveChat:
    def __init__(self, db: Engine) -> None:
        self._db = db

    async def take(self, message: IncomingMessage) -> bool:
        """Keep the message for the dispatcher if its sender is in a live chat."""
        if message.text.startswith("/"):
            return False

        def route() -> bool:
            with session_scope(self._db) as session:
                case = live_case_for_sender(session=session, sender_id=message.sender_id)
                if case is None:
                    return False
                add_chat_message(session=session, case=case, text=message.text, actor="citizen", from_citizen=True)
                return True

        try:
            return await asyncio.to_thread(route)
        except StorageError:
            # the database is down: the assistant answers instead of a silent loss
            log.warning("live chat check failed; the message goes to the assistant")
            return False
