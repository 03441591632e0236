#!/usr/bin/env bash
# Train the Rasa model only when the NLU data, the dialogues or the pipeline changed since
# the last training: the model is named after the hash of everything it is trained from.
set -euo pipefail
cd "$(dirname "$0")/.."
hash=$(scripts/engine-data.sh hash)
model=models/barri-$hash.tar.gz
if [[ -f $model ]]; then
  echo "model $model is up to date"
  exit 0
fi
echo "training $model (data changed since the last training)"
mkdir -p models
# Through nlu.serve: trained in less time (nlu/fast_train.py). Rasa's training cache is off
# unless RASA_MAX_CACHE_SIZE is set (in MB): keeping it costs every training about half a minute
# of hashing and only pays when the next training changes the dialogues alone. The data is
# checked by `make validate` (part of `make test`), not again here.
# shellcheck disable=SC2046
PYTHONPATH=$PWD TF_CPP_MIN_LOG_LEVEL=2 RASA_TELEMETRY_ENABLED=false \
  TF_INTRA_OP_PARALLELISM_THREADS=$(nproc) TF_INTER_OP_PARALLELISM_THREADS=2 \
  RASA_MAX_CACHE_SIZE=${RASA_MAX_CACHE_SIZE:-0} \
  .venv-engine/bin/python -m nlu.serve train --skip-validation \
    --config nlu/config.yml --domain dialogues/domain \
    --data $(scripts/engine-data.sh paths) \
    --out models --fixed-model-name "barri-$hash"
# keep the two newest models
ls -1t models/barri-*.tar.gz | tail -n +3 | xargs -r rm -f
