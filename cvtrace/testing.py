"""Testing helpers for apps that use cvtrace; a pytest plugin, registered on install.

The ``cvtrace_spans`` fixture makes every ``cvtrace.init()`` in the test capture
finished spans in memory (scrubbed, exactly as an exporter would receive them)
instead of exporting them, whatever the environment says; an error inside cvtrace,
which in production is logged and ignored, fails the test::

    def test_home_is_traced(cvtrace_spans):
        app = create_app()            # calls cvtrace.init(app=app, engine=engine)
        app.test_client().get("/")
        assert "GET /" in cvtrace_spans.names()

An ``init()`` made at import, when pytest collected the tests' modules (an app built at
module level), counts too: the plugin records those calls, and the fixture makes them
again with its exporter (for the apps and engines still alive), so such an app is
traced in every test that asks for ``cvtrace_spans``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from . import _guard, api


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

    Also forgets OpenTelemetry's global tracer provider, so that the next
    ``cvtrace.init()`` installs its own, and the provider every tracer got before it
    (an app's module-level ``trace.get_tracer(__name__)``) resolved to.
    """
    api._reset()
    _forget_global_tracer_provider()
    for proxy in list(_proxy_tracers):
        proxy._real_tracer = None


# The tracers handed out before any provider was set: OpenTelemetry's proxies, which
# look the global provider up on first use and keep it. An app module's tracer is one
# (made at import); it must follow each test's provider, not stay on the first one.
_proxy_tracers: weakref.WeakSet[trace.ProxyTracer] = weakref.WeakSet()
_proxy_get_tracer = trace.ProxyTracerProvider.get_tracer


def _get_tracer_remembered(self: trace.ProxyTracerProvider, *args: Any, **kwargs: Any) -> Any:
    tracer = _proxy_get_tracer(self, *args, **kwargs)
    if isinstance(tracer, trace.ProxyTracer):
        _proxy_tracers.add(tracer)
    return tracer


trace.ProxyTracerProvider.get_tracer = _get_tracer_remembered  # type: ignore[method-assign]


def _forget_global_tracer_provider() -> None:
    """Let the next provider become the global one again.

    OpenTelemetry's API has no public way to do this: a process sets its global provider
    once. Tests need one per test, so this resets two private names of
    ``opentelemetry.trace`` (as OpenTelemetry's own test utilities do): the one private
    touch cvtrace keeps, and only here, in the test plugin; production code sets the
    provider once through the public ``set_tracer_provider``. The alternative, a proxy
    provider that cvtrace installs once and re-points per test, would put an indirection
    in every app's tracer look-ups and hide the SDK's ``TracerProvider`` from apps that
    configure it. Should an SDK release rename these, this fails at once and says so
    (``make sdk-range`` runs the tests against the newest release). :func:`reset` also
    clears the provider each of OpenTelemetry's proxy tracers cached (``_real_tracer``),
    which the plugin remembers from the moment it is loaded, before the tests' modules.
    """
    once = getattr(trace, "_TRACER_PROVIDER_SET_ONCE", None)
    if once is None or not hasattr(trace, "_TRACER_PROVIDER"):
        msg = (
            "cvtrace.testing cannot reset the global tracer provider of this "
            "opentelemetry-api release; please report it with the version installed"
        )
        raise RuntimeError(msg)
    trace._TRACER_PROVIDER_SET_ONCE = type(once)()
    trace._TRACER_PROVIDER = None


api._state.recording = True  # the plugin is loaded before pytest imports the tests' modules


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop recording ``init()`` calls: the ones to repeat were made at import."""
    api._state.recording = False


@pytest.fixture
def cvtrace_spans() -> Iterator[CapturedSpans]:
    """Capture, in memory, the spans of every ``cvtrace.init()`` of the test, and of those
    made before it (at import)."""
    reset()
    captured = CapturedSpans()
    api._state.exporters_override = (captured,)
    raise_errors, _guard.RAISE = _guard.RAISE, True  # a cvtrace bug fails the test
    try:
        recorded = api._state.recorded_calls
        recorded[:] = [call for call in recorded if call.repeat()]
        yield captured
    finally:
        _guard.RAISE = raise_errors
        reset()
