"""Database spans for SQLAlchemy engines: one ``CLIENT`` span per statement.

The engine's dialect runs every statement through ``do_execute``,
``do_execute_no_params`` or ``do_executemany``; this module wraps those three methods
of the engine's own dialect object, and that is the whole instrumentation. A
statement run under OpenTelemetry's "suppress instrumentation" context (an excluded
request such as ``/up``) makes no span and costs one context lookup.

Not SQLAlchemy's engine events: with any engine-level listener, every connection joins
the engine's event dispatch and every statement walks it, about 80 Python calls per
request on the demo's health check whether a span is made or not (BENCHMARKS.md,
excluded route). Nor OpenTelemetry's SQLAlchemy instrumentation, which also listens to
the connection pool on every checkout and checkin for its metrics, wraps
``Engine.connect`` in a ``connect`` span, parses the engine URL per statement, and
refuses SQLAlchemy 2.1.

Attributes follow the stable database conventions: ``db.system.name``, ``db.namespace``,
``db.operation.name`` (the statement's first word, as written), ``db.query.text``
(scrubbed of literals before export), ``server.address``, ``server.port``, and on
failure ``error.type``, ``db.response.status_code`` (PostgreSQL's SQLSTATE) and the
driver's message without the values it may quote
(:func:`cvtrace.span_errors.error_message`). The span is named
``"{db.operation.name} {target}"``, the target being the database name (a SQLite file's
base name). On PostgreSQL ``db.namespace`` is the database name alone: the semantic
conventions qualify it with the schema only when that is known without a query.
``tests/library/test_drift.py`` compares these spans with OpenTelemetry's SQLAlchemy
instrumentation's and lists every difference.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind
from sqlalchemy.engine import Engine

from ._guard import internal_error
from .span_errors import error_message, record_error

#: SQLAlchemy dialect names to ``db.system.name`` values.
DB_SYSTEMS = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mariadb",
    "mssql": "microsoft.sql_server",
    "oracle": "oracle.db",
}
_EXECUTE_METHODS = ("do_execute", "do_execute_no_params", "do_executemany")
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
        self._names: dict[str, tuple[str, dict[str, Any]]] = {}
        dialect = engine.dialect
        for method in _EXECUTE_METHODS:
            # an attribute of this dialect object shadows the class's method
            setattr(dialect, method, self._traced(getattr(dialect, method)))

    def remove(self) -> None:
        """Stop tracing the engine."""
        for method in _EXECUTE_METHODS:
            self.engine.dialect.__dict__.pop(method, None)

    def _traced(self, execute: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap one of the dialect's execute methods (SQLAlchemy's signatures)."""
        if execute.__name__ == "do_execute_no_params":

            def traced_no_params(cursor: Any, statement: str, context: Any = None) -> Any:
                return self._run(execute, statement, context, cursor, statement, context)

            return traced_no_params

        def traced(cursor: Any, statement: str, parameters: Any, context: Any = None) -> Any:
            return self._run(execute, statement, context, cursor, statement, parameters, context)

        return traced

    def _run(self, execute: Callable[..., Any], statement: str, context: Any, *args: Any) -> Any:
        """Run ``execute(*args)`` inside a span for ``statement`` (none if suppressed)."""
        span = self._start(statement, context)
        if span is None:
            return execute(*args)
        try:
            result = execute(*args)
        except BaseException as error:
            self._fail(span, error)
            raise
        try:
            span.end()
        except Exception:
            internal_error("ending a database span")
        return result

    def _start(self, statement: str, context: Any) -> trace.Span | None:
        if context is None or not is_instrumentation_enabled():
            return None
        try:
            name, attributes = self._name(statement)
            # a copy: the tracer keeps the dict it is given as the span's own
            return self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes.copy())
        except Exception:
            internal_error("starting a database span")
            return None

    def _fail(self, span: trace.Span, error: BaseException) -> None:
        try:
            record_error(span, error, error_message(error))
            span.set_attribute("error.type", type(error).__qualname__)
            code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
            if isinstance(code, str) and code:
                span.set_attribute("db.response.status_code", code)
            span.end()
        except Exception:
            internal_error("recording a database error")

    def _name(self, statement: str) -> tuple[str, dict[str, Any]]:
        """The span name and attributes of a statement, remembered (copy the attributes)."""
        known = self._names.get(statement)
        if known is not None:
            return known
        words = statement.split(None, 1)
        operation = words[0] if words else ""  # as written: the conventions ask no case change
        name = " ".join(part for part in (operation, self._target) if part) or "query"
        attributes = dict(self._attributes)
        attributes["db.query.text"] = statement
        if operation:
            attributes["db.operation.name"] = operation
        if len(self._names) >= _MAX_CACHED_STATEMENTS:
            self._names.clear()
        self._names[statement] = (name, attributes)
        return name, attributes
