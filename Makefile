# Stride — the two commands:
#   make demo   set everything up, load the demo and start the server on http://127.0.0.1:8000
#               (with the follow-up worker; demo email goes to var/mail)
#   make test   set everything up and run the whole test suite (SQLite, and PostgreSQL when
#               STRIDE_TEST_POSTGRES_URL is set)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test lint check serve bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Stride needs Python 3.11 or newer (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/stride migrate --no-input -v 0
	$(BIN)/stride demo
	$(BIN)/stride serve --host $(HOST) --port $(PORT) --with-worker

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/stride makemigrations --check --dry-run -v 1
	$(BIN)/stride catalog check

test: lint
	STRIDE_HOME=$$(mktemp -d) $(BIN)/pytest -n auto -q
	@if [ -n "$$STRIDE_TEST_POSTGRES_URL" ]; then \
		echo "--- again on PostgreSQL"; \
		STRIDE_HOME=$$(mktemp -d) DATABASE_URL="$$STRIDE_TEST_POSTGRES_URL" $(BIN)/pytest -n auto -q; \
	fi

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/synth.py
	$(BIN)/python bench/submissions.py
	$(BIN)/python bench/report.py
	$(BIN)/python bench/imaging.py
	$(BIN)/python bench/interop.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build src/*.egg-info
