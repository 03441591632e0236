"""Train the same model in less time: two patches of Rasa 3.6's training, installed by
``python -m nlu.serve train`` (scripts/train-if-changed.sh). Neither changes what is learnt: a
model trained with them has the same weights, bit for bit, as one trained without
(bench/README.md: how that was checked and what each saves).

- **Batches**: DIET and the ResponseSelector turn each batch's sparse features into
  (indices, values, shape) in Python, one message at a time (``np.vstack`` per message), and
  that took about half of DIET's training. Here it is one ``np.concatenate`` per batch.
- **Rasa's training cache, when it is off** (``RASA_MAX_CACHE_SIZE=0``): Rasa still hashes every
  graph node's inputs and outputs (the whole featurised training data, several times) to store
  them in a cache that keeps nothing. With the cache off those hashes are skipped; with it on
  (the default, for a developer who retrains after changing only the dialogues) nothing changes.

Runs inside the engine (Python 3.10).
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
