"""The incident type read from the whole message, where no word names it.

DIET tags the words that name an incident ("me robaron", "pintadas"); a message that only
describes one ("ripped the chain off my neck and ran", "the car alarm has gone on for hours")
often has no such words, and DIET tags nothing. This component learns the type from whole
training sentences (every report or emergency annotated with one type): hashed character and
word n-grams of the folded text, a logistic regression. It only fills a type that is missing,
and only when it is sure (``threshold``): an unsure type is left to the form, which asks.

It types reports only: never an emergency, nor a message that shows danger now (the signs of
nlu/components/danger.py, which DangerCheck turns into ``danger_check``). Danger is told with
words no report uses (a smell of gas read as ``drugs`` at p 0.69), a guessed type would be
wrong there more often than right, and the report that may follow an emergency recalls the
message's entities: the form asks for a type instead.

Runs inside the Rasa engine (Python 3.10) with the libraries Rasa already brings (scikit-learn,
NumPy). The model is stored as plain arrays (no pickle): the hashing needs no vocabulary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Text, Tuple

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from scipy.sparse import hstack
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression

from nlu.components.danger import SIGNS_FILE, DangerSigns
from nlu.components.lexicon import CATEGORIES, ENTITY, fold

# The intents whose messages tell an incident: trained on both, types only reports.
INCIDENT_INTENTS = frozenset({"report_incident", "emergency"})
TYPED_INTENT = "report_incident"
FEATURES = 2 ** 16  # per analyser: small enough to store, few collisions for ~8,000 sentences


# Hashing needs no vocabulary: the same two vectorisers serve training and every message.
_CHARS = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 5), n_features=FEATURES,
                           alternate_sign=False, norm="l2", preprocessor=fold)
_WORDS = HashingVectorizer(analyzer="word", ngram_range=(1, 2), n_features=FEATURES,
                           alternate_sign=False, norm="l2", preprocessor=fold)


def featurize(texts: List[Text]) -> Any:
    return hstack([_CHARS.transform(texts), _WORDS.transform(texts)]).tocsr()


def sentence_type(example: Message) -> Optional[Text]:
    """The one incident type an example is annotated with (None for none or several)."""
    values = {e.get("value") for e in example.get(ENTITIES, []) if e.get("entity") == ENTITY}
    return values.pop() if len(values) == 1 and values <= set(CATEGORIES) else None


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=True
)
class IncidentTypeClassifier(GraphComponent, EntityExtractorMixin):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        # Chosen on the held-out described reports of nlu/dev (never the sealed sets): with DIET
        # alone 50% of their types right, 1% wrong, 49% missing; with this, 77% right, 6% wrong
        # and 17% missing (a higher threshold trades right types for fewer wrong ones).
        return {"threshold": 0.5, "C": 10.0, "signs_file": str(SIGNS_FILE)}

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 classes: Optional[List[Text]] = None, coef: Any = None, intercept: Any = None) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.classes = classes or []
        self.coef = coef
        self.intercept = intercept
        self.signs = DangerSigns.from_file(Path(self.config["signs_file"]))

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "IncidentTypeClassifier":
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        texts, labels = [], []
        for example in training_data.intent_examples:
            label = sentence_type(example) if example.get(INTENT) in INCIDENT_INTENTS else None
            if label:
                texts.append(example.get(TEXT))
                labels.append(label)
        if len(set(labels)) >= 2:
            # newton-cg: the same model as the default lbfgs (the same decisions on 810 held-out
            # reports, probabilities within 0.001) in 16 iterations instead of 173, 3.5x less CPU
            model = LogisticRegression(C=self.config["C"], max_iter=2000, class_weight="balanced",
                                       solver="newton-cg")
            model.fit(featurize(texts), labels)
            self.classes = [str(c) for c in model.classes_]
            self.coef = model.coef_.astype(np.float32)
            self.intercept = model.intercept_.astype(np.float32)
        self.persist()
        return self._resource

    def persist(self) -> None:
        with self._model_storage.write_to(self._resource) as folder:
            if self.coef is not None:
                np.savez_compressed(folder / "incident_types.npz", coef=self.coef,
                                    intercept=self.intercept, classes=np.array(self.classes))

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "IncidentTypeClassifier":
        try:
            with model_storage.read_from(resource) as folder:
                with np.load(folder / "incident_types.npz", allow_pickle=False) as arrays:
                    return cls(config, model_storage, resource, [str(c) for c in arrays["classes"]],
                               arrays["coef"], arrays["intercept"])
        except (ValueError, FileNotFoundError):
            return cls(config, model_storage, resource)  # trained on data without types

    def predict(self, text: Text) -> Tuple[Optional[Text], float]:
        """The most likely type and its probability."""
        if self.coef is None:
            return None, 0.0
        scores = featurize([text]) @ self.coef.T + self.intercept
        scores = np.asarray(scores).ravel()
        if len(self.classes) == 2:  # binary: one column of scores
            p = 1.0 / (1.0 + np.exp(-scores[0]))
            return (self.classes[1], float(p)) if p >= 0.5 else (self.classes[0], float(1 - p))
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        best = int(probabilities.argmax())
        return self.classes[best], float(probabilities[best])

    def wants_type(self, text: Text, intent: Optional[Text], entities: List[Dict[Text, Any]]) -> bool:
        """Whether to guess a type: a report (not a button) that names none and shows no danger."""
        if text.startswith("/") or intent != TYPED_INTENT:
            return False
        if any(e.get("entity") == ENTITY for e in entities):
            return False  # a word names it: DIET and the lexicon decide
        return not self.signs.found(text)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            intent = (message.get(INTENT) or {}).get("name")
            entities = message.get(ENTITIES, [])
            if not self.wants_type(text, intent, entities):
                continue
            category, probability = self.predict(text)
            if category and probability >= self.config["threshold"]:
                entity = {"entity": ENTITY, "value": category, "start": 0, "end": len(text),
                          "confidence_entity": probability, "extractor": self.__class__.__name__}
                message.set(ENTITIES, [*entities, entity], add_to_output=True)
        return messages
