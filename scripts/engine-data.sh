#!/usr/bin/env bash
# The Rasa training data paths and the hash that names the model trained from them.
# Usage: engine-data.sh paths | engine-data.sh hash
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(nlu/en nlu/es nlu/ca nlu/regex.yml nlu/lexicon_features.yml dialogues/rules dialogues/stories)
case ${1:-paths} in
  paths) echo "${paths[@]}" ;;
  hash)
    # nlu/lexicon/danger is read by the engine when it starts (nlu/components/danger.py), not
    # trained on: a change there needs a restart, not a new model
    # nlu/fast_train.py changes how DIET's batches are drawn, so it is part of the model too
    find "${paths[@]}" dialogues/domain nlu/config.yml nlu/fast_train.py nlu/lexicon nlu/components -type f \( -name '*.yml' -o -name '*.py' \) \
      -not -path 'nlu/lexicon/danger/*' -print0 \
      | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12 ;;
  *) echo "usage: $0 paths|hash" >&2; exit 2 ;;
esac
