# Levqor: `make run` starts everything on SQLite in ./var; `make test` runs the suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
LEVQOR := $(VENV)/bin/levqor
STAMP := $(VENV)/.installed
PACKAGES := levqor agents tools memory api workers

.PHONY: run test venv migrate seed api worker scheduler lint imports check types evals clean bench-jobs bench-hooks bench-anomaly bench-forecast bench-forecast-gaps bench-forecast-combine bench-forecast-short bench-chaos bench-arch bench-api bench-advisor api-docs

$(STAMP): requirements/dev.lock requirements/base.lock pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(VENV)/bin/python -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -r requirements/dev.lock
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	@# bytecode now, so that no start pays for compiling (where PYTHONDONTWRITEBYTECODE is set, as in
	@# containers, Python never caches it): `levqor` starts in 0.4 s instead of 1.4 s (docs/operations.md)
	@$(PY) -m compileall -q -j 0 $(PACKAGES) >/dev/null
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

# The suite runs in parallel (pytest-xdist, one database per worker); `make test PYTEST_XDIST=` runs it serially.
PYTEST_XDIST ?= -n auto --maxprocesses=4

test: venv
	$(PY) -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

# docs/dev_portal/api_reference.md from the OpenAPI document (tests/tools/dev_portal fail when it is stale).
api-docs: venv
	$(LEVQOR) docs api-reference

lint: venv
	$(VENV)/bin/ruff check .

# The import contracts of pyproject.toml: layers point down, the named exceptions only, no cycles.
imports: venv
	$(VENV)/bin/lint-imports

# Everything CI checks before the tests.
check: imports lint types

types: venv
	$(VENV)/bin/mypy agents tools memory api policies levqor workers

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): requirements/bench.in | $(STAMP)
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -r requirements/bench.in || echo "bench extras (prophet) not installed: reported as unavailable"
	@touch $(BENCH_STAMP)

bench-anomaly: venv $(BENCH_STAMP)
	$(PY) bench/anomaly/run.py

bench-forecast: venv $(BENCH_STAMP)
	$(PY) bench/forecast/run.py

bench-forecast-gaps: venv $(BENCH_STAMP)
	$(PY) bench/forecast/gaps.py

bench-forecast-combine: venv $(BENCH_STAMP)
	$(PY) bench/forecast/combine.py

bench-forecast-short: venv $(BENCH_STAMP)
	$(PY) bench/forecast/short.py

bench-jobs: venv
	$(PY) bench/jobs/run.py

# All the chaos scenarios on a scratch SQLite database: the table, then `chaos: detected=N/M ...` last.
bench-chaos: venv
	$(PY) bench/chaos/run.py

bench-hooks: venv
	$(PY) bench/hooks/run.py

# Authenticated reads (GET /v1/me, /v1/jobs) at 32 and 64 connections against one `levqor api` process on
# SQLite and PostgreSQL (database bench_api, created and dropped), beside a bare FastAPI app: `api: ...` last.
bench-api: venv
	$(PY) bench/api/run.py

# Structure figures (cycles, upward imports, function-level imports, type: ignore, large files) beside the
# commit before the architecture redesign.
bench-arch: venv
	$(PY) bench/arch/run.py

# The advisor's intent model on its held-out questions (never used for tuning): `advisor: ...` last.
bench-advisor: venv
	$(PY) bench/advisor/eval.py

# Janitor evaluation cases against a real model (offline and fake-server runs are part of `make test`).
evals: venv
	@if [ -z "$$OPENAI_API_KEY" ]; then \
	  echo "evals: OPENAI_API_KEY is not set, so there is no real model to evaluate; the eval cases already run"; \
	  echo "       offline and against the local fake OpenAI server in 'make test'. Nothing to do."; \
	else \
	  LEVQOR_EVALS_REAL=1 LEVQOR_EVALS_OPENAI_API_KEY="$$OPENAI_API_KEY" LEVQOR_EVALS_OPENAI_BASE_URL="$$OPENAI_BASE_URL" \
	    $(PY) -m pytest tests/agents/janitor/test_evals.py -k real -v; \
	fi

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
