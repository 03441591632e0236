"""The intent, read from the whole message without TensorFlow.

A logistic regression on the same hashed character and word n-grams of the folded text that the
incident type classifier and the FAQ selector read (nlu/components/type_classifier.py), plus
the sentence features of the featurizers named in ``featurizers`` (the incident lexicon's
regexes, so that a slang word no training sentence uses still reads as an incident word).
Confidences are the regression's probabilities, so the FallbackClassifier's threshold is
calibrated for this component (nlu/config.yml).

Runs inside the Rasa engine (Python 3.10) with the libraries Rasa already brings. The model is
stored as plain arrays (no pickle).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from scipy.sparse import csr_matrix, hstack
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from nlu.components.type_classifier import featurize


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True
)
class SentenceIntentClassifier(GraphComponent, IntentClassifier):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"C": 10.0, "featurizers": [], "ranking_length": 10}

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 intents: Optional[List[Text]] = None, coef: Any = None, intercept: Any = None) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.intents = intents or []
        self.coef = coef
        self.intercept = intercept

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "SentenceIntentClassifier":
        return cls(config, model_storage, resource)

    def features(self, messages: List[Message]) -> Any:
        blocks = [featurize([m.get(TEXT) or "" for m in messages])]
        if self.config["featurizers"]:
            rows = []
            for message in messages:
                _, sentence = message.get_sparse_features(TEXT, self.config["featurizers"])
                rows.append(csr_matrix(sentence.features) if sentence is not None else None)
            width = max((r.shape[1] for r in rows if r is not None), default=0)
            if width:
                filled = [r if r is not None else csr_matrix((1, width)) for r in rows]
                blocks.append(normalize(csr_matrix(np.vstack([r.toarray() for r in filled]))))
        return hstack(blocks).tocsr()

    def train(self, training_data: TrainingData) -> Resource:
        examples = [e for e in training_data.intent_examples if e.get(INTENT) and e.get(TEXT)]
        labels = [e.get(INTENT) for e in examples]
        if len(set(labels)) >= 2:
            model = LogisticRegression(C=self.config["C"], max_iter=3000, class_weight="balanced")
            model.fit(self.features(examples), labels)
            self.intents = [str(c) for c in model.classes_]
            self.coef = model.coef_.astype(np.float32)
            self.intercept = model.intercept_.astype(np.float32)
        self.persist()
        return self._resource

    def persist(self) -> None:
        with self._model_storage.write_to(self._resource) as folder:
            if self.coef is not None:
                np.savez_compressed(folder / "intents.npz", coef=self.coef, intercept=self.intercept,
                                    intents=np.array(self.intents))

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "SentenceIntentClassifier":
        try:
            with model_storage.read_from(resource) as folder:
                with np.load(folder / "intents.npz", allow_pickle=False) as arrays:
                    return cls(config, model_storage, resource, [str(i) for i in arrays["intents"]],
                               arrays["coef"], arrays["intercept"])
        except (ValueError, FileNotFoundError):
            return cls(config, model_storage, resource)

    def process(self, messages: List[Message]) -> List[Message]:
        if self.coef is None or not messages:
            return messages
        scores = np.asarray(self.features(messages) @ self.coef.T + self.intercept)
        for message, row in zip(messages, scores):
            probabilities = np.exp(row - row.max())
            probabilities /= probabilities.sum()
            order = np.argsort(-probabilities)[: self.config["ranking_length"]]
            ranking = [{INTENT_NAME_KEY: self.intents[i], "confidence": float(probabilities[i])} for i in order]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages
