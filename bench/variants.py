"""The demo app in each measured configuration ("variant"), and its seeded database.

A variant is set up in a fresh process (instrumentors patch globals), before any
request, from environment variables only, as a deployment would:

=================  ==========================================================================
variant            what it is
=================  ==========================================================================
``bare``           the demo without cvtrace (``cvtrace.init`` replaced by a no-op)
``default``        the demo as shipped, with no exporter configured (cvtrace's default)
``cvtrace-otlp``   cvtrace full tracing, OTLP/HTTP to the discarding receiver
``cvtrace-local``  cvtrace full tracing into a local SQLite store
``vanilla``        no cvtrace; FlaskInstrumentor + SQLAlchemyInstrumentor + TracerProvider
                   + BatchSpanProcessor + OTLP/HTTP exporter, all defaults
``vanilla-nosdk``  no cvtrace; the two instrumentors but no SDK (the API's no-op tracer)
=================  ==========================================================================

The ``/up`` measurements use ``bare``, ``cvtrace-otlp`` (``/up`` is excluded by default)
and ``vanilla-excluded`` (``vanilla`` with ``OTEL_PYTHON_FLASK_EXCLUDED_URLS=up``).

Every traced variant also gets :class:`SpanCounter`, a span processor that counts
spans and root spans (a few hundred ns a span, the same for all), so the tables can
say how many spans a request made.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from bench.common import data_dir, log

VARIANTS = (
    "bare",
    "default",
    "cvtrace-otlp",
    "cvtrace-local",
    "vanilla",
    "vanilla-nosdk",
    "vanilla-excluded",
)
SECRET_KEY = "bench-secret-key-not-for-production"
CIRCUIT_ID = 2
"""The circuit the benchmarks view (a full adder in the default seed)."""


class SpanCounter(SpanProcessor):
    """Count ended spans and root spans (spans without a parent)."""

    def __init__(self) -> None:
        self.spans = 0
        self.roots = 0

    def on_end(self, span: ReadableSpan) -> None:
        """Count one span."""
        self.spans += 1
        if span.parent is None:
            self.roots += 1


def seeded_db() -> Path:
    """The demo's database, seeded once (300 circuits) and cached."""
    path = data_dir() / "demo-seeded.sqlite3"
    if not path.exists():
        from cvtrace.demo import seed
        from cvtrace.demo.db import make_engine

        log(f"seeding the demo database {path}")
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        engine = make_engine(f"sqlite:///{tmp}")
        seed.seed(engine, 300, 1)
        engine.dispose()
        tmp.rename(path)
    return path


def private_db_copy(directory: Path, name: str) -> Path:
    """A copy of the seeded database for one variant, so no two processes share a file."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}.sqlite3"
    shutil.copyfile(seeded_db(), target)
    return target


def variant_env(variant: str, endpoint: str, local_db: Path | None) -> dict[str, str]:
    """The environment variables that configure ``variant``."""
    env = {"SECRET_KEY": SECRET_KEY}
    if variant.startswith("cvtrace-otlp"):
        env["CVTRACE_EXPORTERS"] = "otlp"
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = endpoint
    elif variant.startswith("cvtrace-local"):
        env["CVTRACE_EXPORTERS"] = "local"
        env["CVTRACE_LOCAL_DB"] = str(local_db)
        env["CVTRACE_LOCAL_MAX_SPANS"] = "0"
    elif variant.startswith("vanilla"):
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = endpoint
        if variant == "vanilla-excluded":
            env["OTEL_PYTHON_FLASK_EXCLUDED_URLS"] = "up"
    return env


@dataclass
class Setup:
    """A variant's app and the handles to flush and count its spans."""

    variant: str
    app: Any
    counter: SpanCounter | None = None
    provider: Any = None
    """Vanilla's tracer provider."""
    extras: dict[str, Any] = field(default_factory=dict)

    def flush(self) -> None:
        """Export every span ended so far."""
        import cvtrace

        handle = cvtrace.get_handle()
        if handle is not None and handle.enabled:
            handle.force_flush(30)
        if self.provider is not None:
            self.provider.force_flush(30_000)

    def shutdown(self) -> None:
        """Flush and stop exporting (what happens at a clean exit)."""
        import cvtrace

        cvtrace.shutdown()
        if self.provider is not None:
            self.provider.shutdown()

    def dropped(self) -> int:
        """Spans cvtrace's processor dropped (vanilla's are not counted by the SDK)."""
        import cvtrace

        handle = cvtrace.get_handle()
        return handle.stats().spans_dropped if handle is not None else 0


def build(variant: str, database: Path) -> Setup:
    """Create the demo app configured as ``variant`` (environment already set).

    Must run in a fresh process: it patches globals.
    """
    if variant not in VARIANTS:
        msg = f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}"
        raise ValueError(msg)
    import cvtrace
    from cvtrace.demo.app import create_app
    from cvtrace.demo.db import engine_of

    config = {"DATABASE_URL": f"sqlite:///{database}", "SECRET_KEY": SECRET_KEY}
    if variant in ("bare",) or variant.startswith("vanilla"):
        cvtrace.init = _no_init  # type: ignore[assignment]
    app = create_app(config)
    setup = Setup(variant, app)
    if variant.startswith("cvtrace"):
        handle = cvtrace.get_handle()
        if handle is None or handle.provider is None:
            msg = f"{variant}: cvtrace did not turn tracing on"
            raise RuntimeError(msg)
        setup.counter = SpanCounter()
        handle.provider.add_span_processor(setup.counter)
    elif variant.startswith("vanilla"):
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        if variant != "vanilla-nosdk":
            from opentelemetry import trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider = TracerProvider()
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            setup.counter = SpanCounter()
            provider.add_span_processor(setup.counter)
            trace.set_tracer_provider(provider)
            setup.provider = provider
        FlaskInstrumentor().instrument_app(app)
        SQLAlchemyInstrumentor().instrument(engine=engine_of(app))
    return setup


def _no_init(*args: Any, **kwargs: Any) -> None:
    """Stand in for ``cvtrace.init`` in the variants without cvtrace."""
    del args, kwargs


def wsgi_app() -> Any:
    """The app for gunicorn: ``gunicorn 'bench.variants:wsgi_app()'``.

    Reads ``BENCH_VARIANT`` and ``BENCH_DATABASE`` (the variant's environment is set
    by the caller).
    """
    setup = build(os.environ["BENCH_VARIANT"], Path(os.environ["BENCH_DATABASE"]))
    return setup.app
