"""FAQ buttons (``/faq/how_it_works``) answered as the FAQ they name.

The welcome message's "How does it work?" and "What can I report?" buttons and Telegram's
/help send ``/faq/<answer>``. Rasa's button handling (RegexMessageHandler) only knows domain
intents, and ``faq/how_it_works`` is not one (the domain has ``faq``), so the payload was read
as text and came out as ``nlu_fallback``. Here such a payload gets the intent ``faq`` and that
answer in ``response_selector.faq``, where ``utter_faq`` reads it; an answer the selector does
not know is left alone. Runs after the FallbackClassifier. Runs inside the Rasa engine
(Python 3.10): standard library and Rasa only.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

SELECTOR = "response_selector"


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False
)
class FaqButton(GraphComponent):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"retrieval_intent": "faq"}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self.config = {**self.get_default_config(), **config}
        self.payload = re.compile(rf"^/{re.escape(self.config['retrieval_intent'])}/(\w+)\s*$")

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "FaqButton":
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        intent = self.config["retrieval_intent"]
        for message in messages:
            match = self.payload.match(message.get(TEXT) or "")
            selector = dict(message.get(SELECTOR) or {})
            chosen = selector.get(intent)
            if not match or not chosen:
                continue
            key = f"{intent}/{match.group(1)}"
            known = {entry.get("intent_response_key") for entry in chosen.get("ranking") or []}
            if key not in known:
                continue  # not an answer the selector was trained on: no such response
            # the domain's placeholder text: the NLG endpoint renders utter_action
            response = {"responses": [{TEXT: f"utter_{key}"}], "confidence": 1.0,
                        "intent_response_key": key, "utter_action": f"utter_{key}"}
            ranking = [{"intent_response_key": key, "confidence": 1.0},
                       *[{**entry, "confidence": 0.0} for entry in chosen.get("ranking") or []
                         if entry.get("intent_response_key") != key]]
            selector[intent] = {**chosen, "response": response, "ranking": ranking}
            message.set(SELECTOR, selector, add_to_output=True)
            message.set(INTENT, {INTENT_NAME_KEY: intent, "confidence": 1.0}, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [{INTENT_NAME_KEY: intent, "confidence": 1.0}], add_to_output=True)
        return messages
