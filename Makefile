# Scythe: `make demo` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MOTO_PORT ?= 5055

.PHONY: demo test lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,analysis,infra]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/scythe demo

# First the one-way layers (the import-linter contract in pyproject.toml), then the
# suite on two pytest-xdist workers (a test file stays on one). Each worker starts
# moto's S3 server on 127.0.0.1 itself (tests/conftest.py; ports MOTO_PORT and
# MOTO_PORT+1), so boto3 and deltalake both talk real HTTP to it.
test: $(STAMP)
	$(BIN)/lint-imports --no-cache
	TEST_MOTO_PORT=$(MOTO_PORT) $(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check scythe analysis tests examples benchmarks
	$(BIN)/ruff format --check scythe analysis tests examples benchmarks

format: $(STAMP)
	$(BIN)/ruff check --fix scythe analysis tests examples benchmarks
	$(BIN)/ruff format scythe analysis tests examples benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis scythe-data
