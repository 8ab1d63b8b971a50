# Levqor: `make run` starts everything on SQLite in ./var; `make test` runs the suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
LEVQOR := $(VENV)/bin/levqor
STAMP := $(VENV)/.installed

.PHONY: run test venv migrate seed api worker scheduler lint types evals clean bench-jobs bench-hooks bench-anomaly bench-forecast

$(STAMP): requirements/dev.lock requirements/base.lock pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(VENV)/bin/python -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --python $(PY) -r requirements/dev.lock
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

migrate: venv
	$(LEVQOR) migrate

seed: migrate
	$(LEVQOR) seed-demo

run: seed
	$(LEVQOR) up

api: venv
	$(LEVQOR) api

worker: venv
	$(LEVQOR) worker

scheduler: venv
	$(LEVQOR) scheduler

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

types: venv
	$(VENV)/bin/mypy agents tools memory api policies levqor

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
