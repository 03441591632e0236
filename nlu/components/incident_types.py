"""Map incident words to Barri's nine categories.

DIET finds the words that name an incident ("me han mangado", "pintades", "mugged") but the
EntitySynonymMapper only normalises spellings it saw in training. This component maps any
``incident_type`` value that is not yet one of our categories with a per-language lexicon
of stems (nlu/lexicon/<lang>.yml), and adds the entity when DIET missed it in a report.

Runs inside the Rasa engine (Python 3.10): standard library and Rasa only.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Text, Tuple

import yaml
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message

CATEGORIES = (
    "theft", "vandalism", "noise", "harassment", "assault",
    "drugs", "suspicious_activity", "traffic", "incivility",
)
ENTITY = "incident_type"
# Intents in which a message describes an incident, so a lexicon hit may add the entity.
INCIDENT_INTENTS = {"report_incident", "emergency", "inform"}
LEXICON_DIR = Path(__file__).resolve().parent.parent / "lexicon"


def fold(text: Text) -> Text:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


class Lexicon:
    """Stems and phrases per category; a trailing * means "starts with"."""

    def __init__(self, entries: List[Tuple[Text, Text]]) -> None:
        self.words: Dict[Text, set] = {}
        self.prefixes: List[Tuple[Text, Text]] = []
        self.phrases: List[Tuple[Text, Text]] = []
        for category, pattern in entries:
            folded = fold(pattern.rstrip("*"))
            if not folded:
                continue
            if " " in folded:
                self.phrases.append((folded, category))
            elif pattern.endswith("*"):
                self.prefixes.append((folded, category))
            else:
                self.words.setdefault(folded, set()).add(category)

    @classmethod
    def from_folder(cls, folder: Path) -> "Lexicon":
        entries: List[Tuple[Text, Text]] = []
        for path in sorted(folder.glob("*.yml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for category, patterns in data.items():
                if category not in CATEGORIES:
                    raise ValueError(f"{path}: unknown incident type {category!r}")
                entries.extend((category, str(p)) for p in patterns or [])
        return cls(entries)

    def categories(self, text: Text) -> Counter:
        """How many lexicon entries of each category the text contains."""
        folded = fold(text)
        tokens = folded.split()
        hits: Counter = Counter()
        padded = f" {folded} "
        for phrase, category in self.phrases:
            if f" {phrase} " in padded:
                hits[category] += 2
        for token in tokens:
            for category in self.words.get(token, ()):
                hits[category] += 1
            for prefix, category in self.prefixes:
                if token.startswith(prefix):
                    hits[category] += 1
        return hits

    def span_of(self, text: Text, category: Text) -> Tuple[int, int]:
        """Where in the original text the first word of this category stands."""
        for match in re.finditer(r"\w+", text):
            token = fold(match.group(0))
            if category in self.words.get(token, ()) or any(
                token.startswith(prefix) for prefix, cat in self.prefixes if cat == category
            ):
                return match.start(), match.end()
        return 0, len(text)

    def best(self, text: Text) -> Optional[Text]:
        hits = self.categories(text).most_common(2)
        if not hits:
            return None
        if len(hits) > 1 and hits[0][1] == hits[1][1]:
            return None  # a tie is not a decision
        return hits[0][0]


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False
)
class IncidentTypeNormaliser(GraphComponent, EntityExtractorMixin):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"lexicon_dir": str(LEXICON_DIR)}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self.lexicon = Lexicon.from_folder(Path(config["lexicon_dir"]))

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "IncidentTypeNormaliser":
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            self._normalise(message)
        return messages

    def _normalise(self, message: Message) -> None:
        text = message.get(TEXT) or ""
        if text.startswith("/"):
            return  # a button payload carries its own entities
        entities = list(message.get(ENTITIES, []))
        kept = []
        for entity in entities:
            if entity.get("entity") != ENTITY or entity.get("value") in CATEGORIES:
                kept.append(entity)
                continue
            category = self.lexicon.best(str(entity.get("value", ""))) or self.lexicon.best(text)
            if category:
                kept.append({**entity, "value": category, "processors": [self.name]})
        intent = (message.get(INTENT) or {}).get("name")
        if intent in INCIDENT_INTENTS and not any(e.get("entity") == ENTITY for e in kept):
            category = self.lexicon.best(text)
            if category:
                start, end = self.lexicon.span_of(text, category)
                kept.append(
                    {
                        "entity": ENTITY,
                        "value": category,
                        "start": start,
                        "end": end,
                        "confidence_entity": 0.5,
                        "extractor": self.name,
                    }
                )
        message.set(ENTITIES, kept, add_to_output=True)
