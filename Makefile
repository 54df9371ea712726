# One command sets up and runs each job; the virtualenv is made on first use.
#   make demo    the demo app traced into the local store, then the viewer on it
#   make test    lint, type check, the whole test suite, and the library's tests at both
#                ends of the OpenTelemetry range it claims (what CI runs)
#   make bench   the benchmarks behind BENCHMARKS.md
#   make bench-scale  the cost curve up to 10M stored spans (python -m bench --scale)
#   make collector  build (or reuse) the OpenTelemetry Collector and Jaeger, print their paths
#   make stack   the compose stack without Docker: demo, collector, Jaeger, viewer, traffic

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Debian packages the tests and benchmarks drive: a real browser, compose's offline
# validator, a load generator, jemalloc, and PostgreSQL's server programs (the tests
# start a throwaway cluster of their own: cvtrace/demo/postgres.py; Debian's own
# cluster is left alone).
SYSTEM_PACKAGES := chromium docker-compose wrk libjemalloc2 postgresql

.PHONY: setup system-deps node-deps collector stack demo view test lint pytest sdk-range bench bench-scale clean
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

# What compose runs, as local processes on 127.0.0.1 (cvtrace/demo/stack.py): the demo
# and its preview service, the collector on otel-collector.yaml, Jaeger and the viewer,
# with traffic; it prints every URL, and Ctrl-C stops every process it started.
stack: $(STAMP) collector
	$(BIN)/python -m cvtrace.demo.stack $(ARGS)

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

test: lint pytest sdk-range

# The OpenTelemetry releases pyproject.toml claims, tested at both ends: the library's
# and the OTLP wire code's tests in one venv with the lowest releases pinned, and in one
# with the newest that pip finds in range (looked up again on every run). The `demo`
# extra (the viewer's decoding, psycopg for the PostgreSQL tests) comes along. The drift
# check compares with the contrib instrumentations pinned in the dev extra, so it runs
# in .venv only.
SDK_VENVS := .venv-sdk
OTEL_LOWEST := $(shell sed -n 's/^ *"opentelemetry-sdk>=\([0-9.]*\),.*/\1/p' pyproject.toml)
OTEL_INSTRUMENTATION_LOWEST := $(shell sed -n \
  's/^ *"opentelemetry-instrumentation-requests>=\([0-9a-z.]*\),.*/\1/p' pyproject.toml)
GRPCIO_LOWEST := $(shell sed -n 's/^ *"grpcio>=\([0-9.]*\)".*/\1/p' pyproject.toml)
SDK_RANGE_TOOLS := pytest pytest-timeout gunicorn hypothesis
SDK_RANGE_TESTS := tests/library tests/otlp --ignore=tests/library/test_drift.py
SDK_RANGE_REPORT := from importlib.metadata import version as v; \
  print(*(f"{p} {v(p)}" for p in ("opentelemetry-sdk", "opentelemetry-instrumentation-requests", "grpcio", "protobuf")), sep=", ")

sdk-range: $(SDK_VENVS)/lowest/.stamp
	@echo "OpenTelemetry, lowest claimed: $$($(SDK_VENVS)/lowest/bin/python -c '$(SDK_RANGE_REPORT)')"
	$(SDK_VENVS)/lowest/bin/python -m pytest -q $(SDK_RANGE_TESTS)
	@test -x $(SDK_VENVS)/newest/bin/python || $(PYTHON) -m venv $(SDK_VENVS)/newest
	$(SDK_VENVS)/newest/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager \
	  -e '.[demo]' --config-settings editable_mode=compat opentelemetry-exporter-otlp-proto-common \
	  $(SDK_RANGE_TOOLS)
	@echo "OpenTelemetry, newest in range: $$($(SDK_VENVS)/newest/bin/python -c '$(SDK_RANGE_REPORT)')"
	$(SDK_VENVS)/newest/bin/python -m pytest -q $(SDK_RANGE_TESTS)

$(SDK_VENVS)/lowest/.stamp: pyproject.toml Makefile
	rm -rf $(SDK_VENVS)/lowest
	$(PYTHON) -m venv $(SDK_VENVS)/lowest
	$(SDK_VENVS)/lowest/bin/python -m pip install --quiet -e '.[demo]' --config-settings editable_mode=compat \
	  opentelemetry-api==$(OTEL_LOWEST) opentelemetry-sdk==$(OTEL_LOWEST) \
	  opentelemetry-proto==$(OTEL_LOWEST) opentelemetry-exporter-otlp-proto-common==$(OTEL_LOWEST) \
	  opentelemetry-instrumentation-requests==$(OTEL_INSTRUMENTATION_LOWEST) \
	  opentelemetry-instrumentation-logging==$(OTEL_INSTRUMENTATION_LOWEST) \
	  grpcio==$(GRPCIO_LOWEST) $(SDK_RANGE_TOOLS)
	touch $@

bench: $(STAMP) system-deps collector
	$(BIN)/python -m bench

# The cost curve at 100k, 1M, 3M and 10M stored spans (bench/scale.py): make cannot take
# `make bench --scale` (it reads --scale as its own option), hence its own target. The
# stores are built once (about 15 minutes) and cached in .bench-data/scale/.
bench-scale: $(STAMP) system-deps
	$(BIN)/python -m bench --scale

clean:
	rm -rf $(VENV) $(SDK_VENVS) .pytest_cache .mypy_cache .ruff_cache *.egg-info tests/node/node_modules .cache
