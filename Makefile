# Ogem: `make run` serves a complete gateway; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
OGEM_WORKERS ?= 1
STAMP := $(VENV)/.installed

.PHONY: run test worker beat bench lint format install migrate

$(STAMP): pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	@$(BIN)/python manage.py migrate --noinput

run: $(STAMP)
	@$(BIN)/python manage.py serve --host $(HOST) --port $(PORT) --workers $(OGEM_WORKERS)

test: $(STAMP)
	@$(BIN)/python -m pytest

worker: $(STAMP)
	@$(BIN)/celery -A ogem_site worker --loglevel=INFO

beat: $(STAMP)
	@$(BIN)/celery -A ogem_site beat --loglevel=INFO

# e.g. make bench BENCH_ARGS="--soak 200000" or BENCH_ARGS="--slow-streams 2000"
bench: $(STAMP)
	@$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	@$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	@$(BIN)/ruff format . && $(BIN)/ruff check --fix .
