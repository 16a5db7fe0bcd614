# gridvend — the two commands a newcomer needs are `make demo` and `make test`.
# Every target sets up what it needs: the virtualenv from pinned requirements, the MicroPython
# (WebAssembly) runner from a locked npm package, and the Debian packages the tests drive
# (mosquitto, socat, node, chromium and a CJK font, nats-server) when missing and we are root.

SHELL      := /bin/bash
.SHELLFLAGS := -eo pipefail -c
QUIET_PIP  := 2>&1 | { grep -v '^WARNING: Location' || true; }
PYTHON     ?= python3
VENV       := .venv
BIN        := $(VENV)/bin
PY         := $(BIN)/python
UPY_DIR    := tests/upy
UPY_STAMP  := $(UPY_DIR)/node_modules/.gridvend-stamp
VENV_STAMP := $(VENV)/.gridvend-stamp
SYS_STAMP  := .sysdeps-ok
# The web UI's front-end files: npm ci from the lock, then copied with their licences.
WEB_ASSETS := cloud/web/assets
WEB_STAMP  := cloud/web/static/vendor/.gridvend-stamp
PYTEST_ARGS ?=
# Test modules run on this many workers (pytest-xdist; a module stays on one worker, so its live
# servers are shared by its tests). Most tests wait on brokers, browsers and child processes: 3
# workers keep 2 cores busier than 2 do.
TEST_WORKERS ?= 3

.PHONY: help setup sysdeps test test-py test-upy lint fmt typecheck bench demo hil clean

help:
	@echo "make demo   - set up and run the whole system on embedded defaults"
	@echo "make test   - set up, lint, and run every test (CPython + MicroPython)"
	@echo "make bench  - run the benchmarks in bench/ (figures in docs/benchmarks.md)"
	@echo "make lint   - ruff check, ruff format --check, mypy"
	@echo "make hil    - driver catalogue against real hardware or the simulator"

sysdeps: $(SYS_STAMP)
$(SYS_STAMP): scripts/sysdeps.sh
	@bash scripts/sysdeps.sh
	@touch $@

$(VENV_STAMP): pyproject.toml requirements/lock.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "gridvend needs Python 3.11 or newer; found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/lock.txt $(QUIET_PIP)
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . $(QUIET_PIP)
	@touch $@

$(UPY_STAMP): $(UPY_DIR)/package.json $(UPY_DIR)/package-lock.json
	@cd $(UPY_DIR) && npm ci --silent --no-audit --no-fund 2>&1 | grep -v 'Unknown user config' || true
	@test -f $(UPY_DIR)/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs
	@touch $@

$(WEB_STAMP): $(WEB_ASSETS)/package.json $(WEB_ASSETS)/package-lock.json $(WEB_ASSETS)/vendor.py
	@cd $(WEB_ASSETS) && npm ci --silent --no-audit --no-fund 2>&1 | grep -v 'Unknown user config' || true
	@$(PYTHON) $(WEB_ASSETS)/vendor.py
	@touch $@

setup: $(SYS_STAMP) $(VENV_STAMP) $(UPY_STAMP) $(WEB_STAMP)

lint: $(VENV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(VENV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test-py: setup
	$(BIN)/pytest -q -m "not hil" -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test-upy: $(UPY_STAMP)
	node $(UPY_DIR)/run.mjs

test: setup lint test-py test-upy

bench: setup
	$(BIN)/gridvend bench all

demo: setup
	$(BIN)/gridvend demo $(DEMO_ARGS)

hil: setup
	$(PY) -m hil

clean:
	rm -rf $(VENV) $(UPY_DIR)/node_modules $(WEB_ASSETS)/node_modules cloud/web/static/vendor $(SYS_STAMP) .pytest_cache .mypy_cache .ruff_cache
