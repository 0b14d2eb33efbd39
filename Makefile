# The README's two commands are `make demo` and `make test`; both set themselves up.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(CURDIR)/$(VENV)/bin
# The npm package ships anvil; the project's scripts and tests start its native binary
# (scripts/_anvil.py), and `.bin` on PATH serves an `ape console` started by hand.
export PATH := $(CURDIR)/node_modules/.bin:$(BIN):$(PATH)
STAMP_PY := $(VENV)/.installed
STAMP_JS := node_modules/.installed
PYTEST_ARGS ?=

.PHONY: setup test demo bench lint clean tools backtest efficiency

tools:
	@command -v python3.11 >/dev/null || command -v python3 >/dev/null || { echo "error: Python 3.11 is missing (install python3.11)"; exit 1; }
	@python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "error: Python 3.11 is required, found $$(python3 --version)"; exit 1; }
	@command -v npm >/dev/null || { echo "error: npm is missing (install Node.js 18+ with npm)"; exit 1; }
	@command -v git >/dev/null || { echo "error: git is missing (install git)"; exit 1; }

# Idempotent: each step runs only when its inputs changed since it last succeeded.
setup: tools $(STAMP_PY) $(STAMP_JS)

$(STAMP_PY): pyproject.toml requirements.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=23"
	$(PY) -m pip install -q -c requirements.lock -e .
	@touch $@

$(STAMP_JS): package.json package-lock.json
	@# `npm install` rather than `npm ci`: the lock holds only the platforms this registry serves.
	npm install --no-save --no-audit --no-fund --loglevel=error
	@node_modules/.bin/anvil --version >/dev/null || { echo "error: the anvil binary of @foundry-rs/anvil does not run on this platform"; exit 1; }
	@touch $@

# `compile --force`: ape-vyper rebuilds a changed module but not the contracts importing it.
test: setup
	$(BIN)/ape compile --force >/dev/null
	$(BIN)/ape test $(PYTEST_ARGS)

demo: setup
	$(BIN)/ape run demo

bench: setup
	$(BIN)/ape run bench_gas
	$(BIN)/ape run bench_liquidation
	$(PY) -m bench.offchain_speed
	$(PY) -m bench.keeper_round
	$(PY) -m bench.keeper_state
	$(PY) -m bench.keeper_sweep
	$(PY) -m bench.gap_drain

# The risk model's reports (docs/backtest-results.md): out/backtest/report.md with charts.
backtest: setup
	$(PY) -m offchain backtest --out out/backtest --write

efficiency: setup
	$(PY) -m offchain efficiency --write

# Contract checks: sizes; one global re-entrancy lock wherever a contract calls out;
# vyper-guard findings against the reviewed baseline (docs/security.md). No tracked file may
# point outside the checkout (scripts/lint_paths.py).
lint: setup
	$(BIN)/ruff check offchain scripts tests bench
	$(BIN)/ruff format --check offchain scripts tests bench
	$(PY) -m scripts.lint_paths
	$(PY) -m scripts.lint_contracts
	$(PY) -m scripts.lint_reentrancy
	$(PY) -m scripts.lint_guard

clean:
	rm -rf .build out .cache
