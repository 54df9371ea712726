"""Instrumentation: Flask apps, SQLAlchemy engines, outgoing ``requests``, logging.

Flask apps and SQLAlchemy engines get cvtrace's own lean instrumentation
(:mod:`cvtrace.server_spans`, :mod:`cvtrace.db_spans`: measured, the contrib ones cost
several times more per request, and on excluded requests too). The OpenTelemetry contrib
instrumentors trace outgoing ``requests`` and correlate logs, with stable semantic
conventions and no metrics.

Nothing here runs unless tracing is on: with default settings cvtrace patches nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import SpanLimits, TracerProvider

from ._version import __version__
from .db_spans import QueryTracer
from .noise import ExcludedUrls
from .server_spans import TracingMiddleware
from .tracer import tracer_for

logger = logging.getLogger(__name__)

#: The stable HTTP and database conventions (``http.request.method``, ``db.query.text``).
SEMCONV_OPT_IN = "http,database"
_SEMCONV_VAR = "OTEL_SEMCONV_STABILITY_OPT_IN"

_NO_METRICS = NoOpMeterProvider()


@contextlib.contextmanager
def _stable_semconv() -> Iterator[None]:
    """Ask the contrib instrumentors for stable conventions, unless the user chose.

    They read ``OTEL_SEMCONV_STABILITY_OPT_IN`` once per process, when the first of them
    instruments; cvtrace sets it only for that moment, and leaves the environment as it
    found it.
    """
    if os.environ.get(_SEMCONV_VAR) is not None:
        yield
        return
    os.environ[_SEMCONV_VAR] = SEMCONV_OPT_IN
    try:
        yield
    finally:
        os.environ.pop(_SEMCONV_VAR, None)


def instrument_flask(
    app: Any,
    provider: TracerProvider,
    excluded: ExcludedUrls,
    span_limits: SpanLimits | None = None,
) -> None:
    """Trace a Flask app's requests, except the excluded ones (which trace nothing).

    ``span_limits`` are the provider's; given, the spans may come from the lean tracer.
    """
    if isinstance(app.wsgi_app, TracingMiddleware):
        return
    tracer = tracer_for(provider, "cvtrace.server_spans", __version__, span_limits)
    app.wsgi_app = TracingMiddleware(app, app.wsgi_app, tracer, excluded)


def uninstrument_flask(app: Any) -> None:
    """Undo :func:`instrument_flask`."""
    if isinstance(app.wsgi_app, TracingMiddleware):
        app.wsgi_app.disconnect()
        app.wsgi_app = app.wsgi_app.wsgi_app


def instrument_engine(
    engine: Any, provider: TracerProvider, span_limits: SpanLimits | None = None
) -> QueryTracer:
    """Trace the statements of a SQLAlchemy engine; the returned tracer can be removed.

    ``span_limits`` are the provider's; given, the spans may come from the lean tracer.
    """
    tracer = tracer_for(provider, "cvtrace.db_spans", __version__, span_limits)
    return QueryTracer(engine, tracer)


def instrument_requests(provider: TracerProvider) -> Any | None:
    """Trace outgoing ``requests`` calls and propagate W3C ``traceparent``.

    Returns:
        The instrumentor, to undo it with; ``None`` if ``requests`` was instrumented
        already (by the app), which is then left as it is.
    """
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    instrumentor = RequestsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        return None
    with _stable_semconv():
        instrumentor.instrument(tracer_provider=provider, meter_provider=_NO_METRICS)
    return instrumentor


def instrument_logging(provider: TracerProvider) -> Any | None:
    """Give log records ``otelTraceID`` and ``otelSpanID`` (see :data:`cvtrace.LOG_FORMAT`).

    Returns:
        The instrumentor, to undo it with; ``None`` if logging was instrumented already.
    """
    from opentelemetry.instrumentation.logging import LoggingInstrumentor

    instrumentor = LoggingInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        return None
    instrumentor.instrument(
        tracer_provider=provider,
        inject_trace_context=True,
        set_logging_format=False,
        enable_log_auto_instrumentation=False,
    )
    return instrumentor
