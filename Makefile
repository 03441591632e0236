# Barri: `make run` and `make test` do all the set-up they need on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

APP_VENV    := .venv
ENGINE_VENV := .venv-engine
APP_PY      := $(APP_VENV)/bin/python
RASA        := $(ENGINE_VENV)/bin/rasa
BARRI       := $(APP_VENV)/bin/barri
PYBABEL     := $(APP_VENV)/bin/pybabel
# TensorFlow sized for the machine: both pools as wide as the cores (its defaults leave one idle).
TF_THREADS  := TF_INTRA_OP_PARALLELISM_THREADS=$(shell nproc) TF_INTER_OP_PARALLELISM_THREADS=2
ENGINE_ENV  := PYTHONPATH=$(CURDIR) TF_CPP_MIN_LOG_LEVEL=2 $(TF_THREADS) RASA_TELEMETRY_ENABLED=false SQLALCHEMY_SILENCE_UBER_WARNING=1
DATA_PATHS   = $(shell scripts/engine-data.sh paths)
MODEL        = models/barri-$(shell scripts/engine-data.sh hash).tar.gz
CHROMIUM    ?= /usr/bin/chromium

.PHONY: help run test setup lock app-env engine-env locales lexicon-features model db secret chromium widget \
        validate test-stories test-python test-python-unit test-python-engine nlu-crossval nlu-dev nlu-sealed extract update-catalogs lint bench clean screenshots

help:
	@echo "make run    set everything up, then start engine, action server and bot service"
	@echo "make test   set everything up, then run every test"
	@echo "other: setup model lexicon-features locales db validate test-stories nlu-dev nlu-crossval nlu-sealed lock extract update-catalogs lint bench clean"

# --- environments ----------------------------------------------------------------------
# Exact versions from the lock (requirements/app-dev.lock), then the project itself; `pip check`
# proves the set is consistent. `make lock` rewrites both app locks from pyproject.toml.
# scripts/install-lock.sh installs with uv when it can (about half pip's time), else with pip.
$(APP_VENV)/.installed: pyproject.toml requirements/app-dev.lock
	@py=$$(scripts/find-python.sh 3.11+) && $$py -m venv --without-pip $(APP_VENV)
	scripts/install-lock.sh $(APP_VENV) pip -r requirements/app-dev.lock
	scripts/install-lock.sh $(APP_VENV) -e .
	$(APP_PY) -m pip check
	touch $@

lock:
	rm -rf build/lock && mkdir -p build/lock
	@py=$$(scripts/find-python.sh 3.11+) && $$py -m venv build/lock/run && $$py -m venv build/lock/dev
	build/lock/run/bin/pip install --quiet . && build/lock/dev/bin/pip install --quiet '.[dev]'
	{ echo "# The app's runtime dependencies, exactly (bot service, action server, outbox worker)."; \
	  echo "# Regenerate with \`make lock\` after changing pyproject.toml; deploy/app.Dockerfile installs it."; \
	  build/lock/run/bin/pip freeze --all --exclude-editable | grep -v -e '^barri' -e '^pip=='; } > requirements/app.lock
	{ echo "# The app's runtime and development dependencies, exactly (what make and CI install)."; \
	  echo "# Regenerate with \`make lock\` after changing pyproject.toml."; \
	  build/lock/dev/bin/pip freeze --all --exclude-editable | grep -v -e '^barri' -e '^pip=='; } > requirements/app-dev.lock
	rm -rf build/lock

$(ENGINE_VENV)/.installed: requirements/engine.lock
	@py=$$(scripts/find-python.sh 3.10) && $$py -m venv --without-pip $(ENGINE_VENV)
	scripts/install-lock.sh $(ENGINE_VENV) 'pip<25' 'wheel==0.43.0' 'setuptools==70.3.0' -r requirements/engine.lock
	$(ENGINE_VENV)/bin/python -m pip check
	touch $@

app-env: $(APP_VENV)/.installed
engine-env: $(ENGINE_VENV)/.installed

# --- catalogs, model, database ------------------------------------------------------------
locales: app-env
	$(PYBABEL) compile -d locales -D messages --statistics 2>&1 | grep -v '^compiling'
	@for lang in en es ca; do test -f locales/$$lang/LC_MESSAGES/messages.mo || { echo "locales/$$lang not compiled"; exit 1; }; done

extract: app-env
	$(PYBABEL) extract -F babel.cfg -k N_ -k t:2 --sort-by-file --no-wrap \
	  --project=barri --copyright-holder="Barri developers" -o locales/messages.pot common bot dialogues

# The incident lexicon as DIET features: run after editing nlu/lexicon/*.yml.
lexicon-features: app-env
	$(APP_VENV)/bin/python scripts/lexicon-features.py

update-catalogs: extract
	$(PYBABEL) update -i locales/messages.pot -d locales -D messages --no-wrap --ignore-obsolete --no-fuzzy-matching

model: engine-env
	scripts/train-if-changed.sh

# Development secrets: SECRET_KEY (web-chat sessions, desk forms) and RASA_TOKEN (shared by the
# bot service, the engine and the action server); `barri` reads them from var/ when unset.
secret:
	@mkdir -p var
	@for name in secret_key rasa_token; do test -s var/$$name || (umask 077 && $(APP_PY) -c 'import secrets; print(secrets.token_urlsafe(32))' > var/$$name); done

db: app-env
	$(BARRI) db upgrade

# Numbered steps, each with what it costs on a fresh 2-core machine (nothing when up to date).
setup:
	@echo "[1/6] app virtualenv (.venv): under a minute the first time, seconds once uv's cache is warm"
	@$(MAKE) --no-print-directory app-env
	@echo "[2/6] engine virtualenv (.venv-engine, Rasa 3.6): about 1½ minutes the first time, seconds once uv's cache is warm"
	@$(MAKE) --no-print-directory engine-env
	@echo "[3/6] message catalogs (locales/)"
	@$(MAKE) --no-print-directory locales
	@echo "[4/6] language model: about 5-7 minutes on 2 cores when nlu/ or dialogues/ changed"
	@$(MAKE) --no-print-directory model
	@echo "[5/6] secret key and database (var/)"
	@$(MAKE) --no-print-directory secret db

run: setup
	@echo "[6/6] starting the engine, the action server and the bot service (about half a minute)"
	$(BARRI) run --model $(MODEL)

# --- tests ------------------------------------------------------------------------------
chromium:
	@test -x $(CHROMIUM) || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || { echo "could not install Debian's chromium for the browser tests"; exit 1; }; }

# The open-source Rasa web-chat widget from npm (tests/widget/package-lock.json), as cities install it,
# for tests/test_socketio_widget.py; Debian's nodejs and npm when they are missing.
widget: tests/widget/node_modules/.package-lock.json

tests/widget/node_modules/.package-lock.json: tests/widget/package.json tests/widget/package-lock.json
	@command -v npm >/dev/null || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null) || { echo "could not install Debian's nodejs and npm for the widget tests"; exit 1; }; }
	cd tests/widget && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

validate: engine-env
	$(ENGINE_ENV) $(RASA) data validate --config nlu/config.yml --domain dialogues/domain \
	  --data $(DATA_PATHS)

test-stories: model
	$(ENGINE_ENV) $(RASA) test core --model $(MODEL) --stories tests/stories \
	  --fail-on-prediction-errors --out results/stories --no-plot

# pytest-xdist: most tests wait on I/O (the engine, a browser, loopback servers), so more workers
# than cores pay. Each worker has its own ports, temporary folders, database schemas and Redis
# keys; a worker that gets an engine test starts its own engine (about 660 MB), and --dist
# loadscope keeps each module on one worker, so a module's fixtures start once.
TEST_WORKERS ?= 3
ENGINE_TEST_WORKERS ?= 2
PYTEST = $(APP_PY) -m pytest -q -p no:cacheprovider --dist loadscope

test-python: setup chromium widget
	BARRI_TEST_MODEL=$(MODEL) $(PYTEST) -n $(TEST_WORKERS)

# The tests that need no trained model (all but those using the engine: tests/conftest.py marks them).
test-python-unit: app-env locales chromium widget
	$(PYTEST) -n $(TEST_WORKERS) -m "not engine"

test-python-engine: model locales chromium widget
	BARRI_TEST_MODEL=$(MODEL) $(PYTEST) -n $(ENGINE_TEST_WORKERS) -m engine

# Every test. Set-up first; then the model trains while `rasa data validate` and the tests that need
# no model run beside it; then the stories and the engine's tests run side by side. Each part's
# output is printed whole when it ends (--output-sync).
test: chromium widget
	@$(MAKE) --no-print-directory app-env engine-env locales secret db
	@echo "training the model (when the data changed) while the tests that need no model run; each part prints when it ends"
	@$(MAKE) --no-print-directory -j4 --output-sync=target validate test-python-unit test-stories test-python-engine

# Slow: 3-fold cross-validation of the NLU pipeline (figures go into the README).
nlu-crossval: engine-env
	rm -rf results/nlu-data && mkdir -p results/nlu-data
	for lang in en es ca; do cp -r nlu/$$lang results/nlu-data/$$lang; done; cp nlu/regex.yml nlu/lexicon_features.yml results/nlu-data/
	$(ENGINE_ENV) $(RASA) test nlu --config nlu/config.yml --nlu results/nlu-data \
	  --cross-validation --folds 3 --out results/crossval --no-plot

# A quick measure while changing the data or the pipeline: train on 85% of the training data
# and test on the rest (never the sealed sets). CONFIG=... to try another pipeline.
CONFIG ?= nlu/config.yml
nlu-dev: engine-env
	rm -rf results/nlu-dev && mkdir -p results/nlu-dev/data
	for lang in en es ca; do cp -r nlu/$$lang results/nlu-dev/data/$$lang; done
	$(ENGINE_ENV) $(RASA) data split nlu --nlu results/nlu-dev/data --training-fraction 0.85 \
	  --random-seed 7 --out results/nlu-dev/split
	cp nlu/regex.yml nlu/lexicon_features.yml results/nlu-dev/split/
	cd results/nlu-dev/split && mkdir train && mv training_data.yml regex.yml lexicon_features.yml train/
	time $(ENGINE_ENV) RASA_MAX_CACHE_SIZE=0 $(ENGINE_VENV)/bin/python -m nlu.serve train nlu --config $(CONFIG) --nlu results/nlu-dev/split/train \
	  --out results/nlu-dev --fixed-model-name dev
	$(ENGINE_ENV) $(RASA) test nlu --model results/nlu-dev/dev.tar.gz \
	  --nlu results/nlu-dev/split/test_data.yml --out results/nlu-dev/report --no-plot
	$(APP_PY) scripts/nlu-report.py results/nlu-dev/report

# The sealed-set NLU figures alone (also part of `make test`), with the printed accuracies.
nlu-sealed: setup
	BARRI_TEST_MODEL=$(MODEL) $(APP_PY) -m pytest -q -s -p no:cacheprovider tests/test_nlu_sealed.py

# Benchmarks (figures in the README): case writes on SQLite and PostgreSQL, then N = 1, 10, 50
# citizens through the web chat and straight to the engine. Cold start: bench/cold_start.sh (slow).
bench: setup
	$(APP_PY) bench/case_writes.py
	$(APP_PY) bench/load.py --model $(MODEL)

# Refresh the README's dashboard screenshots from the last test run.
screenshots:
	mkdir -p docs/screenshots && cp results/screenshots/*.png docs/screenshots/

lint: app-env
	$(APP_VENV)/bin/ruff check common bot storage dialogues tests
	$(APP_VENV)/bin/mypy

clean:
	rm -rf results .pytest_cache
