"""Testing helpers for apps that use cvtrace; a pytest plugin, registered on install.

The ``cvtrace_spans`` fixture makes every ``cvtrace.init()`` in the test capture
finished spans in memory (scrubbed, exactly as an exporter would receive them)
instead of exporting them, whatever the environment says; an error inside cvtrace,
which in production is logged and ignored, fails the test::

    def test_home_is_traced(cvtrace_spans):
        app = create_app()            # calls cvtrace.init(app=app, engine=engine)
        app.test_client().get("/")
        assert "GET /" in cvtrace_spans.names()
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.util._once import Once

from . import _guard, api, instrumentation


class CapturedSpans(SpanExporter):
    """An exporter that keeps the spans it is given, in the order they ended."""

    def __init__(self) -> None:
        self._spans: list[ReadableSpan] = []
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Keep the spans."""
        with self._lock:
            self._spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""

    @property
    def spans(self) -> list[ReadableSpan]:
        """Every span ended so far (flushing the processor first)."""
        handle = api.get_handle()
        if handle is not None:
            handle.force_flush(timeout_s=10)
        with self._lock:
            return list(self._spans)

    def names(self) -> list[str]:
        """The names of :attr:`spans`."""
        return [span.name for span in self.spans]

    def by_name(self, name: str) -> list[ReadableSpan]:
        """The spans called ``name``."""
        return [span for span in self.spans if span.name == name]

    def clear(self) -> None:
        """Forget the spans captured so far."""
        handle = api.get_handle()
        if handle is not None:
            handle.force_flush(timeout_s=10)
        with self._lock:
            self._spans.clear()


def reset() -> None:
    """Shut down and forget cvtrace's global state, undoing all instrumentation.

    Also resets OpenTelemetry's global tracer provider, which otherwise can be set
    only once per process.
    """
    with api._state.lock:
        handle = api._state.handle
        if handle is not None:
            handle.shutdown()
            for app in handle.apps:
                instrumentation.uninstrument_flask(app)
            for query_tracer in handle.query_tracers:
                query_tracer.remove()
            instrumentation.uninstrument_globals()
        api._state.handle = None
        api._state.capture_exporter = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture
def cvtrace_spans() -> Iterator[CapturedSpans]:
    """Capture, in memory, the spans of every ``cvtrace.init()`` made during the test."""
    reset()
    captured = CapturedSpans()
    api._state.capture_exporter = captured
    raise_errors, _guard.RAISE = _guard.RAISE, True  # a cvtrace bug fails the test
    try:
        yield captured
    finally:
        _guard.RAISE = raise_errors
        reset()
