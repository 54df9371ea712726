"""Instrumentation: Flask apps, SQLAlchemy engines, outgoing ``requests``, logging.

Flask apps get cvtrace's own lean server-span middleware
(:class:`cvtrace.server_spans.TracingMiddleware`). The OpenTelemetry contrib
instrumentors do the rest, with the settings cvtrace wants: stable semantic
conventions, no metrics, no SQL commenter, and no ``connect`` span per checked-out
connection (pure noise on every request).

Nothing here runs unless tracing is on: with default settings cvtrace patches nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider

from ._version import __version__
from .noise import ExcludedUrls
from .server_spans import TracingMiddleware

logger = logging.getLogger(__name__)

#: The stable HTTP and database conventions (``http.request.method``, ``db.query.text``).
SEMCONV_OPT_IN = "http,database"

_NO_METRICS = NoOpMeterProvider()


def opt_in_to_stable_semconv() -> None:
    """Ask the instrumentors for stable conventions unless the user chose otherwise."""
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", SEMCONV_OPT_IN)


def instrument_flask(app: Any, provider: TracerProvider, excluded: ExcludedUrls) -> None:
    """Trace a Flask app's requests, except the excluded ones (which trace nothing)."""
    if isinstance(app.wsgi_app, TracingMiddleware):
        return
    tracer = provider.get_tracer("cvtrace.server_spans", __version__)
    app.wsgi_app = TracingMiddleware(app, app.wsgi_app, tracer, excluded)


def uninstrument_flask(app: Any) -> None:
    """Undo :func:`instrument_flask`."""
    if isinstance(app.wsgi_app, TracingMiddleware):
        app.wsgi_app.disconnect()
        app.wsgi_app = app.wsgi_app.wsgi_app


def instrument_engines(engines: Iterable[Any], provider: TracerProvider) -> None:
    """Trace the queries of these SQLAlchemy engines (all of them: the instrumentor is global)."""
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.instrumentation.utils import unwrap
    from sqlalchemy.engine import Engine

    engines = list(engines)
    if not engines:
        return
    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()  # instrument again, with the new engines too
    instrumentor.instrument(
        engines=engines,
        tracer_provider=provider,
        meter_provider=_NO_METRICS,
        enable_commenter=False,
    )
    if not instrumentor.is_instrumented_by_opentelemetry:
        # The instrumentor refuses SQLAlchemy versions outside its declared range.
        logger.warning(
            "the SQLAlchemy instrumentation refused this SQLAlchemy version; no database "
            "spans will be made (cvtrace pins a supported range: reinstall cvtrace)"
        )
        return
    # A "connect" span for every connection checked out of the pool is noise.
    unwrap(Engine, "connect")


def instrument_requests(provider: TracerProvider) -> None:
    """Trace outgoing ``requests`` calls and propagate W3C ``traceparent``."""
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    RequestsInstrumentor().instrument(tracer_provider=provider, meter_provider=_NO_METRICS)


def instrument_logging(provider: TracerProvider) -> None:
    """Give log records ``otelTraceID`` and ``otelSpanID`` (see :data:`cvtrace.LOG_FORMAT`)."""
    from opentelemetry.instrumentation.logging import LoggingInstrumentor

    LoggingInstrumentor().instrument(
        tracer_provider=provider,
        inject_trace_context=True,
        set_logging_format=False,
        enable_log_auto_instrumentation=False,
    )


def uninstrument_globals() -> None:
    """Undo the process-wide instrumentation (SQLAlchemy, requests, logging)."""
    from opentelemetry.instrumentation.logging import LoggingInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    for instrumentor in (SQLAlchemyInstrumentor(), RequestsInstrumentor(), LoggingInstrumentor()):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
