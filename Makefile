# andon: two commands do all set-up on a fresh Debian machine.
#   make demo  - create .venv, install, run the virtual factory with the live view
#   make test  - install dev dependencies and services, run lint, types and the whole suite
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: demo test lint typecheck pytest services bench clean screenshots

$(VENV)/.base: pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/andon demo $(ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy

services:
	bash scripts/services.sh
	if [ -f scripts/services-postgres.sh ]; then bash scripts/services-postgres.sh; fi
	bash scripts/services-chromium.sh

pytest: $(VENV)/.dev services
	$(PY) -m pytest -q -n 2

test: lint typecheck pytest

# the dashboard's pages at 1920x1080 and 820x1180, written by the browser tests (README)
screenshots: $(VENV)/.dev services
	ANDON_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest -q -p no:cacheprovider \
		tests/web/test_dashboard.py -k "screenshots or zh_tw or twin"

bench: $(VENV)/.dev
	$(PY) benchmarks/store_ingest.py
	$(PY) benchmarks/store_query.py
	$(PY) benchmarks/demo_headless.py
	$(PY) benchmarks/kpi.py
	$(PY) benchmarks/twin_vs_simpy.py
	$(PY) benchmarks/ingest_e2e.py
	$(PY) benchmarks/opcua_modbus.py
	$(PY) benchmarks/api.py
	$(PY) benchmarks/web_board.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .andon
