"""Secrets are redacted once, before any exporter sees a span."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

import cvtrace
from cvtrace.scrubbing import REDACTED, Scrubber, scrub_sql
from cvtrace.testing import CapturedSpans
from tests.otlp_receiver import HttpOtlpReceiver
from tests.sample_app import create_app, create_engine


def _span(attributes: dict[str, object], events: list[Event] | None = None) -> ReadableSpan:
    context = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return ReadableSpan(
        "s", context, attributes=attributes, events=events or [], resource=Resource({})
    )  # type: ignore[arg-type]


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

    def _drive(self, app: object) -> None:
        client = app.test_client()  # type: ignore[attr-defined]
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

    def test_no_secret_reaches_the_wire(
        self, clean_env: pytest.MonkeyPatch, otlp_http: HttpOtlpReceiver
    ) -> None:
        clean_env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_http.endpoint)
        # Capture request headers too: the scrubber must redact those attributes.
        clean_env.setenv(
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "authorization,cookie"
        )
        engine = create_engine()
        app = create_app(engine)
        cvtrace.init(app=app, engine=engine)
        self._drive(app)
        cvtrace.shutdown()
        bodies = [item.request.SerializeToString() for item in otlp_http.received]
        assert len(otlp_http.spans()) == 5  # /up makes none
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
