"""An error inside tracing never reaches the request: it is logged once."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

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


class FailingSpan(NonRecordingSpan):
    """A recording span whose every method that records something raises: a tracing bug."""

    def is_recording(self) -> bool:
        return True

    def _fail(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("span bug")

    update_name = set_attribute = set_attributes = set_status = _fail
    record_exception = add_event = end = _fail


class FailingSpanTracer:
    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        return FailingSpan(SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1)))


class TestTheAppsOwnExceptionSurvives:
    """A failure while recording an exception never replaces the app's exception."""

    @pytest.fixture
    def app(self, cvtrace_spans: CapturedSpans, monkeypatch: pytest.MonkeyPatch) -> Any:
        engine = create_engine()
        app = create_app(engine)
        cvtrace.init(app=app, engine=engine)
        monkeypatch.setattr(_guard, "RAISE", False)  # production behaviour
        monkeypatch.setattr(_guard, "_reported", set())
        monkeypatch.setattr(app.wsgi_app, "_tracer", FailingSpanTracer())
        return app

    def test_an_exception_flask_handles_still_answers_500(
        self, app: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Flask turns the app's exception into a 500 (``got_request_exception``)."""
        response = app.test_client().get("/fail")
        assert response.status_code == 500
        (app_error,) = [r for r in caplog.records if r.name == app.logger.name]
        assert app_error.exc_info is not None
        assert str(app_error.exc_info[1]) == "boom"
        assert "recording an exception on a server span failed" in caplog.text

    def test_an_exception_that_leaves_the_app_is_the_apps(
        self, app: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With ``PROPAGATE_EXCEPTIONS`` the exception leaves the app through the middleware."""
        app.config["PROPAGATE_EXCEPTIONS"] = True
        with pytest.raises(RuntimeError, match=r"^boom$"):
            app.test_client().get("/fail")
        assert "failing a server span failed" in caplog.text
