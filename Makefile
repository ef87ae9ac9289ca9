# Everything installs into .venv on first use; a fresh machine needs only Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo lint test test-all bench clean

$(BIN)/chatsync: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: $(BIN)/chatsync
	$(BIN)/chatsync demo

# Ruff over the code (see [tool.ruff] for what is left out for now), then mypy over the
# folders that [tool.mypy] names: strict on extract/, transform/ and load/.
lint: $(BIN)/chatsync
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(BIN)/chatsync lint
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(BIN)/chatsync
	CHATSYNC_HYPOTHESIS_EXAMPLES=2000 $(BIN)/python -m pytest -q

bench: $(BIN)/chatsync
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache *.duckdb *.duckdb.wal
