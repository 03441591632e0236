"""Train in less time: three patches of Rasa 3.6's training, installed by
``python -m nlu.serve train`` (scripts/train-if-changed.sh, the bench, the engine image).

- **Batches** (the same model): DIET and the ResponseSelector turn each batch's sparse
  features into (indices, values, shape) in Python, one message at a time (``np.vstack`` per
  message). Here it is one ``np.concatenate`` per batch; a training with and without gives the
  same weights bit for bit.
- **Rasa's training cache, when it is off** (``RASA_MAX_CACHE_SIZE=0``; the same model): Rasa
  still hashes every graph node's inputs and outputs (the whole featurised training data,
  several times) for a cache that keeps nothing. With the cache off those hashes are skipped;
  with it on (for a developer who retrains after changing only the dialogues) nothing changes.
- **Batches of similar length** (a different model, as good on held-out data): Rasa pads
  every message of a batch to the batch's longest, and a batch drawn at random mixes
  two-word answers with forty-word accounts, so most of the transformer's and the CRF's work
  was padding. Each epoch's messages are sorted by length within windows of 20 batches and
  the batches shuffled. ``BARRI_BATCHES_BY_LENGTH=0`` turns it off.

bench/README.md has what each saves and the held-out figures. This file is part of the
model's hash (scripts/engine-data.sh). Runs inside the engine (Python 3.10).
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Text

import numpy as np


def install() -> None:
    from rasa.utils.tensorflow.data_generator import RasaDataGenerator

    if not getattr(RasaDataGenerator._scipy_matrix_to_values, "_barri_fast", False):
        rasa_to_values = RasaDataGenerator._scipy_matrix_to_values
        batch_to_values._barri_fast = True  # type: ignore[attr-defined]
        batch_to_values._rasa = rasa_to_values  # type: ignore[attr-defined]
        RasaDataGenerator._scipy_matrix_to_values = staticmethod(batch_to_values)
    if os.environ.get("BARRI_BATCHES_BY_LENGTH", "1") != "0":
        install_batches_by_length()
    if cache_is_off():
        from rasa.engine.training.hooks import TrainingHook

        TrainingHook.on_before_node = skip_fingerprint  # type: ignore[method-assign]
        TrainingHook.on_after_node = skip_caching  # type: ignore[method-assign]


def cache_is_off() -> bool:
    from rasa.engine.caching import CACHE_SIZE_ENV

    try:
        return float(os.environ.get(CACHE_SIZE_ENV, "1")) <= 0
    except ValueError:
        return False


def batch_to_values(array_of_sparse: Any) -> List[np.ndarray]:
    """What Rasa's ``_scipy_matrix_to_values`` returns for a batch of messages, built with one
    concatenation: indices (message, row, column), values and shape."""
    if array_of_sparse.number_of_dimensions == 4:  # dialogue features: Rasa's own path
        return batch_to_values._rasa(array_of_sparse)  # type: ignore[attr-defined]
    import scipy.sparse

    matrices = list(array_of_sparse)
    if not isinstance(matrices[0], scipy.sparse.coo_matrix):
        matrices = [matrix.tocoo() for matrix in matrices]
    rows = [matrix.row for matrix in matrices]
    per_message = [len(row) for row in rows]
    indices = np.empty((sum(per_message), 3), dtype=np.int64)
    indices[:, 0] = np.repeat(np.arange(len(matrices)), per_message)
    indices[:, 1] = np.concatenate(rows)
    indices[:, 2] = np.concatenate([matrix.col for matrix in matrices])
    values = np.concatenate([matrix.data for matrix in matrices]).astype(np.float32)
    longest = max(matrix.shape[0] for matrix in matrices)
    shape = np.array((len(matrices), longest, matrices[0].shape[-1]), dtype=np.int64)
    return [indices, values, shape]


def skip_fingerprint(self: Any, node_name: Text, execution_context: Any, config: Dict[Text, Any],
                     received_inputs: Dict[Text, Any]) -> Dict:
    return {}


def skip_caching(self: Any, node_name: Text, execution_context: Any, config: Dict[Text, Any],
                 output: Any, input_hook_data: Dict) -> None:
    return None


BATCHES_PER_WINDOW = 20


def install_batches_by_length() -> None:
    """Each epoch's batches hold messages of similar length, so a batch is padded to a length
    its messages have."""
    from rasa.shared.nlu.constants import TEXT
    from rasa.utils.tensorflow.constants import SEQUENCE
    from rasa.utils.tensorflow.data_generator import RasaBatchDataGenerator
    from rasa.utils.tensorflow.model_data import RasaModelData

    rasa_shuffle_and_balance = RasaBatchDataGenerator._shuffle_and_balance
    if getattr(rasa_shuffle_and_balance, "_barri_fast", False):
        return

    def shuffle_and_balance(self: Any, batch_size: int) -> Any:
        data = rasa_shuffle_and_balance(self, batch_size)
        sequences = data.get(TEXT, {}).get(SEQUENCE)
        if not self.shuffle or not sequences:
            return data
        lengths = np.array([matrix.shape[0] for matrix in sequences[0]])
        return RasaModelData._data_for_ids(data, by_length(lengths, batch_size))

    shuffle_and_balance._barri_fast = True  # type: ignore[attr-defined]
    RasaBatchDataGenerator._shuffle_and_balance = shuffle_and_balance  # type: ignore[method-assign]


def by_length(lengths: np.ndarray, batch_size: int) -> np.ndarray:
    """An order of the examples where each run of ``batch_size`` holds similar lengths: sorted
    within windows, full batches shuffled (numpy's seeded generator, as Rasa's shuffling), the
    one short batch last so that every batch starts at a multiple of ``batch_size``."""
    window = batch_size * BATCHES_PER_WINDOW
    full, short = [], []
    for start in range(0, len(lengths), window):
        ids = np.arange(start, min(len(lengths), start + window))
        ids = ids[np.argsort(lengths[ids], kind="stable")]
        for first in range(0, len(ids), batch_size):
            (full if len(ids[first:first + batch_size]) == batch_size else short).append(ids[first:first + batch_size])
    batches = [full[i] for i in np.random.permutation(len(full))] + short
    return np.concatenate(batches) if batches else np.arange(0)
