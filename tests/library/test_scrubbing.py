"""Secrets are redacted once, before any exporter sees a span."""

from __future__ import annotations

import pytest
from flask import Flask
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.util.types import Attributes

import cvtrace
from cvtrace.demo.postgres import ThrowawayPostgres
from cvtrace.scrubbing import REDACTED, Scrubber, scrub_sql
from cvtrace.testing import CapturedSpans
from tests.otlp_receiver import HttpOtlpReceiver, attributes
from tests.sample_app import create_app, create_engine


def _span(attributes: Attributes, events: list[Event] | None = None) -> ReadableSpan:
    context = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return ReadableSpan(
        "s", context, attributes=attributes, events=events or [], resource=Resource({})
    )


class TestKeys:
    @pytest.mark.parametrize(
        "key",
        [
            "password",
            "user.passwd",
            "app.secret",
            "auth_token",
            "api_key",
            "X-Api-Key",
            "http.request.header.authorization",
            "http.request.header.cookie",
            "session.id",
            "csrf_token",
            "credit_card",
            "payment.card_number",
            "oauth.client",
        ],
    )
    def test_sensitive_keys(self, key: str) -> None:
        assert Scrubber().is_sensitive_key(key)

    @pytest.mark.parametrize(
        "key", ["user.name", "circuit.author", "gen_ai.usage.input_tokens", "http.route"]
    )
    def test_ordinary_keys(self, key: str) -> None:
        assert not Scrubber().is_sensitive_key(key)

    def test_extra_patterns(self) -> None:
        scrubber = Scrubber(["^app\\.email$"])
        assert scrubber.is_sensitive_key("app.email")
        assert not scrubber.is_sensitive_key("app.email.domain")

    def test_bad_pattern_names_the_setting(self) -> None:
        with pytest.raises(cvtrace.CvtraceConfigError, match="CVTRACE_SCRUB_PATTERNS: '\\('"):
            Scrubber(["("])


class TestValues:
    def test_url_keeps_all_but_sensitive_parameter_values(self) -> None:
        scrubber = Scrubber()
        assert (
            scrubber.scrub_url("https://u:pw@x.io/a?q=chips&token=abc&page=2&api_key=k#f")
            == f"https://u:{REDACTED}@x.io/a?q=chips&token={REDACTED}&page=2&api_key={REDACTED}#f"
        )
        assert scrubber.scrub_url("session=1&q=2") == f"session={REDACTED}&q=2"
        assert scrubber.scrub_url("/plain/path") == "/plain/path"

    def test_sql_literals_become_placeholders(self) -> None:
        assert (
            scrub_sql(
                "SELECT * FROM t2 WHERE name = 'O''Brien' AND age > 42 AND x = ? AND y=-1.5e3"
            )
            == "SELECT * FROM t2 WHERE name = ? AND age > ? AND x = ? AND y=?"
        )
        assert scrub_sql("select :p1, $1, @x from users") == "select :p1, $1, @x from users"

    def test_span_attributes_events_and_types(self) -> None:
        span = _span(
            {
                "app.password": "hunter2",
                "app.token_list": ["a", "b"],
                "url.query": "q=1&password=hunter2",
                "db.query.text": "select 1 where p = 'hunter2'",
                "user.name": "ada",
                "http.response.status_code": 200,
            },
            [Event("e", {"secret": "hunter2", "note": "ok"}, timestamp=1)],
        )
        scrubbed = Scrubber().scrub_span(span)
        assert dict(scrubbed.attributes or {}) == {
            "app.password": REDACTED,
            "app.token_list": REDACTED,
            "url.query": f"q=1&password={REDACTED}",
            "db.query.text": "select ? where p = ?",
            "user.name": "ada",
            "http.response.status_code": 200,
        }
        assert dict(scrubbed.events[0].attributes or {}) == {"secret": REDACTED, "note": "ok"}

    def test_clean_span_is_returned_unchanged(self) -> None:
        span = _span({"http.route": "/x", "url.path": "/x"})
        assert Scrubber().scrub_span(span) is span


SECRETS = ("hunter2-canary", "tok-3f9a-canary", "sess-77-canary", "key-55-canary", "bearer-canary")


class TestCanary:
    """Secrets pushed through every route never appear in any exported byte."""

    def _drive(self, app: Flask) -> None:
        client = app.test_client()
        password, token, session, key, bearer = SECRETS
        headers = {"Authorization": f"Bearer {bearer}", "Cookie": f"session={session}"}
        client.get(f"/users/1?token={token}&page=1", headers=headers)
        client.get(f"/up?password={password}", headers=headers)
        client.get(f"/fail?api_key={key}", headers=headers)
        client.post(
            f"/login?session={session}",
            data={"user": "ada", "password": password, "api_key": key},
            headers=headers,
        )
        client.post("/signup", data={"password": password}, headers=headers)

    def test_no_secret_reaches_the_wire(
        self, monkeypatch: pytest.MonkeyPatch, otlp_http: HttpOtlpReceiver
    ) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_http.endpoint)
        # Capture request headers too: the scrubber must redact those attributes.
        monkeypatch.setenv(
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "authorization,cookie"
        )
        engine = create_engine()
        app = create_app(engine)
        cvtrace.init(app=app, engine=engine)
        self._drive(app)
        cvtrace.shutdown()
        bodies = [item.request.SerializeToString() for item in otlp_http.received]
        assert len(otlp_http.spans()) == 8  # /up makes none
        wire = b"".join(bodies)
        for secret in SECRETS:
            assert secret.encode() not in wire
        assert b"[REDACTED]" in wire
        assert b"page=1" in wire  # the rest of the query survives

    def test_scrub_false_turns_it_off(self, cvtrace_spans: CapturedSpans) -> None:
        engine = create_engine()
        app = create_app(engine)
        cvtrace.init(app=app, engine=engine, scrub=False)
        self._drive(app)
        texts = repr([dict(s.attributes or {}) for s in cvtrace_spans.spans])
        assert SECRETS[1] in texts


def test_scrubbed_copy_keeps_the_dropped_counts() -> None:
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=2, max_events=1))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("s") as span:
        span.set_attributes({"password": "pw", "a": 1, "b": 2})
        span.add_event("e1")
        span.add_event("e2", {"token": "t"})
    (original,) = exporter.get_finished_spans()
    scrubbed = Scrubber().scrub_span(original)
    assert scrubbed is not original
    assert (scrubbed.dropped_attributes, scrubbed.dropped_events) == (1, 1)
    assert dict(scrubbed.events[0].attributes or {}) == {"token": REDACTED}


class TestPostgresSql:
    """Literals in PostgreSQL's syntax become ``?``; parameters and names stay."""

    @pytest.mark.parametrize(
        ("statement", "scrubbed"),
        [
            # E'...': a backslash escapes the quote, which would otherwise end the string
            (r"SELECT E'it\'s s3cret' AS a", "SELECT E? AS a"),
            (r"SELECT E'a\\', 's3cret'", "SELECT E?, ?"),
            ("SELECT e'x\\ny' || 'z'", "SELECT e? || ?"),
            # dollar quoting: nothing inside is special, not even quotes or $
            ("SELECT $$it's s3cret$$, 1", "SELECT ?, ?"),
            ("SELECT $tag$it's $$ s3cret$tag$ AS a", "SELECT ? AS a"),
            ("SELECT $a$ $b$ s3cret $b$ $a$", "SELECT ?"),
            (
                "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 42 $body$ LANGUAGE sql",
                "CREATE FUNCTION f() RETURNS int AS ? LANGUAGE sql",
            ),
            # casts and arrays
            (
                "SELECT 's3cret'::text, 42::int, CAST('7' AS int)",
                "SELECT ?::text, ?::int, CAST(? AS int)",
            ),
            ("SELECT ARRAY['s3cret', 'b'], ARRAY[1, 2.5]", "SELECT ARRAY[?, ?], ARRAY[?, ?]"),
            ("SELECT '{s3cret,b}'::text[]", "SELECT ?::text[]"),
            # other string forms keep their prefix letter, not their value
            (r"SELECT U&'d\0061t\+000061 s3cret', B'1010', X'1F', N'n'", "SELECT U&?, B?, X?, N?"),
            # numbers in every notation
            ("SELECT .5, 5., 1e-3, 0x1F, 0o17, 0b101, 1_000_000", "SELECT ?, ?, ?, ?, ?, ?, ?"),
            # parameters, names with digits and dollars, and operators stay
            ("SELECT * FROM t1 WHERE id = $1 AND n = $2", None),
            ("SELECT a$b, f$$x, t.c2 FROM t WHERE x = %(x_1)s AND y = :y1 AND z = ?", None),
            ("SELECT x::numeric - y FROM t", None),
        ],
    )
    def test_literals(self, statement: str, scrubbed: str | None) -> None:
        expected = statement if scrubbed is None else scrubbed
        assert scrub_sql(statement) == expected

    @pytest.mark.parametrize(
        ("statement", "scrubbed"),
        [
            (
                "SELECT 1 -- don't\nFROM t WHERE a = 's3cret'",
                "SELECT ? -- don't\nFROM t WHERE a = ?",
            ),
            (
                "SELECT /* it's */ a FROM t WHERE b = 's3cret'",
                "SELECT /* it's */ a FROM t WHERE b = ?",
            ),
            ("SELECT \"it's\" FROM t WHERE a = 's3cret'", 'SELECT "it\'s" FROM t WHERE a = ?'),
            ("SELECT '-- not a comment', 's3cret'", "SELECT ?, ?"),
        ],
    )
    def test_a_quote_in_a_comment_or_a_name_starts_no_literal(
        self, statement: str, scrubbed: str
    ) -> None:
        """Before, the quote in ``don't`` paired with the next one and left ``s3cret`` bare."""
        assert scrub_sql(statement) == scrubbed

    @pytest.mark.parametrize(
        "cut",
        [
            "SELECT * FROM t WHERE p = 's3cret-cut-off",
            r"SELECT * FROM t WHERE p = E's3cret\'-cut",
            "SELECT * FROM t WHERE p = $x$s3cret-cut",
        ],
    )
    def test_a_literal_cut_short_is_replaced_to_the_end(self, cut: str) -> None:
        assert "s3cret" not in scrub_sql(cut)
        assert scrub_sql(cut).startswith("SELECT * FROM t WHERE p = ")

    @given(
        secret=st.text(
            st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40
        ),
        form=st.sampled_from(["plain", "escape", "dollar", "tagged", "cast", "array"]),
    )
    @settings(max_examples=300, deadline=None)
    def test_any_value_in_any_form_is_replaced(self, secret: str, form: str) -> None:
        """Whatever the value holds (quotes, backslashes, $, --, /*, newlines), it goes."""
        plain = "'" + secret.replace("'", "''") + "'"
        literal = {
            "plain": plain,
            "escape": "E'" + secret.replace("\\", "\\\\").replace("'", "\\'") + "'",
            "dollar": f"$${secret}$$",
            "tagged": f"$v1$${secret}$v1$",
            "cast": f"{plain}::text",
            "array": f"ARRAY[{plain}, {plain}]",
        }[form]
        # a dollar-quoted body ends at the first closing tag: a value holding one (or
        # ending in half of one) cannot be written that way, in PostgreSQL either
        tag = {"dollar": "$$", "tagged": "$v1$"}.get(form)
        assume(tag is None or (secret + tag).find(tag) == len(secret))
        placeholder = {"escape": "E?", "cast": "?::text", "array": "ARRAY[?, ?]"}.get(form, "?")
        statement = f"SELECT a FROM t WHERE b = {literal} AND c = $1 -- done"
        assert scrub_sql(statement) == f"SELECT a FROM t WHERE b = {placeholder} AND c = $1 -- done"

    def test_a_statement_cut_by_the_length_limit_leaks_nothing(
        self, cvtrace_spans: CapturedSpans, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The SDK cuts attribute values when they are set; scrubbing comes after, at export."""
        import sqlalchemy as sa

        monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "48")
        engine = create_engine()
        cvtrace.init(engine=engine)
        with engine.connect() as connection:
            connection.execute(sa.text("select name from users where name = 'hunter2-canary-long'"))
        (query,) = cvtrace_spans.spans
        text = str((query.attributes or {})["db.query.text"])
        assert text == "select name from users where name = ?"
        engine.dispose()


@pytest.mark.slow
class TestPostgresCanary:
    """Real queries on a real PostgreSQL, each with a secret in one of its literal forms:
    no secret reaches the wire, whatever the form, and whether the query fails or not.

    The secrets end in letters: a trailing digit would be replaced as a number and hide
    a leak of the rest.
    """

    QUERIES = (
        ("SELECT 'canary-plain-alpha' AS v", "canary-plain-alpha"),
        (r"SELECT E'canary-escape-bravo\'s' AS v", "canary-escape-bravo's"),
        ("SELECT $$canary-dollar-charlie it's$$ AS v", "canary-dollar-charlie it's"),
        ("SELECT $q$canary-tagged-delta $$ $q$ AS v", "canary-tagged-delta $$ "),
        ("SELECT 'canary-cast-echo'::text AS v", "canary-cast-echo"),
        ("SELECT ARRAY['canary-array-foxtrot', 'x'] AS v", ["canary-array-foxtrot", "x"]),
        ("SELECT '{canary-arrayliteral-golf,x}'::text[] AS v", ["canary-arrayliteral-golf", "x"]),
        (r"SELECT U&'canary-unicode-hotel\0021' AS v", "canary-unicode-hotel!"),
        ("SELECT 5150888 AS v", 5150888),
        # a parameter stays ($1); the value given to EXECUTE goes
        ("PREPARE canary_statement (text) AS SELECT $1 || '-9' AS v", None),
        ("EXECUTE canary_statement('canary-execute-mike')", "canary-execute-mike-9"),
    )
    FAILING = (
        # PostgreSQL quotes the value in its message, and the whole statement after LINE 1:
        "SELECT 'canary-badint-india'::int",
        # and the row's values after DETAIL:
        "INSERT INTO accounts VALUES ('canary-duplicate-juliet')",
        "SELECT $$canary-syntax-kilo$$ $$canary-syntax-lima$$",
    )
    SECRETS = (
        "canary-plain-alpha",
        "canary-escape-bravo",
        "canary-dollar-charlie",
        "canary-tagged-delta",
        "canary-cast-echo",
        "canary-array-foxtrot",
        "canary-arrayliteral-golf",
        "canary-unicode-hotel",
        "5150888",
        "canary-execute-mike",
        "canary-badint-india",
        "canary-duplicate-juliet",
        "canary-syntax-kilo",
        "canary-syntax-lima",
    )

    def test_no_secret_reaches_the_wire(
        self,
        postgres: ThrowawayPostgres,
        otlp_http: HttpOtlpReceiver,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        import sqlalchemy as sa

        url = postgres.create_database("canary")
        setup = sa.create_engine(url)
        with setup.begin() as connection:  # untraced: made before init
            connection.exec_driver_sql("CREATE TABLE accounts (name text PRIMARY KEY)")
            connection.exec_driver_sql("INSERT INTO accounts VALUES ('canary-duplicate-juliet')")
        setup.dispose()
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_http.endpoint)
        engine = sa.create_engine(url)
        cvtrace.init(engine=engine, service_name="canary")
        with engine.connect() as connection:
            for statement, expected in self.QUERIES:
                result = connection.exec_driver_sql(statement)
                if expected is not None:  # the database saw the real literal
                    assert result.scalar() == expected, statement
            for statement in self.FAILING:
                with pytest.raises(sa.exc.DBAPIError):
                    connection.exec_driver_sql(statement)
                connection.rollback()
        cvtrace.shutdown()
        engine.dispose()
        postgres.drop_database("canary")

        spans = otlp_http.spans()
        wire = b"".join(item.request.SerializeToString() for item in otlp_http.received)
        for secret in self.SECRETS:
            assert secret.encode() not in wire, secret
        # SQLAlchemy's first-connect queries, then ours, with their values gone
        texts = [attributes(span)["db.query.text"] for span in spans]
        assert texts[3:] == [
            "SELECT ? AS v",
            "SELECT E? AS v",
            "SELECT ? AS v",
            "SELECT ? AS v",
            "SELECT ?::text AS v",
            "SELECT ARRAY[?, ?] AS v",
            "SELECT ?::text[] AS v",
            "SELECT U&? AS v",
            "SELECT ? AS v",
            "PREPARE canary_statement (text) AS SELECT $1 || ? AS v",
            "EXECUTE canary_statement(?)",
            "SELECT ?::int",
            "INSERT INTO accounts VALUES (?)",
            "SELECT ? ?",
        ]
        assert {attributes(span)["db.system.name"] for span in spans} == {"postgresql"}
        failed = [span for span in spans if span.status.code == span.status.STATUS_CODE_ERROR]
        assert len(failed) == len(self.FAILING)
        assert {attributes(span)["db.response.status_code"] for span in failed} == {
            "22P02",  # invalid_text_representation
            "23505",  # unique_violation
            "42601",  # syntax_error
        }
        assert (
            failed[0].status.message
            == 'InvalidTextRepresentation: invalid input syntax for type integer: "?"'
        )

    def test_an_apps_own_span_around_a_failing_query_keeps_no_secret(
        self,
        postgres: ThrowawayPostgres,
        otlp_http: HttpOtlpReceiver,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The SDK records SQLAlchemy's whole error text on a span the app made: the
        statement, PostgreSQL's DETAIL and LINE lines and the bound values are redacted."""
        import sqlalchemy as sa
        from opentelemetry import trace

        url = postgres.create_database("canary_own_span")
        setup = sa.create_engine(url)
        with setup.begin() as connection:  # untraced: made before init
            connection.exec_driver_sql("CREATE TABLE accounts (name text PRIMARY KEY)")
            connection.exec_driver_sql("INSERT INTO accounts VALUES ('canary-row-oscar')")
        setup.dispose()
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_http.endpoint)
        engine = sa.create_engine(url)
        cvtrace.init(engine=engine, service_name="canary")
        tracer = trace.get_tracer("canary-app")
        failing: list[tuple[str, dict[str, str]]] = [
            ("INSERT INTO accounts VALUES (:name)", {"name": "canary-row-oscar"}),
            ("SELECT 'canary-badint-papa'::int", {}),
        ]
        with engine.connect() as connection:
            for statement, parameters in failing:
                with pytest.raises(sa.exc.DBAPIError):  # noqa: SIM117 (the span records it)
                    with tracer.start_as_current_span("app step"):
                        connection.execute(sa.text(statement), parameters)
                connection.rollback()
        cvtrace.shutdown()
        engine.dispose()
        postgres.drop_database("canary_own_span")

        wire = b"".join(item.request.SerializeToString() for item in otlp_http.received)
        for secret in (b"canary-row-oscar", b"canary-badint-papa"):
            assert secret not in wire
        own = [span for span in otlp_http.spans() if span.name == "app step"]
        assert len(own) == 2
        messages = [attributes(span.events[0])["exception.message"] for span in own]
        assert messages[0].startswith("(psycopg.errors.UniqueViolation) duplicate key value")
        assert "DETAIL: [REDACTED]" in messages[0]
        assert "[SQL: INSERT INTO accounts VALUES (%(name)s)]" in messages[0]
        assert f"[parameters: {REDACTED}]" in messages[0]
        assert "LINE 1: [REDACTED]" in messages[1]
        assert "[SQL: SELECT ?::int]" in messages[1]
        assert "[parameters: " in own[0].status.message
