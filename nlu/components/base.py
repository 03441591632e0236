"""What Barri's untrained NLU components share: built from their config alone, they apply a
rule to every message the engine parses, except button payloads (which say what they mean).
Runs inside the Rasa engine (Python 3.10): standard library and Rasa only."""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message


class MessageRule(GraphComponent):
    """Subclasses take their config in ``__init__`` and implement ``process_message``."""

    def __init__(self, config: Dict[Text, Any]) -> None:
        self.config = config

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "MessageRule":
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            if not (message.get(TEXT) or "").startswith("/"):
                self.process_message(message)
        return messages

    def process_message(self, message: Message) -> None:
        raise NotImplementedError
