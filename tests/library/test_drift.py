"""cvtrace's own spans against OpenTelemetry's Flask and SQLAlchemy instrumentations.

The same requests go through the same app twice: once traced by cvtrace's middleware
and query tracer (:mod:`cvtrace.server_spans`, :mod:`cvtrace.db_spans`), once by the
contrib instrumentations pinned in the dev extra. Span names, kinds, attributes, status
and events are compared, and every difference must be in :data:`DELIBERATE` with its
reason: a new difference fails, and so does a listed one that went away.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import flask
import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cvtrace import instrumentation
from cvtrace.noise import ExcludedUrls
from tests.sample_app import create_app

REQUESTS = {
    "a page with a query": "/users/1?page=2",
    "not found": "/nope",
    "an exception, answered 500": "/fail",
    "a failing query": "/broken-query",
}
EVERY = "every request"
ABSENT = "(absent)"


class Drift(NamedTuple):
    """One difference: what the contrib instrumentation records, what cvtrace does."""

    request: str
    span: str
    """``server``, ``query``, or the name of a span only one side makes."""
    field: str
    contrib: object
    cvtrace: object


#: Every known difference, with its reason. Values are normalised: ``<tmp>`` for the
#: test's directory, ``<stacktrace>`` for a stack trace.
DELIBERATE: dict[Drift, str] = {
    Drift(EVERY, "server", "attribute server.address", "shop.example:8080", "shop.example"): (
        "The conventions' server.address is the host alone, the port is server.port; the "
        "contrib instrumentation copies the Host header whole."
    ),
    Drift(EVERY, "server", "attribute client.port", 54321, ABSENT): (
        "Opt-In on HTTP server spans in the stable conventions, so off by default; a value "
        "per connection that nobody queries by."
    ),
    Drift("not found", "server", "name", "GET /nope", "GET"): (
        "Without a matched route the conventions name the span {method}; the path makes a "
        "span name per URL (unbounded cardinality, every scanner's probe a new operation)."
    ),
    Drift("a page with a query", "connect", "span", "present", ABSENT): (
        "Checking a connection out of the pool is no query: one more span per request, and "
        "the pool listeners behind it cost on every checkout (db_spans' docstring)."
    ),
    Drift("a failing query", "connect", "span", "present", ABSENT): (
        "As above: no span for a pool checkout."
    ),
    Drift(
        "a page with a query",
        "query",
        "name",
        "select <tmp>/drift.sqlite3",
        "select drift.sqlite3",
    ): (
        "A SQLite file's base name as the target: the full path differs between a laptop and "
        "a server, which would make the same query a different operation on each; "
        "db.namespace keeps the path."
    ),
    Drift(
        "a failing query",
        "query",
        "name",
        "select <tmp>/drift.sqlite3",
        "select drift.sqlite3",
    ): "As above: a SQLite file's base name in the span name.",
    Drift(
        "a page with a query",
        "query",
        "attribute db.operation.name",
        "select <tmp>/drift.sqlite3",
        "select",
    ): (
        "db.operation.name is the operation (the statement's first word); the contrib "
        "instrumentation puts its span name's target in it too."
    ),
    Drift(
        "a failing query",
        "query",
        "attribute db.operation.name",
        "select <tmp>/drift.sqlite3",
        "select",
    ): "As above: the operation alone.",
    Drift("a failing query", "query", "attribute error.type", ABSENT, "OperationalError"): (
        "Conditionally Required by the conventions when the operation failed."
    ),
    Drift(
        "a failing query",
        "query",
        "status description",
        "no such table: no_such_table",
        "OperationalError: no such table: no_such_table",
    ): (
        "One form for every cvtrace error status, '{type}: {message}', the Flask "
        "instrumentation's; the SQLAlchemy one leaves the type out."
    ),
    Drift(
        "a failing query",
        "server",
        "event exception exception.message",
        "(sqlite3.OperationalError) no such table: no_such_table\n"
        "[SQL: select * from no_such_table]\n"
        "(Background on this error at: https://sqlalche.me/e/20/e3q8)",
        "(sqlite3.OperationalError) no such table: no_such_table",
    ): (
        "SQLAlchemy's error text carries the statement and its bound values: cvtrace "
        "records the driver's message alone, as on the database span (cvtrace.span_errors)."
    ),
    Drift(
        "a failing query",
        "server",
        "status description",
        "OperationalError: (sqlite3.OperationalError) no such table: no_such_table\n"
        "[SQL: select * from no_such_table]\n"
        "(Background on this error at: https://sqlalche.me/e/20/e3q8)",
        "OperationalError: (sqlite3.OperationalError) no such table: no_such_table",
    ): "As above.",
    Drift("a failing query", "query", "event exception", ABSENT, "present"): (
        "The exception is recorded on the span where it happened, as on the server span; "
        "the contrib instrumentation records it only on the server span."
    ),
}


def _normalised(value: object, tmp_path: Path) -> object:
    if isinstance(value, str):
        return value.replace(str(tmp_path), "<tmp>")
    if isinstance(value, tuple):
        return list(value)
    return value


def _fields(span: ReadableSpan, tmp_path: Path) -> dict[str, object]:
    """What is compared of a span, one entry per field."""
    fields: dict[str, object] = {
        "name": _normalised(span.name, tmp_path),
        "kind": span.kind.name,
        "status": span.status.status_code.name,
        "status description": span.status.description or ABSENT,
    }
    for key, value in (span.attributes or {}).items():
        fields[f"attribute {key}"] = _normalised(value, tmp_path)
    for event in span.events:
        fields[f"event {event.name}"] = "present"
        for key, value in (event.attributes or {}).items():
            text = "<stacktrace>" if key == "exception.stacktrace" else value
            fields[f"event {event.name} {key}"] = _normalised(text, tmp_path)
    return fields


def _by_role(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    """Name a request's spans: ``server``, ``query``, else the span's own name."""
    roles: dict[str, ReadableSpan] = {}
    for span in spans:
        attributes = span.attributes or {}
        role = (
            "server"
            if "http.request.method" in attributes
            else "query"
            if "db.query.text" in attributes
            else span.name
        )
        assert role not in roles, f"two {role} spans"
        roles[role] = span
    return roles


def _differences(
    contrib: dict[str, tuple[ReadableSpan, ...]],
    ours: dict[str, tuple[ReadableSpan, ...]],
    tmp_path: Path,
) -> set[Drift]:
    found: set[Drift] = set()
    for request in REQUESTS:
        theirs_by_role, ours_by_role = _by_role(contrib[request]), _by_role(ours[request])
        for role in theirs_by_role.keys() | ours_by_role.keys():
            if role not in theirs_by_role or role not in ours_by_role:
                presence = ("present", ABSENT) if role in theirs_by_role else (ABSENT, "present")
                found.add(Drift(request, role, "span", *presence))
                continue
            theirs = _fields(theirs_by_role[role], tmp_path)
            mine = _fields(ours_by_role[role], tmp_path)
            one_sided = {
                field for field in theirs.keys() ^ mine.keys() if field.startswith("event ")
            }
            for field in theirs.keys() | mine.keys():
                pair = (theirs.get(field, ABSENT), mine.get(field, ABSENT))
                event = " ".join(field.split()[:2])
                if event != field and event in one_sided:
                    continue  # the event itself is the difference, not each of its attributes
                if pair[0] != pair[1]:
                    found.add(Drift(request, role, field, *pair))
    return found


def _expected() -> set[Drift]:
    """The table, with each ``EVERY`` row made one row per request."""
    rows: set[Drift] = set()
    for drift in DELIBERATE:
        requests = REQUESTS if drift.request == EVERY else [drift.request]
        rows |= {drift._replace(request=request) for request in requests}
    return rows


def _app(database: Path) -> tuple[flask.Flask, sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{database}")
    app = create_app(engine)

    @app.get("/broken-query")
    def broken_query() -> str:
        with engine.connect() as connection:
            connection.execute(sa.text("select * from no_such_table"))
        return "unreachable"

    return app, engine


def _send_requests(app: flask.Flask, memory: InMemorySpanExporter) -> dict[str, Any]:
    client = app.test_client()
    spans = {}
    for request, path in REQUESTS.items():
        memory.clear()
        client.get(
            path,
            base_url="http://shop.example:8080",
            headers={"User-Agent": "drift-check/1.0"},
            environ_base={"REMOTE_ADDR": "10.1.2.3", "REMOTE_PORT": "54321"},
        )
        spans[request] = memory.get_finished_spans()
    return spans


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "drift.sqlite3"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(sa.text("create table users (id integer primary key, name text)"))
        connection.execute(sa.text("insert into users values (1, 'ada')"))
    engine.dispose()
    return path


def _memory_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


@pytest.fixture
def contrib_spans(database: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The requests' spans as OpenTelemetry's contrib instrumentations make them."""
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # The stable conventions, which cvtrace's spans follow (and asks the contrib ones for).
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", instrumentation.SEMCONV_OPT_IN)
    provider, memory = _memory_provider()
    app, engine = _app(database)
    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)
    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=provider)
    try:
        yield _send_requests(app, memory)
    finally:
        SQLAlchemyInstrumentor().uninstrument()
        FlaskInstrumentor().uninstrument_app(app)
        engine.dispose()


@pytest.fixture
def cvtrace_spans_of_requests(database: Path) -> Iterator[dict[str, Any]]:
    """The same requests' spans as cvtrace makes them (before scrubbing).

    The provider's default span limits are passed on, as ``cvtrace.init`` does: the
    spans come from cvtrace's lean tracer (:mod:`cvtrace.tracer`).
    """
    provider, memory = _memory_provider()
    app, engine = _app(database)
    limits = SpanLimits()
    instrumentation.instrument_flask(app, provider, ExcludedUrls((), environ={}), limits)
    query_tracer = instrumentation.instrument_engine(engine, provider, limits)
    try:
        yield _send_requests(app, memory)
    finally:
        query_tracer.remove()
        instrumentation.uninstrument_flask(app)
        engine.dispose()


def test_every_difference_from_the_contrib_instrumentations_is_deliberate(
    contrib_spans: dict[str, Any], cvtrace_spans_of_requests: dict[str, Any], tmp_path: Path
) -> None:
    found = _differences(contrib_spans, cvtrace_spans_of_requests, tmp_path)
    expected = _expected()
    assert sorted(found - expected) == [], "new drift: fix it, or list it with its reason"
    assert sorted(expected - found) == [], "listed drift that is gone: remove it from the list"
