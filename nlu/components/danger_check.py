"""The emergency safety net as a Rasa component (the rules live in nlu/components/danger.py).

Runs last in the pipeline, after the FallbackClassifier: a message whose words show danger now
(gas, smoke, someone unconscious, a weapon, a crime in progress...), or a report whose whole
sentence reads like an emergency (nlu/components/type_classifier.py), but which DIET read as a
report, an answer, small talk or nothing at all gets the intent ``danger_check`` and a
``danger_sign`` entity per kind, so the dialogue asks whether anyone is in danger before
anything else. Runs inside the Rasa engine (Python 3.10): standard library and Rasa only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Text

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_NAME_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from nlu.components.base import MessageRule
from nlu.components.danger import ENTITY, SIGNS_FILE, DangerSigns, checked_intent
from nlu.components.faq_button import SELECTOR as FAQ_SELECTOR


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False
)
class DangerCheck(MessageRule):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"signs_file": str(SIGNS_FILE)}

    def __init__(self, config: Dict[Text, Any]) -> None:
        super().__init__(config)
        self.signs = DangerSigns.from_file(Path(config["signs_file"]))

    def process_message(self, message: Message) -> None:
        text = message.get(TEXT) or ""
        entities = list(message.get(ENTITIES, []))
        # a doubt an earlier component already raised (the sentence reader's read_as_emergency)
        raised = frozenset(e.get("value") for e in entities if e.get("entity") == ENTITY)
        kinds = self.signs.found(text) | raised
        if not kinds:
            return
        intent = dict(message.get(INTENT) or {})
        name = intent.get(INTENT_NAME_KEY)
        answer = ((message.get(FAQ_SELECTOR) or {}).get("faq") or {}).get("response") or {}
        checked = checked_intent(name, kinds, answer.get("intent_response_key"))
        if checked != name:
            message.set(INTENT, {**intent, INTENT_NAME_KEY: checked}, add_to_output=True)
        entities += [{"entity": ENTITY, "value": kind, "start": 0, "end": len(text),
                      "extractor": self.__class__.__name__} for kind in sorted(kinds - raised)]
        message.set(ENTITIES, entities, add_to_output=True)
