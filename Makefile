# Tidewater. `make up` runs the pipeline live on the native stack (`make down` stops it); `make demo` runs it once;
# `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV_VERSION := 0.13.9
VENV := .venv
BIN := $(VENV)/bin
STACK := stack/stack.sh
# uv from PATH, else where `pip install --user` puts it (not on PATH on a fresh machine).
UV := $(shell command -v uv 2>/dev/null || echo "$$($(PYTHON) -m site --user-base)/bin/uv")
# Sources the settings and Airflow connections the stack writes.
WITH_ENV := set -a && . ./.stack/env && set +a &&
# `make test` runs on its own instance of the stack (stack/test.env: data in .stack-test/, other ports): the
# deployment in .stack/ is not touched.
TEST_STACK := TIDEWATER_STACK_DIR=$(CURDIR)/.stack-test TIDEWATER_STACK_PROFILE=stack/test.env $(STACK)
WITH_TEST_ENV := set -a && . ./.stack-test/env && set +a &&
PYTEST_ARGS ?=

.PHONY: help install lock lint up down proxy-up proxy-down stack-up stack-down stack-status airflow-up airflow-down airflow-status demo-break demo-repair \
        shop-migrate shop-seed shop-run cdc-register cdc-status cdc-peek drain bench-drain test test-stack-up test-stack-down unit-test demo clean \
        notebook notebook-install notebook-down notebook-status

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x "$(UV)" || $(PYTHON) -m pip install --quiet --user "uv==$(UV_VERSION)"
	@test -x $(BIN)/python || "$(UV)" venv --quiet --python $(PYTHON) $(VENV)
	# Bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set (CI has it) every Python process would
	# otherwise compile Airflow again (~3 s of CPU per `airflow` or `dbt` command).
	"$(UV)" pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.txt
	"$(UV)" pip install --quiet --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m tidewater.duck
	@touch $@

# The dbt manifest Cosmos renders the warehouse DAG from (LoadMode.DBT_MANIFEST).
# The shop's marts are a dbt package (examples/shop/dbt, dbt/packages.yml): `dbt deps` links it first.
dbt/target/manifest.json: install $(shell find dbt/models dbt/macros examples/shop/dbt -type f) dbt/dbt_project.yml \
		dbt/profiles.yml dbt/packages.yml
	cd dbt && DBT_PROFILES_DIR=. ../$(BIN)/dbt deps --quiet && DBT_PROFILES_DIR=. ../$(BIN)/dbt parse --quiet

# The drain's compiled decoder (Rust, pyo3): cargo's build cache and the wheel live outside the repo so every
# clone and CI reuse them; crates come from ~/.cargo/registry at the versions in Cargo.lock.
NATIVE := native/tidewater_decode
NATIVE_CACHE := $(HOME)/.cache/tidewater
$(VENV)/.native: $(VENV)/.installed $(NATIVE)/Cargo.toml $(NATIVE)/Cargo.lock $(NATIVE)/pyproject.toml $(wildcard $(NATIVE)/src/*.rs)
	@command -v cargo >/dev/null || { echo "cargo not found: $(NATIVE) needs Rust >= 1.85 (rustup, or the rust image)"; exit 1; }
	rm -f $(NATIVE_CACHE)/native-wheels/tidewater_decode-*.whl
	CARGO_TARGET_DIR=$(NATIVE_CACHE)/cargo-target nice $(BIN)/maturin build --quiet --release --locked \
	  -m $(NATIVE)/Cargo.toml --interpreter $(BIN)/python -o $(NATIVE_CACHE)/native-wheels
	"$(UV)" pip install --quiet --python $(BIN)/python --no-deps --reinstall $(NATIVE_CACHE)/native-wheels/tidewater_decode-*.whl
	@touch $@

install: $(VENV)/.installed $(VENV)/.native ## create .venv from the pinned requirements.txt (uv; cache in ~/.cache/uv), build native/
	@# The data docs' pinned scripts and styles (npm ci once into ~/.cache/tidewater/docs-assets; tidewater.ui.vendor).
	$(BIN)/python -m tidewater.ui.vendor

lock: ## re-resolve requirements.in (and notebooks/requirements.in) into the fully pinned requirements.txt files
	"$(UV)" pip compile requirements.in --python-version 3.11 --no-header -o requirements.txt
	"$(UV)" pip compile notebooks/requirements.in -c requirements.txt --python-version 3.11 --no-header \
	  -o notebooks/requirements.txt

# The notebooks' own virtualenv: JupyterLab, nbclient, DuckDB and its extensions, pandas, matplotlib, pinned in
# notebooks/requirements.txt (no Airflow), plus the tidewater package for tidewater.marts_reader.
NOTEBOOK_VENV := .venv-notebook
$(NOTEBOOK_VENV)/.installed: notebooks/requirements.txt pyproject.toml
	@test -x "$(UV)" || $(PYTHON) -m pip install --quiet --user "uv==$(UV_VERSION)"
	@test -x $(NOTEBOOK_VENV)/bin/python || "$(UV)" venv --quiet --python $(PYTHON) $(NOTEBOOK_VENV)
	"$(UV)" pip sync --quiet --compile-bytecode --python $(NOTEBOOK_VENV)/bin/python notebooks/requirements.txt
	"$(UV)" pip install --quiet --python $(NOTEBOOK_VENV)/bin/python --no-deps -e .
	$(NOTEBOOK_VENV)/bin/python -m tidewater.duck
	@touch $@

notebook-install: $(NOTEBOOK_VENV)/.installed ## create .venv-notebook from the pinned notebooks/requirements.txt

notebook: stack-up notebook-install ## JupyterLab on the published marts (read-only), 127.0.0.1:28888/notebook/; prints its URL
	$(STACK) notebook-up

notebook-down: ## stop JupyterLab
	$(STACK) notebook-down

notebook-status:
	$(STACK) notebook-status

lint: install ## ruff
	$(BIN)/ruff check .

up: cdc-register dbt/target/manifest.json notebook-install ## the pipeline live: Airflow, DAGs unpaused, shop traffic (RATE=2), notebooks, proxy; returns at the first publication
	$(STACK) airflow-up
	$(STACK) notebook-up
	$(STACK) proxy-up
	$(WITH_ENV) $(BIN)/python -m tidewater_dev.up $${RATE:+--rate $$RATE}

down: ## pause every DAG, stop the shop traffic, stop the stack (data stays in .stack/)
	if [ -f .stack/env ]; then $(WITH_ENV) $(BIN)/python -m tidewater_dev.up down; fi
	$(STACK) down

proxy-up: ## one address for every web UI (Caddy on TIDEWATER_PROXY_PORT) and the mail view
	$(STACK) proxy-up

proxy-down:
	$(STACK) proxy-down

stack-up: install ## start PostgreSQL, Kafka, Kafka Connect + Debezium, MinIO, SMTP sink (idempotent)
	$(STACK) up

stack-down: ## stop every service, Airflow included (data stays in .stack/)
	$(STACK) down

stack-status: ## one line per service
	$(STACK) status

airflow-up: stack-up ## start Airflow 3: api-server, scheduler, dag-processor, triggerer
	$(STACK) airflow-up

airflow-down: ## stop Airflow's processes
	$(STACK) airflow-down

airflow-status:
	$(STACK) airflow-status

shop-migrate: stack-up ## apply the shop's SQL migrations
	$(WITH_ENV) $(BIN)/tidewater shop migrate

shop-seed: shop-migrate ## initial load (CSV files + generated rows)
	$(WITH_ENV) $(BIN)/tidewater shop seed

shop-run: ## simulator traffic: make shop-run RATE=5 DURATION=60
	$(WITH_ENV) $(BIN)/tidewater shop run --rate $${RATE:-5} --duration $${DURATION:-60}

cdc-register: shop-migrate ## register (or update) the Debezium connector
	$(WITH_ENV) $(BIN)/tidewater cdc register

cdc-status: ## connector and task state
	$(WITH_ENV) $(BIN)/tidewater cdc status

cdc-peek: ## events per CDC topic and the newest event of each
	$(WITH_ENV) $(BIN)/tidewater cdc peek

unit-test: install ## tests that need no services
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

test: test-stack-up dbt/target/manifest.json $(NOTEBOOK_VENV)/.installed ## every test, on the stack's test instance (.stack-test/; starts it first)
	$(TEST_STACK) airflow-migrate
	$(WITH_TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

test-stack-up: install ## start the stack's test instance (what `make test` and a bare pytest use)
	$(TEST_STACK) up

test-stack-down: ## stop the test instance of the stack (data stays in .stack-test/)
	$(TEST_STACK) down

demo: cdc-register dbt/target/manifest.json ## the whole pipeline on the native stack, then a summary (again: more traffic, another run)
	$(STACK) airflow-up
	$(WITH_ENV) $(BIN)/python -m tidewater_dev.demo

demo-break: ## make one shop order item bad: the next `make demo` stops at the gate and publishes nothing
	$(WITH_ENV) $(BIN)/python -m tidewater_dev.demo break

demo-repair: ## put the demo's bad order item right (the next `make demo` publishes again)
	$(WITH_ENV) $(BIN)/python -m tidewater_dev.demo repair

bench-drain: ## drain vs baseline vs floor on 1M real-shaped events (results: docs/benchmarks.md)
	$(WITH_ENV) $(BIN)/python bench/drain_benchmark.py --events $${EVENTS:-1000000}

drain: ## one cdc_drain run in-process (airflow dags test), then what the lake holds
	$(WITH_ENV) $(BIN)/airflow dags test cdc_drain >.stack/logs/dags-test-cdc_drain.log 2>&1 \
	  || { tail -40 .stack/logs/dags-test-cdc_drain.log; exit 1; }
	$(WITH_ENV) $(BIN)/tidewater cdc lake

clean: stack-down test-stack-down ## stop everything and delete .stack/ and .stack-test/ (all local data)
	rm -rf .stack .stack-test
