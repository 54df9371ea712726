"""Database spans for SQLAlchemy engines: one ``CLIENT`` span per statement.

Two engine events, ``before_cursor_execute`` and ``after_cursor_execute`` (and
``handle_error``), make the whole instrumentation. A statement run under OpenTelemetry's
"suppress instrumentation" context (an excluded request such as ``/up``) makes no span
and costs one context lookup.

OpenTelemetry's SQLAlchemy instrumentation also listens to the connection pool on every
checkout and checkin for its metrics, wraps ``Engine.connect`` in a ``connect`` span,
and parses the engine URL per statement; measured on the demo, that was most of the
cost cvtrace added to an excluded health check (BENCHMARKS.md). It also refuses
SQLAlchemy 2.1 and instruments nothing there. This module does only what the spans
need.

Attributes follow the stable database conventions: ``db.system.name``,
``db.namespace``, ``db.operation.name``, ``db.query.text`` (scrubbed of literals before
export), ``server.address``, ``server.port``, and ``error.type`` on failure. The span is
named ``"{db.operation.name} {target}"``, the target being the database name (a SQLite
file's base name).
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import event
from sqlalchemy.engine import Engine

from ._guard import internal_error

#: SQLAlchemy dialect names to ``db.system.name`` values.
DB_SYSTEMS = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mariadb",
    "mssql": "microsoft.sql_server",
    "oracle": "oracle.db",
}
_SPAN_KEY = "_cvtrace_span"
_MAX_CACHED_STATEMENTS = 4096


class QueryTracer:
    """Trace the statements one engine runs.

    Args:
        engine: the SQLAlchemy engine.
        tracer: the tracer that makes the spans.
    """

    def __init__(self, engine: Engine, tracer: trace.Tracer) -> None:
        self.engine = engine
        self._tracer = tracer
        url = engine.url
        database = url.database or ""
        system = DB_SYSTEMS.get(engine.dialect.name, "other_sql")
        self._target = os.path.basename(database) if system == "sqlite" else database
        self._attributes: dict[str, Any] = {"db.system.name": system}
        if database and database != ":memory:":
            self._attributes["db.namespace"] = database
        if url.host:
            self._attributes["server.address"] = url.host
        if url.port:
            self._attributes["server.port"] = url.port
        self._names: dict[str, tuple[str, str]] = {}
        # retval=True spares SQLAlchemy a wrapper frame per statement.
        event.listen(engine, "before_cursor_execute", self._before, retval=True)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "handle_error", self._error)

    def remove(self) -> None:
        """Stop tracing the engine."""
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)
        event.remove(self.engine, "handle_error", self._error)

    def _before(
        self,
        connection: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> tuple[str, Any]:
        if context is None or not is_instrumentation_enabled():
            return statement, parameters
        try:
            operation, name = self._name(statement)
            attributes = dict(self._attributes)
            attributes["db.query.text"] = statement
            if operation:
                attributes["db.operation.name"] = operation
            span = self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
            setattr(context, _SPAN_KEY, span)
        except Exception:
            internal_error("starting a database span")
        return statement, parameters

    def _after(
        self,
        connection: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        span = getattr(context, _SPAN_KEY, None)
        if span is not None:
            setattr(context, _SPAN_KEY, None)
            try:
                span.end()
            except Exception:
                internal_error("ending a database span")

    def _error(self, exception_context: Any) -> None:
        context = exception_context.execution_context
        span = getattr(context, _SPAN_KEY, None)
        if span is None:
            return
        setattr(context, _SPAN_KEY, None)
        error = exception_context.original_exception
        try:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.set_attribute("error.type", type(error).__qualname__)
            span.end()
        except Exception:
            internal_error("recording a database error")

    def _name(self, statement: str) -> tuple[str, str]:
        """The operation (first keyword) and span name of a statement, remembered."""
        known = self._names.get(statement)
        if known is not None:
            return known
        words = statement.split(None, 1)
        operation = words[0].upper() if words else ""
        name = " ".join(part for part in (operation, self._target) if part) or "query"
        if len(self._names) >= _MAX_CACHED_STATEMENTS:
            self._names.clear()
        self._names[statement] = (operation, name)
        return operation, name
