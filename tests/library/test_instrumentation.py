"""Flask, SQLAlchemy, requests and logging instrumentation, with stable conventions."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

import cvtrace
from cvtrace.demo.postgres import ThrowawayPostgres
from cvtrace.span_errors import error_message
from cvtrace.testing import CapturedSpans
from tests.sample_app import create_app, create_engine


@pytest.fixture
def client(cvtrace_spans: CapturedSpans) -> Any:
    engine = create_engine()
    app = create_app(engine)
    cvtrace.init(app=app, engine=engine)
    return app.test_client()


@pytest.fixture
def header_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A real HTTP server on 127.0.0.1 that records the headers it receives."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"hi")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hello", seen
    server.shutdown()
    server.server_close()


class TestFlask:
    def test_server_span_uses_stable_http_conventions(
        self, client: Any, cvtrace_spans: CapturedSpans
    ) -> None:
        client.get("/users/1?page=2")
        (server,) = [s for s in cvtrace_spans.spans if s.kind is SpanKind.SERVER]
        assert server.name == "GET /users/<int:user_id>"
        attributes = dict(server.attributes or {})
        assert attributes["http.request.method"] == "GET"
        assert attributes["http.route"] == "/users/<int:user_id>"
        assert attributes["url.path"] == "/users/1"
        assert attributes["http.response.status_code"] == 200
        assert "http.method" not in attributes

    def test_an_exception_marks_the_span_as_error(
        self, client: Any, cvtrace_spans: CapturedSpans
    ) -> None:
        assert client.get("/fail").status_code == 500
        (server,) = cvtrace_spans.spans
        assert server.status.status_code is StatusCode.ERROR
        assert (server.attributes or {})["http.response.status_code"] == 500
        # a status was sent: the conventions
        assert (server.attributes or {})["error.type"] == "500"
        assert any(event.name == "exception" for event in server.events)

    def test_a_request_without_trace_headers_starts_a_new_trace(
        self, client: Any, cvtrace_spans: CapturedSpans
    ) -> None:
        """Even when the caller's thread has a span open (as in-process clients do)."""
        handle = cvtrace.get_handle()
        assert handle is not None
        assert handle.provider is not None
        with handle.provider.get_tracer("test").start_as_current_span("outer"):
            client.get("/users/1")
        server = next(s for s in cvtrace_spans.spans if s.kind is SpanKind.SERVER)
        assert server.parent is None


class TestSQLAlchemy:
    def test_queries_make_database_spans(self, client: Any, cvtrace_spans: CapturedSpans) -> None:
        """Fails if database spans ever stop appearing (e.g. after a SQLAlchemy upgrade)."""
        client.get("/users/1")
        (query,) = [s for s in cvtrace_spans.spans if s.kind is SpanKind.CLIENT]
        assert (query.attributes or {})["db.system.name"] == "sqlite"
        assert (query.attributes or {})["db.query.text"] == "select name from users where id = ?"

    def test_checking_out_a_connection_makes_no_connect_span(
        self, client: Any, cvtrace_spans: CapturedSpans
    ) -> None:
        client.get("/users/1")
        assert "connect" not in cvtrace_spans.names()

    def test_statement_errors_mark_the_span(self, cvtrace_spans: CapturedSpans) -> None:
        import sqlalchemy as sa

        engine = create_engine()
        cvtrace.init(engine=engine)
        with engine.connect() as connection, pytest.raises(sa.exc.OperationalError):
            connection.execute(sa.text("select * from no_such_table"))
        (query,) = cvtrace_spans.spans
        assert query.name == "select"
        assert query.status.status_code is StatusCode.ERROR
        assert (query.attributes or {})["error.type"] == "OperationalError"
        assert any(event.name == "exception" for event in query.events)

    def test_file_database_names_the_span_and_namespace(
        self, cvtrace_spans: CapturedSpans, tmp_path: Any
    ) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(f"sqlite:///{tmp_path}/shop.sqlite3")
        cvtrace.init(engine=engine)
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
        (query,) = cvtrace_spans.spans
        assert query.name == "select shop.sqlite3"
        assert (query.attributes or {})["db.namespace"] == f"{tmp_path}/shop.sqlite3"
        assert (query.attributes or {})["db.operation.name"] == "select"  # as written
        engine.dispose()

    def test_suppressed_context_makes_no_span(self, cvtrace_spans: CapturedSpans) -> None:
        import sqlalchemy as sa
        from opentelemetry import context

        from cvtrace.noise import SUPPRESSED

        engine = create_engine()
        cvtrace.init(engine=engine)
        token = context.attach(SUPPRESSED)
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("select 1"))
        finally:
            context.detach(token)
        assert cvtrace_spans.spans == []

    def test_error_messages_lose_the_values_they_quote(self) -> None:
        assert error_message(RuntimeError("no such table: t")) == "no such table: t"
        assert (
            error_message(RuntimeError('near "s3cret": syntax error')) == 'near "?": syntax error'
        )
        assert (
            error_message(RuntimeError("Duplicate entry 'ada@x.io' for key 'email'\nmore"))
            == "Duplicate entry '?' for key '?'"
        )


@pytest.mark.slow
class TestPostgres:
    """Query spans on a real PostgreSQL, through psycopg 3."""

    @pytest.fixture
    def engine(self, postgres: ThrowawayPostgres) -> Iterator[sa.Engine]:
        engine = sa.create_engine(postgres.create_database("shop"))
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE users (name text PRIMARY KEY)")
            connection.exec_driver_sql("INSERT INTO users VALUES ('grace_hopper')")
        yield engine
        engine.dispose()
        postgres.drop_database("shop")

    def test_spans_name_the_system_database_and_server(
        self, engine: sa.Engine, postgres: ThrowawayPostgres, cvtrace_spans: CapturedSpans
    ) -> None:
        cvtrace.init(engine=engine)
        with engine.connect() as connection:
            name = connection.execute(
                sa.text("SELECT name FROM users WHERE name = :name"), {"name": "grace_hopper"}
            ).scalar()
        assert name == "grace_hopper"
        query = cvtrace_spans.by_name("SELECT shop")[-1]
        assert query.kind == SpanKind.CLIENT
        assert dict(query.attributes or {}) == {
            "db.system.name": "postgresql",
            "db.namespace": "shop",
            "server.address": "127.0.0.1",
            "server.port": postgres.port,
            "db.operation.name": "SELECT",
            "db.query.text": "SELECT name FROM users WHERE name = %(name)s",
        }

    def test_a_failed_statement_carries_its_sqlstate_and_no_values(
        self, engine: sa.Engine, cvtrace_spans: CapturedSpans
    ) -> None:
        cvtrace.init(engine=engine)
        with engine.connect() as connection, pytest.raises(sa.exc.IntegrityError) as raised:
            connection.execute(
                sa.text("INSERT INTO users VALUES (:name)"), {"name": "grace_hopper"}
            )
        assert "Key (name)=(grace_hopper)" in str(raised.value)  # what psycopg says, DETAIL and all
        (query,) = [s for s in cvtrace_spans.spans if s.name == "INSERT shop"]
        attributes = dict(query.attributes or {})
        assert attributes["error.type"] == "UniqueViolation"
        assert attributes["db.response.status_code"] == "23505"
        message = 'duplicate key value violates unique constraint "?"'
        assert query.status.description == f"UniqueViolation: {message}"
        (event,) = query.events
        assert dict(event.attributes or {})["exception.message"] == message
        stack = str(dict(event.attributes or {})["exception.stacktrace"])
        assert stack.endswith(f"UniqueViolation: {message}")
        assert "grace_hopper" not in repr(query.to_json())


class TestRequests:
    def test_outgoing_call_is_a_child_span_and_carries_traceparent(
        self,
        client: Any,
        cvtrace_spans: CapturedSpans,
        header_server: tuple[str, list[dict[str, str]]],
    ) -> None:
        url, seen = header_server
        assert client.get("/call", query_string={"url": url}).data == b"hi"
        spans = cvtrace_spans.spans
        outgoing = next(s for s in spans if s.name == "GET")
        server = next(s for s in spans if s.kind is SpanKind.SERVER)
        assert outgoing.kind is SpanKind.CLIENT
        assert outgoing.parent is not None
        assert outgoing.parent.span_id == server.context.span_id
        trace_id = format_trace_id(outgoing.context.trace_id)
        span_id = format_span_id(outgoing.context.span_id)
        flags = f"{outgoing.context.trace_flags:02x}"
        assert seen[0]["traceparent"] == f"00-{trace_id}-{span_id}-{flags}"
        assert outgoing.context.trace_flags.sampled


class TestLogging:
    def test_records_inside_a_span_carry_its_ids(
        self, client: Any, cvtrace_spans: CapturedSpans, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="sample_app")
        client.get("/users/1")
        (record,) = [r for r in caplog.records if r.name == "sample_app"]
        server = next(s for s in cvtrace_spans.spans if s.kind is SpanKind.SERVER)
        # the logging hook sets these attributes, which logging.LogRecord does not declare
        added = vars(record)
        assert added["otelTraceID"] == format_trace_id(server.context.trace_id)
        assert added["otelSpanID"] == format_span_id(server.context.span_id)
        line = cvtrace.log_formatter().format(record)
        assert f"trace_id={added['otelTraceID']} span_id={added['otelSpanID']}" in line
        assert line.endswith("looked up user 1")

    def test_log_format_works_with_tracing_off(self) -> None:
        cvtrace.init()
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
        assert "[trace_id=0 span_id=0] hello" in cvtrace.log_formatter().format(record)

    def test_correlation_can_be_turned_off(
        self, cvtrace_spans: CapturedSpans, caplog: pytest.LogCaptureFixture
    ) -> None:
        engine = create_engine()
        app = create_app(engine)
        cvtrace.init(app=app, engine=engine, log_correlation=False)
        caplog.set_level(logging.INFO, logger="sample_app")
        app.test_client().get("/users/1")
        (record,) = [r for r in caplog.records if r.name == "sample_app"]
        assert not hasattr(record, "otelTraceID")
