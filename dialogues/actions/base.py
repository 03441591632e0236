"""Shared pieces of Barri's custom actions."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from common.responses import render
from dialogues.actions.context import Services, conversation_locale
from storage.db import run_storage

T = TypeVar("T")

# Intents that interrupt a form instead of answering its question.
INTERRUPTIONS = frozenset(
    {"cancel", "faq", "emergency", "change_language", "forget_me", "human_handoff",
     "bot_challenge", "check_status"}
)


def channel_of(sender_id: str) -> str:
    return sender_id.split(":", 1)[0] if ":" in sender_id else "web"


def latest_entities(tracker: Tracker) -> dict[str, Any]:
    return {e["entity"]: e.get("value") for e in tracker.latest_message.get("entities", [])}


def recalled_message(tracker: Tracker) -> tuple[str, dict[str, Any]]:
    """The citizen's own account that a report starts from: the latest message, or, when that
    is the "No, I want to report it" button under the danger question, the message that
    raised the question (it holds the type, the place and the time)."""
    text = latest_text(tracker)
    if not text.startswith("/"):
        return text, latest_entities(tracker)
    users = [e for e in tracker.events if e.get("event") == "user"]
    if len(users) >= 2:
        previous = users[-2].get("parse_data") or {}
        if (previous.get("intent") or {}).get("name") == "danger_check":
            entities = {e["entity"]: e.get("value") for e in previous.get("entities", [])}
            return (users[-2].get("text") or "").strip(), entities
    return text, {}


def latest_intent(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


def latest_text(tracker: Tracker) -> str:
    return (tracker.latest_message.get("text") or "").strip()


def received_at(tracker: Tracker) -> datetime | None:
    """When the citizen wrote the latest message, as stamped by the bot service: a message
    kept during an engine outage and replayed later is read against this, not the replay."""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            stamp = (event.get("metadata") or {}).get("received_at")
            try:
                written = datetime.fromisoformat(str(stamp)) if stamp else None
            except ValueError:
                return None
            return written if written is not None and written.tzinfo is not None else None
    return None


class BarriAction(Action):
    """An action with its services injected and helpers to speak the citizen's language."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def locale(self, tracker: Tracker) -> str:
        return conversation_locale(tracker.slots, tracker.events, self.services.catalogs)

    def now(self, tracker: Tracker) -> datetime:
        """The moment the citizen's latest message was written (else the clock)."""
        clock = self.services.clock()
        written = received_at(tracker)
        return written if written is not None and written <= clock else clock

    def t(self, tracker: Tracker, message: str, **args: Any) -> str:
        return self.services.catalogs.gettext(message, self.locale(tracker), **args)

    def say(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        name: str,
        *,
        locale: str | None = None,
        buttons: list[dict[str, str]] | None = None,
        **args: Any,
    ) -> None:
        """Say response ``name`` in the conversation's language (or ``locale``)."""
        settings = self.services.settings
        defaults = {"city": settings.city_name, "max_photos": settings.max_photos_per_report}
        message = render(
            name, self.services.catalogs, locale or self.locale(tracker), **{**defaults, **args}
        )
        dispatcher.utter_message(
            text=message["text"],
            buttons=buttons if buttons is not None else message.get("buttons", []),
            json_message=message.get("custom"),
        )

    def storage_failed(self, dispatcher: CollectingDispatcher, tracker: Tracker, doing: str) -> list[EventType]:
        """Log the storage error being handled (``doing``: "subscribe") and tell the citizen it
        went wrong on our side; no events, for the actions that simply stop there."""
        logging.getLogger(type(self).__module__).exception("could not %s", doing)
        self.say(dispatcher, tracker, "utter_technical_problem")
        return []

    async def in_db(self, work: Callable[..., T], **kwargs: Any) -> T:
        """Run a storage function in a worker thread with its own session."""

        return await run_storage(self.services.db, work, **kwargs)
