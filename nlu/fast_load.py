"""Load DIET's and the ResponseSelector's weights without a training step.

Rasa 3.6 builds a saved TensorFlow model's variables by training it on one example
(``RasaModel.load``: ``model.fit`` on one batch, then ``load_weights``), which traces the whole
training graph, losses and entity CRF included, only to throw that step away: most of the
engine's start (bench/README.md). A model saved in TensorFlow's checkpoint format restores each
variable when it is created, so here the weights are read first and the prediction Rasa runs
anyway on one example (to trace the prediction graph) creates the variables, which take the
saved values; the optimizer's state, only needed to train further, is not read. Training and
fine-tuning keep Rasa's own path.

``install()`` is called by ``python -m nlu.serve run`` (the engine). Runs inside the engine
(Python 3.10).
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Text

log = logging.getLogger(__name__)


def install() -> None:
    from rasa.utils.tensorflow.models import RasaModel

    if getattr(RasaModel.load, "_barri_fast", False):
        return
    rasa_load = RasaModel.load.__func__

    def load(cls: Any, model_file_name: Text, model_data_example: Any,
             predict_data_example: Optional[Any] = None, finetune_mode: bool = False,
             *args: Any, **kwargs: Any) -> Any:
        if finetune_mode or predict_data_example is None:
            return rasa_load(cls, model_file_name, model_data_example, predict_data_example,
                             finetune_mode, *args, **kwargs)
        model = cls(*args, **kwargs)
        status = model.load_weights(model_file_name)  # restored as each variable is created
        model.run_inference(predict_data_example)  # creates them (and traces prediction)
        status.expect_partial()  # the optimizer's slots: training only
        status.assert_existing_objects_matched()  # every variable created has its saved value
        log.debug("Loaded %s without a training step", cls.__name__)
        return model

    load._barri_fast = True  # type: ignore[attr-defined]
    RasaModel.load = classmethod(load)
