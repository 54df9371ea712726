"""Shared fixtures: cvtrace's global state reset after every test, OTLP receivers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cvtrace import _guard, testing
from cvtrace.store import SpanStore
from tests.otlp_receiver import GrpcOtlpReceiver, HttpOtlpReceiver


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


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No OTEL_*, CVTRACE_* or NEW_RELIC_* variable from the outside leaks into a test."""
    import os

    for name in list(os.environ):
        if name.startswith(("OTEL_", "CVTRACE_", "NEW_RELIC_")):
            monkeypatch.delenv(name)
    return monkeypatch
