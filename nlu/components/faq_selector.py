"""Which FAQ answer a question wants, without a second TensorFlow model.

Rasa's ResponseSelector is a neural network of its own (built, traced and run beside DIET at
every start and every message) to choose among six answers. This component makes the same
choice with a logistic regression on the hashed character and word n-grams the incident type
classifier already uses (nlu/components/type_classifier.py), trained on the examples of the
retrieval intent (``faq/<answer>``), and writes its choice where the ResponseSelector writes
it (``response_selector.faq``), so ``utter_faq``, the rules and the NLG endpoint are unchanged.
A button payload (``/faq/how_it_works``) is its own answer.

Runs inside the Rasa engine (Python 3.10) with the libraries Rasa already brings. The model is
stored as plain arrays (no pickle).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Text

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_RESPONSE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from sklearn.linear_model import LogisticRegression

from nlu.components.type_classifier import featurize, probabilities

SELECTOR = "response_selector"  # the message property the ResponseSelector fills


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True
)
class FaqSelector(GraphComponent, IntentClassifier):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"retrieval_intent": "faq", "C": 10.0}

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 keys: Optional[List[Text]] = None, coef: Any = None, intercept: Any = None,
                 responses: Optional[Dict[Text, Any]] = None, retrieval_intents: Optional[List[Text]] = None) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.keys = keys or []  # "faq/anonymity"...
        self.coef = coef
        self.intercept = intercept
        self.responses = responses or {}
        self.retrieval_intents = retrieval_intents or []

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "FaqSelector":
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        intent = self.config["retrieval_intent"]
        examples = [e for e in training_data.intent_examples
                    if e.get(INTENT) == intent and e.get(INTENT_RESPONSE_KEY)]
        texts = [e.get(TEXT) for e in examples]
        labels = [e.get(INTENT_RESPONSE_KEY) for e in examples]
        self.retrieval_intents = sorted(training_data.retrieval_intents)
        if len(set(labels)) >= 2:
            # newton-cg: lbfgs's model in a quarter of the CPU (nlu/components/type_classifier.py)
            model = LogisticRegression(C=self.config["C"], max_iter=2000, class_weight="balanced",
                                       solver="newton-cg")
            model.fit(featurize(texts), labels)
            self.keys = [str(k) for k in model.classes_]
            self.coef = model.coef_.astype(np.float32)
            self.intercept = model.intercept_.astype(np.float32)
            self.responses = {key: training_data.responses.get(utter_action(key)) or [{TEXT: key}]
                              for key in self.keys}
        self.persist()
        return self._resource

    def persist(self) -> None:
        with self._model_storage.write_to(self._resource) as folder:
            if self.coef is not None:
                np.savez_compressed(folder / "faq.npz", coef=self.coef, intercept=self.intercept,
                                    keys=np.array(self.keys))
                (folder / "faq.json").write_text(json.dumps(
                    {"responses": self.responses, "retrieval_intents": self.retrieval_intents}))

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "FaqSelector":
        try:
            with model_storage.read_from(resource) as folder:
                extra = json.loads((folder / "faq.json").read_text())
                with np.load(folder / "faq.npz", allow_pickle=False) as arrays:
                    return cls(config, model_storage, resource, [str(k) for k in arrays["keys"]],
                               arrays["coef"], arrays["intercept"], extra["responses"],
                               extra["retrieval_intents"])
        except (ValueError, FileNotFoundError):
            return cls(config, model_storage, resource)  # trained on data without FAQ answers

    def ranking(self, text: Text) -> List[Dict[Text, Any]]:
        """Every answer with its probability, best first."""
        button = text.strip()[1:] if text.startswith("/") else None
        if button in self.keys:
            return [{"intent_response_key": key, "confidence": float(key == button)} for key in
                    sorted(self.keys, key=lambda key: key != button)]
        chances = probabilities(featurize([text]), self.coef, self.intercept)
        return [{"intent_response_key": self.keys[i], "confidence": float(chances[i])}
                for i in np.argsort(-chances)]

    def process(self, messages: List[Message]) -> List[Message]:
        if self.coef is None:
            return messages
        intent = self.config["retrieval_intent"]
        for message in messages:
            ranking = self.ranking(message.get(TEXT) or "")
            best = ranking[0]["intent_response_key"]
            selector = dict(message.get(SELECTOR) or {})
            selector["all_retrieval_intents"] = self.retrieval_intents
            selector[intent] = {
                "response": {"responses": self.responses.get(best), "confidence": ranking[0]["confidence"],
                             "intent_response_key": best, "utter_action": utter_action(best)},
                "ranking": ranking,
            }
            message.set(SELECTOR, selector, add_to_output=True)
        return messages


def utter_action(intent_response_key: Text) -> Text:
    """``faq/anonymity`` -> ``utter_faq/anonymity`` (the response that answers it)."""
    return f"utter_{intent_response_key}"
