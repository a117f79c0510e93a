# Kefu: the commands a Rasa user expects. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
RASA := $(VENV)/bin/rasa

.PHONY: help install run prod test check train shell reseed db showcase validate bench cv clean

help:
	@echo "make run      install if needed, seed the shop, train if changed, start everything (Ctrl-C stops)"
	@echo "make prod     the production topology: nginx, 2 Rasa replicas, 2 action servers, PostgreSQL, Redis (Ctrl-C stops)"
	@echo "make test     the whole test suite from a fresh clone (runs 'make check' first)"
	@echo "make check    lint, formatting, types and the fast tests (under a minute)"
	@echo "make shell    chat in the terminal (needs 'make run' in another terminal for the actions)"
	@echo "make reseed   drop and refill the demo shop database"
	@echo "make showcase list the demo orders and phones to try"
	@echo "make train    regenerate the catalogue assets and train if anything changed"
	@echo "make bench    the benchmark (see BENCHMARKS.md)"
	@echo "make cv       5-fold cross-validation of the NLU's intents, grouped by source sentence (about 15 minutes on 2 cores)"

install:
	@source scripts/lib.sh && ensure_venv

run:
	@bash scripts/run.sh

prod:
	@bash scripts/prod.sh

test:
	@bash scripts/test.sh

check:
	@bash scripts/check.sh

train: install
	@source scripts/lib.sh && ensure_database && ensure_model >/dev/null

shell: install
	@source scripts/lib.sh && MODEL="$$(ensure_model)" && KEFU_ACTION_SECRET="$$(cat var/run/action-secret 2>/dev/null)" $(RASA) shell --model "$$MODEL" --endpoints endpoints.yml --port 5006

reseed: install
	$(PY) -m kefu.cli db seed --reset

db: install
	@source scripts/lib.sh && ensure_database

showcase: install
	$(PY) -m kefu.cli db showcase

validate: install
	$(PY) -m kefu.cli nlu export && $(PY) scripts/validate.py

bench: install
	@source scripts/lib.sh && ensure_database && MODEL="$$(ensure_model)" && KEFU_MODEL="$$MODEL" $(PY) -m bench

# 5-fold cross-validation of the NLU's intents on data/: Rasa's own, with
# folds grouped by source sentence (kefu/cv.py), so two phrasings of one
# sentence never sit on both sides of a fold. --intents-only leaves DIET
# (colours and reasons) and the FAQ ResponseSelector out of the folds: they
# do not touch the intent; five folds then take 15 minutes (5,722 examples)
# where the whole pipeline took one to two hours.
# `make cv CV_SCOPE=` cross-validates the whole pipeline.
CV_SCOPE ?= --intents-only
cv: install
	@mkdir -p var/log && source scripts/lib.sh && ensure_database && $(PY) -m kefu.cli nlu export >/dev/null
	$(PY) scripts/grouped_cv.py $(CV_SCOPE) --nlu data --config config.yml --folds 5 --out var/cv > var/log/cv.log 2>&1 || { tail -n 40 var/log/cv.log; exit 1; }
	$(PY) scripts/nlu_report.py var/cv

clean:
	rm -rf var/test results .pytest_cache
