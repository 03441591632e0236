"""Rasa's ResponseSelector, run only where its answer can be used.

The FAQ answer is read only when a message's intent is ``faq`` (``utter_faq``, the safety
net's 112 exception) or when it is a FAQ button (``/faq/how_it_works``, which
nlu/components/faq_button.py answers from the selector's ranking). Rasa runs the selector's
TensorFlow model on every message regardless, about as much CPU again as a third of DIET, for
answers thrown away on every report, place, time or button. Trained and stored exactly as the
ResponseSelector (the same class underneath); a FAQ question gets the very same answer.
Runs inside the Rasa engine (Python 3.10).
"""

from __future__ import annotations

from typing import List

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class FaqResponseSelector(ResponseSelector):
    def wants_answer(self, message: Message) -> bool:
        retrieval_intent = self.component_config.get("retrieval_intent")
        intent = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
        return intent == retrieval_intent or (message.get(TEXT) or "").startswith(f"/{retrieval_intent}/")

    def process(self, messages: List[Message]) -> List[Message]:
        super().process([message for message in messages if self.wants_answer(message)])
        return messages
