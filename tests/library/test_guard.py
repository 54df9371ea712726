"""An error inside tracing never reaches the request: it is logged once."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import cvtrace
from cvtrace import _guard
from cvtrace.testing import CapturedSpans
from tests.sample_app import create_app, create_engine


class BrokenTracer:
    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer bug")


def test_requests_and_queries_go_on_when_tracing_breaks(
    cvtrace_spans: CapturedSpans,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = create_engine()
    app = create_app(engine)
    handle = cvtrace.init(app=app, engine=engine)
    monkeypatch.setattr(_guard, "RAISE", False)  # production behaviour
    monkeypatch.setattr(_guard, "_reported", set())
    monkeypatch.setattr(app.wsgi_app, "_tracer", BrokenTracer())
    monkeypatch.setattr(handle.query_tracers[0], "_tracer", BrokenTracer())
    client = app.test_client()
    for _ in range(3):
        assert client.get("/users/1").json == {"id": 1, "name": "ada"}
    errors = [r for r in caplog.records if r.name == "cvtrace" and r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "cvtrace: starting a server span failed; the app goes on without that span",
        "cvtrace: starting a database span failed; the app goes on without that span",
    ]
    assert errors[0].exc_info is not None
    assert cvtrace_spans.spans == []


def test_under_tests_the_error_raises(
    cvtrace_spans: CapturedSpans, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine()
    app = create_app(engine)
    cvtrace.init(app=app, engine=engine)
    monkeypatch.setattr(app.wsgi_app, "_tracer", BrokenTracer())
    with pytest.raises(RuntimeError, match="tracer bug"):
        app.test_client().get("/users/1")
