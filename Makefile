# segsvc developer commands. `make run` and `make test` work on a fresh machine with
# Python 3.11+: each creates the virtualenv in .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROTOS := $(wildcard proto/segmentation/v1/*.proto)
# Go toolchain, gRPC/protobuf modules and protoc plugins from Debian: the Go stubs are
# generated and the Go example is built offline with exactly these (tools/go_*.py).
# golang-github-golang-protobuf-1-5-dev: grpc-go's codec must be the APIv2-backed 1.5 line;
# with the 1.3 one that grpc-go's package also accepts, the stubs panic at the first call.
GO_DEBS := golang-go golang-google-grpc-dev golang-google-protobuf-dev \
	golang-github-golang-protobuf-1-5-dev protobuf-compiler protoc-gen-go protoc-gen-go-grpc
# The contract callers were given; `buf breaking` compares proto/ against it.
RELEASED_CONTRACT := contracts/segmentation-v1.binpb

.PHONY: run test lint typecheck proto proto-check bench clean go-deps go-example release-contract

$(BIN)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]' -e clients/python
	touch $@

## Start the service (embedded PostgreSQL when SEGSVC_DATABASE_URL is unset).
run: $(BIN)/.installed
	SEGSVC_LOG_FORMAT=$${SEGSVC_LOG_FORMAT:-console} $(BIN)/segsvc serve

## Lint, type-check and run every test against a real PostgreSQL.
test: $(BIN)/.installed go-deps lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/buf lint
	$(BIN)/buf breaking --against $(RELEASED_CONTRACT)

## Install the Debian packages for the Go stubs and example (apt-get as root; else say how).
go-deps:
	@missing=""; for deb in $(GO_DEBS); do \
		dpkg-query -W -f='$${Status}' $$deb 2>/dev/null | grep -q "ok installed" || missing="$$missing $$deb"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing$$missing from Debian"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(GO_DEBS) >/dev/null; \
		else \
			echo "missing$$missing: run sudo apt-get install $(GO_DEBS)"; exit 1; \
		fi; \
	fi

## Build the Go example caller into build/segsvc-example.
go-example: go-deps
	$(PYTHON) tools/go_build.py segsvc-example build/segsvc-example

## Record proto/ as the released contract (only when releasing: later changes must not break it).
release-contract: $(BIN)/.installed
	$(BIN)/buf build -o $(RELEASED_CONTRACT)

typecheck: $(BIN)/.installed
	$(BIN)/mypy

## Regenerate generated/ and the client's copy from proto/ (commit the result).
proto: $(BIN)/.installed go-deps
	$(BIN)/python tools/protogen.py generated
	$(BIN)/python tools/client_protogen.py
	$(BIN)/python tools/go_protogen.py

## The server `make bench` measures, installed as production installs it: the runtime
## dependencies only (test tools such as trustme bring `cryptography`, which PyJWT then
## imports: 11 MiB of a worker's memory), editable so that it runs this tree's code.
BENCH_VENV := build/bench-venv
$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e .
	touch $@

bench: $(BIN)/.installed $(BENCH_VENV)/.installed
	SEGSVC_BENCH_SERVER=$(BENCH_VENV)/bin/segsvc $(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .mypy_cache .ruff_cache
