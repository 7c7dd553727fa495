# One entry point for developers and CI. Every target creates the environment it needs.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
RUN := $(UV) run --frozen
# Settings come from the environment; a .env file (see .env.example) is read when present.
ifneq (,$(wildcard .env))
include .env
export $(shell sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' .env)
endif
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
PYTEST_ARGS ?=
TEST_WORKERS ?= 2
# TEST_WORKERS test processes (pytest-xdist), a test module each at a time; 0 runs them in one.
# Modules go out in collection order, the long ones first (tests/conftest.py), not xdist's
# default of the most tests first, which left the few-test, minutes-long modules to the end.
PYTEST_PROCESSES = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: help env generate-events demo dev dev-reset test test-fast lint format ui prepare clean docs docs-check

help:
	@echo "make demo             run the platform end to end on the local default"
	@echo "make dev              the whole platform live (UI, collector, CDC, Beam) until Ctrl-C"
	@echo "make dev-reset        delete what make dev keeps (data/dev), to start over"
	@echo "make test             run every test (make test-fast skips the slow end-to-end ones)"
	@echo "make generate-events  land a synthetic 30-day shop in the local raw lake"
	@echo "make ui               open the Dagster UI (http://127.0.0.1:3000)"
	@echo "make lint             ruff + sqlfluff"
	@echo "make docs             regenerate docs/ from the code, dbt and Dagster (make docs-check: stale?)"

$(UV):
	python3 -m pip install --quiet --user uv

env: $(UV)
	$(UV) sync --frozen
	@mkdir -p $(DAGSTER_HOME)
	@test -f $(DAGSTER_HOME)/dagster.yaml || cp infra/dagster/local-dagster.yaml $(DAGSTER_HOME)/dagster.yaml

prepare: env
	$(RUN) dagster-dbt project prepare-and-package --file platform_assets/dbt/project.py

generate-events: env
	$(RUN) python -m devtools.shop

demo: prepare
	$(RUN) python -m devtools.demo

# exec: Ctrl-C and SIGTERM reach the supervisor itself, which stops everything within 30 s
dev: prepare
	exec $(RUN) python -m devtools.dev

dev-reset: env
	$(RUN) python -m devtools.dev reset

test: prepare
	$(RUN) pytest $(PYTEST_PROCESSES) $(PYTEST_ARGS)

test-fast: prepare
	$(RUN) pytest $(PYTEST_PROCESSES) -m "not slow" $(PYTEST_ARGS)

lint: env
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) sqlfluff lint dbt_project/models dbt_project/analyses

format: env
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

# docs/ is generated; tests/platform_assets/genai/test_docgen.py runs the check in `make test`
docs: prepare
	$(RUN) python -m platform_assets.genai.docgen

docs-check: prepare
	$(RUN) python -m platform_assets.genai.docgen --check

ui: prepare
	$(RUN) dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean:
	rm -rf data .dagster_home dbt_project/target dbt_project/logs
