# Linkdeck's front door: `make run` to use it locally, `make test` to check it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5000
IDP_PORT ?= 9400
# One test process per core; set PYTEST_ARGS (e.g. to -k something) to run some tests in one.
PYTEST_ARGS ?= -n auto

.DEFAULT_GOAL := help
.PHONY: help install run test lint format bench bench-reads bench-shipping

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(STAMP) ## Create .venv and install the app with its dev tools

run: $(STAMP) ## Run the app on :$(PORT) with SQLite and the local OIDC provider on :$(IDP_PORT)
	@BIN="$(BIN)" PORT=$(PORT) IDP_PORT=$(IDP_PORT) bin/run-local

test: $(STAMP) ## Run the whole test suite (set TEST_DATABASE_URL for PostgreSQL)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## Check style and common bugs with ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP) ## Redirect vs minimal Flask: rate, p99, CPU ratios, SIGTERM click count (BENCH_DATABASE_URL: PG)
	$(BIN)/python bench/redirects.py $(BENCH_ARGS)

bench-shipping: $(STAMP) ## Storing spooled clicks: shipper and database CPU per click (BENCH_DATABASE_URL: PG)
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/shipping.py $(BENCH_ARGS)

bench-reads: $(STAMP) ## Seed 1M links / 10M clicks (BENCH_DATABASE_URL, PostgreSQL); time the read paths
	$(BIN)/python bench/reads.py $(BENCH_ARGS)

format: $(STAMP) ## Reformat the code with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
