# The two commands of the README: `make run` runs every scenario against the
# reference service, `make test` runs the linters and the whole test suite.
# Both create the virtual environment in .venv on first use.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Extra arguments for `model-chaos run`, e.g. make run ARGS="--loader basic".
ARGS ?=
# pytest-xdist workers for the test suite.
WORKERS ?= 2

.PHONY: run test lint unit venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/model-chaos run $(ARGS)

test: lint unit

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -n $(WORKERS) --dist loadgroup -p no:cacheprovider

clean:
	rm -rf $(VENV) .tox .mypy_cache .ruff_cache
