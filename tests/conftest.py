"""Shared fixtures: a clean environment and a reset cvtrace around every test; OTLP
receivers, and a throwaway PostgreSQL server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cvtrace import _guard, testing
from cvtrace.demo.postgres import PostgresError, ThrowawayPostgres
from cvtrace.store import SpanStore
from tests.otlp_receiver import GrpcOtlpReceiver, HttpOtlpReceiver


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No OTEL_*, CVTRACE_* or NEW_RELIC_* variable from the outside leaks into a test.

    Tests set the ones they need with ``monkeypatch``, undone after the test. (It is
    also returned, so that a test written when this fixture had to be asked for runs.)
    """
    for name in list(os.environ):
        if name.startswith(("OTEL_", "CVTRACE_", "NEW_RELIC_")):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture(autouse=True)
def _reset_cvtrace(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts and ends with cvtrace uninstalled; cvtrace's own errors raise."""
    monkeypatch.setattr(_guard, "RAISE", True)
    testing.reset()
    yield
    testing.reset()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SpanStore]:
    """A span store in a fresh SQLite file, without retention."""
    span_store = SpanStore(tmp_path / "spans.sqlite3", max_spans=0)
    yield span_store
    span_store.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayPostgres]:
    """A real PostgreSQL server on 127.0.0.1, started on first use, deleted at the end.

    Debian's server programs (``make system-deps`` installs them); about 2 s to start.
    Tests create their own databases in it (``create_database``).
    """
    server = ThrowawayPostgres()
    try:
        server.start()
    except PostgresError as error:
        pytest.fail(f"no PostgreSQL for the tests: {error}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def otlp_http() -> Iterator[HttpOtlpReceiver]:
    """A real OTLP/HTTP receiver on 127.0.0.1 that decodes and keeps what it gets."""
    with HttpOtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def otlp_grpc() -> Iterator[GrpcOtlpReceiver]:
    """A real OTLP/gRPC receiver on 127.0.0.1 that decodes and keeps what it gets."""
    with GrpcOtlpReceiver() as receiver:
        yield receiver
