"""Map incident words to Barri's nine categories.

DIET finds the words that name an incident ("me han mangado", "pintades", "mugged") but the
EntitySynonymMapper only normalises spellings it saw in training. This component maps any
``incident_type`` value that is not yet one of our categories with a per-language lexicon
of stems (nlu/lexicon/<lang>.yml), corrects DIET where the lexicon reads the same words
otherwise, and adds the entity when DIET missed it (nlu/components/lexicon.py).

Runs inside the Rasa engine (Python 3.10): standard library and Rasa only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Text

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message

from nlu.components.base import MessageRule
from nlu.components.lexicon import LEXICON_DIR, Lexicon, normalise_entities


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False
)
class IncidentTypeNormaliser(MessageRule, EntityExtractorMixin):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"lexicon_dir": str(LEXICON_DIR)}

    def __init__(self, config: Dict[Text, Any]) -> None:
        super().__init__(config)
        self.lexicon = Lexicon.from_folder(Path(config["lexicon_dir"]))

    def process_message(self, message: Message) -> None:
        text = message.get(TEXT) or ""
        intent = (message.get(INTENT) or {}).get("name")
        entities = normalise_entities(
            text, intent, message.get(ENTITIES, []), self.lexicon, self.name
        )
        message.set(ENTITIES, entities, add_to_output=True)
