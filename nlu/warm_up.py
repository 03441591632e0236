"""The engine parses a few messages once its model is loaded, before it answers anyone.

At load, Rasa traces DIET's prediction graph on one training example. TensorFlow traces it
again, with shapes relaxed, the first time a message of another length arrives: the first
citizen's first turn cost 1.2 s of CPU against ~60 ms for any later one (bench/README.md,
"heavy turns"). Parsing a few messages of different lengths at start (a greeting, a report,
an FAQ question) pays that at start instead. A parse reads no conversation and writes
nothing: the engine's decisions are those it would have taken anyway.

``install()`` is called by ``python -m nlu.serve run`` (the engine). Runs inside the engine
(Python 3.10).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

# different lengths and languages, an FAQ question (the FAQ selector's own graph) among them
WARM_UP_MESSAGES = (
    "hola",
    "someone broke the window of my car last night in front of the school",
    "com funciona això?",
    "¿qué pasa con mis datos personales cuando hago una denuncia?",
)


def install() -> None:
    from rasa.core.agent import Agent

    if getattr(Agent.load_model, "_barri_warm", False):
        return
    rasa_load_model = Agent.load_model

    def load_model(self: Any, *args: Any, **kwargs: Any) -> None:
        rasa_load_model(self, *args, **kwargs)
        warm_up(self.processor)

    load_model._barri_warm = True  # type: ignore[attr-defined]
    Agent.load_model = load_model


def warm_up(processor: Any) -> None:
    from rasa.core.channels.channel import UserMessage
    from rasa.shared.core.trackers import DialogueStateTracker

    if processor is None or not processor.model_metadata.nlu_target:
        return
    tracker = DialogueStateTracker("barri-warm-up", processor.domain.slots)
    for text in WARM_UP_MESSAGES:
        try:
            processor._parse_message_with_graph(UserMessage(text, sender_id="barri-warm-up"), tracker)
        except Exception:  # a warm-up must never stop the engine from starting
            log.exception("warm-up parse failed")
