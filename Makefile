# The two commands a fresh machine needs (see README.md):
#   make devnet   installs everything and runs the local two-chain demo
#   make test     installs everything and runs the static checks and the whole test suite
# .ci/run calls `make test`.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Two pytest workers (pytest-xdist), one test file each at a time so module fixtures (an anvil, a
# deployment) stay shared: most tests wait on chains and child processes, so two workers finish
# in about two thirds of the serial time on two cores. `make test TEST_WORKERS=0` runs serially.
TEST_WORKERS ?= 2
ifeq ($(TEST_WORKERS),0)
PARALLEL :=
else
PARALLEL := -n $(TEST_WORKERS) --dist loadfile
endif

.PHONY: setup tools proto contracts lint test devnet bench clean

setup: $(STAMP) tools proto contracts

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

tools:
	bash scripts/install-tools.sh
	bash scripts/install-hyperlane.sh
	bash scripts/install-prometheus.sh
	bash scripts/install-postgres.sh
	bash scripts/install-chromium.sh

proto: $(STAMP)
	$(PY) -m relay.rpc.build

contracts: $(STAMP) tools
	$(PY) -m adapters.evm.build

lint: setup
	$(VENV)/bin/ruff check relay adapters tests
	$(VENV)/bin/ruff format --check relay adapters tests
	$(VENV)/bin/mypy relay adapters
	$(VENV)/bin/lint-imports

test: setup lint
	$(VENV)/bin/pytest -q -p no:cacheprovider $(PARALLEL) $(PYTEST_ARGS)

devnet: setup
	$(VENV)/bin/relay devnet $(DEVNET_ARGS)

bench: setup
	$(VENV)/bin/relay bench verify

clean:
	rm -rf build .mypy_cache .ruff_cache relay/v1
