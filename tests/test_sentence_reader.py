"""The sentence reader's parts (nlu/components/sentence_vectors.py, type_classifier.py), run
inside the engine's Python: the shipped encoder gives unit vectors that place a described
incident near its kind in all three languages, one at a time as in a batch; where the
encoder cannot run, every vector is zero and nothing stops; the arbitration between the
words' types and the sentence's; and the vector computed only where the n-grams are unsure."""

from __future__ import annotations

from tests.conftest import engine_python

ENCODER = r"""
import numpy as np
from nlu.components import sentence_vectors as sv
assert sv.available()
texts = ["a man ripped the gold chain off my neck and ran away",
         "un tipo me arrancó la cadena de oro del cuello y salió corriendo",
         "un paio em va arrencar la cadena d'or del coll i va fugir",
         "the neighbours play loud music every night until four"]
vectors = sv.encode(texts)
assert vectors.shape == (4, sv.DIMENSION) and vectors.dtype == np.float32
assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
similar = vectors @ vectors.T
# the same theft told in three languages is closer to itself than to a noise complaint
assert min(similar[0, 1], similar[0, 2], similar[1, 2]) > max(similar[0, 3], similar[1, 3], similar[2, 3]), similar
# one message at a time (as the engine parses) gives the batch's vector (as training encodes)
assert np.allclose(sv.encode([texts[2]])[0], vectors[2], atol=1e-4)
assert sv.encode([]).shape == (0, sv.DIMENSION)
# one message on one OpenMP thread (a second stalls under load), a batch on every core
import os
runtime = sv._load()._lib
sv.encode([texts[0]])
assert runtime.omp_get_max_threads() == 1
sv.encode(texts)
assert runtime.omp_get_max_threads() == len(os.sched_getaffinity(0))
print("ok")
"""

NO_ENCODER = r"""
import numpy as np
from nlu.components import sentence_vectors as sv
sv._why_unavailable = lambda: "this CPU lacks avx2"  # as on a CPU the wheel was not built for
assert not sv.available()
vectors = sv.encode(["hay un olor muy fuerte a gas", "noise"])
assert vectors.shape == (2, sv.DIMENSION) and not vectors.any()
print("ok")
"""

ARBITRATION = r"""
from nlu.components.type_classifier import arbitrate, probabilities
import numpy as np
config = {"threshold": 0.55, "override": 0.9}
cases = [
    # no word names a type: the sentence's, only when sure
    (set(), "theft", 0.8, {"theft"}),
    (set(), "theft", 0.5, set()),
    (set(), None, 0.0, set()),
    # words name two: the one the sentence reads, or none (the form asks)
    ({"assault", "theft"}, "assault", 0.4, {"assault"}),
    ({"assault", "theft"}, "noise", 0.99, set()),
    # words name one: kept, unless the sentence is all but certain of another
    ({"traffic"}, "incivility", 0.7, {"traffic"}),
    ({"traffic"}, "suspicious_activity", 0.95, {"suspicious_activity"}),
    ({"theft"}, "theft", 0.99, {"theft"}),
]
for named, read, p, expected in cases:
    assert arbitrate(named, read, p, config) == expected, (named, read, p)
binary = probabilities(np.array([[1.0, 2.0]]), np.array([[0.5, 0.25]]), np.array([0.0]))
assert np.allclose(binary, [1 / (1 + np.e), np.e / (1 + np.e)])
several = probabilities(np.array([[1.0]]), np.array([[1.0], [0.0], [1.0]]), np.zeros(3))
assert np.isclose(several.sum(), 1.0) and several[0] == several[2] > several[1]
print("ok")
"""

CASCADE = r"""
import numpy as np
from nlu.components import sentence_vectors as sv, type_classifier as tc
encoded = []
def encode(texts):  # counts the vectors asked for; zeros, as without the encoder
    encoded.append(list(texts))
    return np.zeros((len(texts), sv.DIMENSION), dtype=np.float32)
sv.encode = encode
width = 2 * tc.FEATURES
# binary regressions with no weights: the intercepts alone set the probabilities
def regression(name, columns, intercept):
    return {f"{name}_coef": np.zeros((1, columns), np.float32),
            f"{name}_intercept": np.array([intercept], np.float32)}
ngrams_only = {**regression("ngram_type", width, 3.0),      # theft at 0.95
               **regression("ngram_danger", width, -4.0)}   # danger at 0.02
with_vector = {**regression("type", width + sv.DIMENSION, -3.0),   # noise at 0.95
               **regression("danger", width + sv.DIMENSION, -4.0)}
classes = {"classes": np.array(["noise", "theft"])}
reader = tc.IncidentTypeClassifier({}, None, None, {**classes, **ngrams_only, **with_vector})
text = "me robaron la cartera en el metro"
# the words name theft and the n-grams alone confirm it and rule out danger: no vector
assert reader.read(text, {"theft"}) is None and encoded == []
# the words name another type, none, or two: the whole sentence is read, vector and all
for named in ({"noise"}, set(), {"noise", "theft"}):
    kind, p, danger = reader.read(text, named)
    assert kind == "noise" and round(p, 2) == 0.95 and round(danger, 2) == 0.02, (named, kind, p)
assert encoded == [[text]] * 3
# n-grams not sure enough of the danger being none: the vector is read
careful = tc.IncidentTypeClassifier({"calm": 0.01}, None, None, {**classes, **ngrams_only, **with_vector})
assert careful.read(text, {"theft"})[0] == "noise" and len(encoded) == 4
# a model trained before the n-gram regressions existed reads every report whole
older = tc.IncidentTypeClassifier({}, None, None, {**classes, **with_vector})
assert older.read(text, {"theft"})[0] == "noise" and len(encoded) == 5
print("ok")
"""


def test_the_shipped_encoder_reads_a_described_theft_in_three_languages() -> None:
    assert engine_python(ENCODER) == "ok"


def test_without_the_encoder_every_vector_is_zero() -> None:
    assert engine_python(NO_ENCODER) == "ok"


def test_the_sentence_decides_only_where_words_are_silent_disagree_or_are_outweighed() -> None:
    assert engine_python(ARBITRATION) == "ok"


def test_the_sentence_vector_is_skipped_only_where_the_ngrams_confirm_the_named_type_and_no_danger() -> None:
    assert engine_python(CASCADE) == "ok"
