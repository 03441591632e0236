"""The incident lexicon as DIET features, by lookups.

DIET learns better when it knows that "mangaron" or "pixaven" is a theft or an incivility word
even if no training sentence uses it: one feature per category (nlu/components/lexicon.py's
CATEGORIES), set on every token that is a lexicon word or stem or part of a lexicon phrase,
and on the sentence when any token is. Rasa's RegexFeaturizer gave the same features from one
large regex alternation per category and cost about half of DIET's time per message; folded
tokens looked up in dictionaries cost a few microseconds each.

The lexicon (nlu/lexicon/*.yml) is read when the model is trained and stored in it, so the
features a model was trained with are the ones it gets at run time; a lexicon edit changes
this component's fingerprint, so Rasa does not reuse a cached training.

Runs inside the Rasa engine (Python 3.10): Rasa, NumPy and SciPy.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Text, Tuple

import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.featurizers.sparse_featurizer.sparse_featurizer import SparseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.nlu.constants import ACTION_TEXT, RESPONSE, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu.components.lexicon import CATEGORIES, LEXICON_DIR, Lexicon

LEXICON_FILE = "lexicon.json"


def _lexicon_files(folder: Path) -> List[Path]:
    return sorted(folder.glob("*.yml"))  # what Lexicon.from_folder reads (not danger/)


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=True
)
class LexiconFeaturizer(SparseFeaturizer, GraphComponent):
    @classmethod
    def required_components(cls) -> List[type]:
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {**SparseFeaturizer.get_default_config(), "lexicon_dir": str(LEXICON_DIR)}

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        pass

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> Optional[Text]:
        """The lexicon's files: Rasa's training cache must not outlive a lexicon edit."""
        folder = Path(config.get("lexicon_dir") or LEXICON_DIR)
        digest = hashlib.sha256()
        for path in _lexicon_files(folder):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 execution_context: ExecutionContext, entries: Optional[Dict[Text, Any]] = None) -> None:
        super().__init__(execution_context.node_name, config)
        self._model_storage = model_storage
        self._resource = resource
        self.entries = entries  # the lexicon as trained on: {"entries": [[category, pattern]...], "names": [...]}
        self.lexicon = self._build(entries) if entries else None

    @staticmethod
    def _build(entries: Dict[Text, Any]) -> Lexicon:
        return Lexicon([(category, pattern) for category, pattern in entries["entries"]], entries["names"])

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "LexiconFeaturizer":
        return cls(config, model_storage, resource, execution_context)

    def train(self, training_data: TrainingData) -> Resource:
        lexicon = Lexicon.from_folder(Path(self._config["lexicon_dir"]))
        # stored already folded and split: rebuilding from these gives the same lookups
        entries = [[category, word] for word, categories in sorted(lexicon.words.items())
                   for category in sorted(categories)]
        entries += [[category, f"{prefix}*"] for prefix, category in lexicon.prefixes]
        entries += [[category, phrase] for phrase, category in lexicon.phrases]
        self.entries = {"entries": entries, "names": lexicon.names}
        self.lexicon = self._build(self.entries)
        with self._model_storage.write_to(self._resource) as folder:
            (folder / LEXICON_FILE).write_text(json.dumps(self.entries, ensure_ascii=False), encoding="utf-8")
        return self._resource

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "LexiconFeaturizer":
        with model_storage.read_from(resource) as folder:
            entries = json.loads((folder / LEXICON_FILE).read_text(encoding="utf-8"))
        return cls(config, model_storage, resource, execution_context, entries)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for example in training_data.training_examples:
            for attribute in (TEXT, RESPONSE, ACTION_TEXT):
                self._featurize(example, attribute)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            self._featurize(message, TEXT)
        return messages

    def features(self, tokens: List[Text]) -> Tuple[scipy.sparse.coo_matrix, scipy.sparse.coo_matrix]:
        """A token x category matrix of 1s where the lexicon covers the token, and its any()."""
        assert self.lexicon is not None, "LexiconFeaturizer used before training or loading"
        sequence = np.zeros((len(tokens), len(CATEGORIES)))
        for row, categories in enumerate(self.lexicon.token_marks(tokens)):
            for category in categories:
                sequence[row, CATEGORIES.index(category)] = 1.0
        sentence = sequence.max(axis=0, keepdims=True)
        return scipy.sparse.coo_matrix(sequence), scipy.sparse.coo_matrix(sentence)

    def _featurize(self, message: Message, attribute: Text) -> None:
        if not message.get(attribute):
            return
        tokens = message.get(TOKENS_NAMES[attribute], [])
        if not tokens:
            return
        sequence, sentence = self.features([token.text for token in tokens])
        self.add_features_to_message(sequence, sentence, attribute, message)
