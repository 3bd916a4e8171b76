# Ogem: `make run` serves a complete gateway; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
OGEM_WORKERS ?= 1
# Two stamps: `make run` needs Ogem's runtime dependencies only; tests and tools add the dev extras.
STAMP := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime
# pip's output cut to one line a package downloaded or built, and a word on the silent install.
PIP_PROGRESS := { grep --line-buffered -E '^(Collecting|Building wheel for|Installing collected|Successfully installed|ERROR)' \
	| sed -u -E 's/^(Installing collected packages):.*/\1 (no output until it is done).../; s/^Successfully installed .*/Installed./' || true; }

.PHONY: run test worker beat bench lint format install migrate

$(VENV):
	@echo "First run: creating $(VENV) and installing Ogem into it (about 2 minutes)."
	@$(PYTHON) -m venv $(VENV)
	@echo "Upgrading pip..."
	@$(BIN)/pip install --progress-bar off --upgrade pip 2>&1 | $(PIP_PROGRESS); \
		test $${PIPESTATUS[0]} -eq 0

# A dev install (make test, CI) has everything run needs: no second install.
$(RUNTIME_STAMP): pyproject.toml sdk/python/pyproject.toml | $(VENV)
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then touch $@; else \
		echo "Installing Ogem's runtime dependencies..."; \
		$(BIN)/pip install --progress-bar off -e . -e ./sdk/python 2>&1 | $(PIP_PROGRESS); \
		test $${PIPESTATUS[0]} -eq 0 && touch $@; fi

$(STAMP): pyproject.toml sdk/python/pyproject.toml | $(VENV)
	@echo "Installing Ogem with its test and development tools..."
	@$(BIN)/pip install --progress-bar off -e '.[dev]' -e ./sdk/python 2>&1 | $(PIP_PROGRESS); \
		test $${PIPESTATUS[0]} -eq 0 && touch $(STAMP) $(RUNTIME_STAMP)

install: $(STAMP)

migrate: $(RUNTIME_STAMP)
	@$(BIN)/python manage.py migrate --noinput

run: $(RUNTIME_STAMP)
	@$(BIN)/python manage.py serve --host $(HOST) --port $(PORT) --workers $(OGEM_WORKERS)

# One test process per core (pytest-xdist), a file's tests in one process (they share its fixtures).
TEST_WORKERS ?= auto

# Tests marked `alone` compare wall-clock figures with another tool's: they run after the
# parallel suite, by themselves, so no other test shares their cores.
test: $(STAMP)
	@$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not alone"
	@$(BIN)/python -m pytest -m alone

worker: $(RUNTIME_STAMP)
	@$(BIN)/celery -A ogem_site worker --loglevel=INFO

beat: $(RUNTIME_STAMP)
	@$(BIN)/celery -A ogem_site beat --loglevel=INFO

# e.g. make bench BENCH_ARGS="--soak 200000" or BENCH_ARGS="--slow-streams 2000"
bench: $(STAMP)
	@$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	@$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	@$(BIN)/ruff format . && $(BIN)/ruff check --fix .
