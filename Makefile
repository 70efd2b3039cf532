# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv (if needed) and installs mailfleet into it first.

VENV ?= .venv
BIN := $(VENV)/bin
SOURCES := pyproject.toml $(shell find shared producer worker dashboard -name '*.py' -o -name '*.lua' -o -name '*.html' -o -name '*.js' -o -name '*.css' 2>/dev/null)

.PHONY: demo test lint typecheck unit integration bench bench-peers clean

# Strict editable mode links each module into build/, so mypy and the runtime see the
# mailfleet.* names; a new module needs a re-install, hence the dependency on SOURCES.
$(VENV)/.installed: $(SOURCES)
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	rm -rf build/__editable__*  # links to modules that were moved or deleted must go
	$(BIN)/python -m pip install -q -e '.[dev,django,devtools,inbound]' --config-settings editable_mode=strict
	touch $@

demo: $(VENV)/.installed
	$(BIN)/mailfleet demo

test: lint typecheck
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy

unit: $(VENV)/.installed
	$(BIN)/pytest tests/unit

integration: $(VENV)/.installed
	$(BIN)/pytest tests/integration

bench: $(VENV)/.installed
	$(BIN)/python tests/benchmarks/bench_throughput.py

# The peer benchmark needs Dramatiq: the `bench` extra, installed on top of the dev venv.
# Options go in PEERS, e.g. `make bench-peers PEERS="--n 2000 --rounds 1"`.
$(VENV)/.installed-bench: pyproject.toml | $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[dev,django,devtools,inbound,bench]' --config-settings editable_mode=strict
	touch $@

bench-peers: $(VENV)/.installed $(VENV)/.installed-bench
	$(BIN)/python tests/benchmarks/bench_peers.py $(PEERS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
