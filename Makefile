# One command sets up and runs each job; the virtualenv is made on first use.
#   make demo    the demo app traced into the local store, then the viewer on it
#   make test    lint, type check and the whole test suite (what CI runs)
#   make bench   the benchmarks behind BENCHMARKS.md
#   make collector  build (or reuse) the OpenTelemetry Collector and Jaeger, print their paths

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Debian packages the tests and benchmarks drive: a real browser, compose's offline
# validator, a load generator, jemalloc, and PostgreSQL's server programs (the tests
# start a throwaway cluster of their own: cvtrace/demo/postgres.py; Debian's own
# cluster is left alone).
SYSTEM_PACKAGES := chromium docker-compose wrk libjemalloc2 postgresql

.PHONY: setup system-deps node-deps collector demo view test lint pytest bench clean
NODE_STAMP := tests/node/node_modules/.package-lock.json

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# pip's and setuptools' notices go to a log, shown only if the install fails.
	@# compat mode: packages added later are importable without reinstalling.
	{ $(BIN)/python -m pip install --quiet --upgrade pip && \
	  $(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat; \
	} > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	touch $@

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The OpenTelemetry JS SDK, for the test that another language's SDK can send to the
# viewer unmodified (tests/viewer/test_interop.py); from the lockfile, npm's registry only.
node-deps: $(NODE_STAMP)

$(NODE_STAMP): tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error

# cvtrace's collector distribution and Jaeger v2, built from their Go modules into
# .cache/bin/ (deploy/build.sh); a no-op until a pin in deploy/ changes. Prints their
# paths, collector first. The tests run both for real (tests/ops/).
collector:
	@deploy/build.sh

demo: $(STAMP)
	$(BIN)/cvtrace demo

view: $(STAMP)
	$(BIN)/cvtrace view

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pytest: $(STAMP) system-deps node-deps collector
	$(BIN)/python -m pytest

test: lint pytest

bench: $(STAMP) system-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info tests/node/node_modules .cache
