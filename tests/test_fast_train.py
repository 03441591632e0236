"""nlu/fast_train.py gives Rasa's training the same batches, built faster, draws batches of
messages of similar length, and skips the training cache's hashing only when the cache is off.
Run inside the engine's Python (Rasa 3.6)."""

from __future__ import annotations

from tests.conftest import engine_python

SAME_BATCHES = r"""
import numpy as np, scipy.sparse as sparse
from rasa.utils.tensorflow.data_generator import RasaDataGenerator
from rasa.utils.tensorflow.model_data import FeatureArray
from rasa.engine.training.hooks import TrainingHook
from nlu import fast_train

rasa_to_values, rasa_before_node = RasaDataGenerator._scipy_matrix_to_values, TrainingHook.on_before_node
fast_train.install()  # with RASA_MAX_CACHE_SIZE=0
assert RasaDataGenerator._scipy_matrix_to_values is not rasa_to_values
assert TrainingHook.on_before_node is not rasa_before_node, "the cache is off: nothing to hash"
import os
for size, off in (("1000", False), ("", False), ("junk", False), ("0", True)):
    os.environ["RASA_MAX_CACHE_SIZE"] = size
    assert fast_train.cache_is_off() is off, size
rng = np.random.default_rng(7)

def feature_array(matrices):
    holder = np.empty(len(matrices), dtype=object)
    holder[:] = matrices
    return FeatureArray(holder, number_of_dimensions=3)

batches = []
for _ in range(40):
    batches.append([sparse.random(int(rng.integers(1, 25)), 5000, density=float(rng.choice([0, 0.002, 0.01])),
                                  format="coo", random_state=int(rng.integers(1 << 30)))
                    for _ in range(int(rng.integers(1, 200)))])
batches.append([sparse.coo_matrix((3, 40))])  # a message without features
batches.append([sparse.random(4, 40, density=0.3, format="csr", random_state=1)])  # not COO yet
for matrices in batches:
    expected = rasa_to_values(feature_array(matrices))
    got = RasaDataGenerator._scipy_matrix_to_values(feature_array(matrices))
    assert len(got) == len(expected) == 3
    for mine, theirs in zip(got, expected):
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape and np.array_equal(mine, theirs)

# batches of similar length: every message once per epoch, each batch starting at a multiple of
# the batch size (the short one last), and far less padding than Rasa's random batches
from nlu.fast_train import by_length
lengths = rng.integers(1, 60, size=1003)
order = by_length(lengths, 64)
assert sorted(order.tolist()) == list(range(1003))
assert len(order[-(1003 % 64):]) == 1003 % 64
def padded(ids):
    return sum(int(lengths[ids[i:i + 64]].max()) * len(ids[i:i + 64]) for i in range(0, len(ids), 64))
assert padded(order) < 0.6 * padded(np.arange(1003)), (padded(order), padded(np.arange(1003)))
print("same", len(batches))
"""



def test_batches_are_the_ones_rasa_builds_by_length_and_an_off_cache_is_not_hashed() -> None:
    # one engine process: importing Rasa and TensorFlow is most of this test's time
    assert engine_python(SAME_BATCHES, RASA_MAX_CACHE_SIZE="0") == "same 42"
