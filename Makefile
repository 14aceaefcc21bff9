# segsvc developer commands. `make run` and `make test` work on a fresh machine with
# Python 3.11+: each creates the virtualenv in .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROTOS := $(wildcard proto/segmentation/v1/*.proto)

.PHONY: run test lint typecheck proto proto-check bench clean

$(BIN)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]' -e clients/python
	touch $@

## Start the service (embedded PostgreSQL when SEGSVC_DATABASE_URL is unset).
run: $(BIN)/.installed
	SEGSVC_LOG_FORMAT=$${SEGSVC_LOG_FORMAT:-console} $(BIN)/segsvc serve

## Lint, type-check and run every test against a real PostgreSQL.
test: $(BIN)/.installed lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/buf lint

typecheck: $(BIN)/.installed
	$(BIN)/mypy

## Regenerate generated/ and the client's copy from proto/ (commit the result).
proto: $(BIN)/.installed
	$(BIN)/python tools/protogen.py generated
	$(BIN)/python tools/client_protogen.py

bench: $(BIN)/.installed
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
