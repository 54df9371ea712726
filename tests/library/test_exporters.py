"""Each exporter, against a real receiver on 127.0.0.1 (or a real SQLite file)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from opentelemetry.util.types import AttributeValue

import cvtrace
from cvtrace.exporters.newrelic import MAX_ATTRIBUTES, MAX_REQUEST_BYTES, create_newrelic_exporter
from cvtrace.store import SpanStore
from tests.otlp_receiver import GrpcOtlpReceiver, HttpOtlpReceiver, attributes
from tests.sample_app import create_app, create_engine


def _make_spans(count: int = 1, **span_attributes: AttributeValue) -> cvtrace.Handle:
    handle = cvtrace.get_handle()
    assert handle is not None
    assert handle.provider is not None
    tracer = handle.provider.get_tracer("tests")
    for index in range(count):
        with tracer.start_as_current_span(f"span-{index}") as span:
            span.set_attributes(span_attributes)
    return handle


class TestOtlp:
    def test_http_protobuf_with_standard_variables(
        self, monkeypatch: pytest.MonkeyPatch, otlp_http: HttpOtlpReceiver
    ) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_http.base_url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=circuits,authorization=Bearer%20t")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout")
        handle = cvtrace.init()
        assert handle.settings.exporters == ("otlp",)
        _make_spans(3)
        cvtrace.shutdown()
        (received,) = otlp_http.received
        assert received.path == "/v1/traces"
        assert received.headers["x-team"] == "circuits"
        assert received.headers["authorization"] == "Bearer t"
        assert received.headers["content-encoding"] == "gzip"
        assert [s.name for s in otlp_http.spans()] == ["span-0", "span-1", "span-2"]
        assert otlp_http.resources()[0]["service.name"] == "checkout"

    def test_traces_specific_endpoint_wins(
        self, monkeypatch: pytest.MonkeyPatch, otlp_http: HttpOtlpReceiver
    ) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_http.endpoint)
        cvtrace.init()
        _make_spans()
        cvtrace.shutdown()
        assert len(otlp_http.spans()) == 1

    def test_grpc(self, monkeypatch: pytest.MonkeyPatch, otlp_grpc: GrpcOtlpReceiver) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_grpc.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=circuits")
        cvtrace.init()
        _make_spans(2)
        cvtrace.shutdown()
        assert [s.name for s in otlp_grpc.spans()] == ["span-0", "span-1"]
        assert otlp_grpc.received[0].headers["x-team"] == "circuits"

    def test_grpc_retries_after_the_delay_the_server_asks_for(
        self, monkeypatch: pytest.MonkeyPatch, otlp_grpc: GrpcOtlpReceiver
    ) -> None:
        """RESOURCE_EXHAUSTED is retryable only with a RetryInfo (the OTLP spec)."""
        otlp_grpc.fail_next, otlp_grpc.fail_code = 2, grpc.StatusCode.RESOURCE_EXHAUSTED
        otlp_grpc.retry_delay_s = 0.1
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_grpc.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        handle = cvtrace.init()
        _make_spans(2)
        started = time.monotonic()
        assert handle.force_flush(timeout_s=10)
        assert time.monotonic() - started >= 0.2
        assert (otlp_grpc.attempts, len(otlp_grpc.spans())) == (3, 2)
        assert handle.stats().spans_exported == 2

    @pytest.mark.parametrize(
        ("code", "retry_delay_s"),
        [
            (grpc.StatusCode.INVALID_ARGUMENT, None),
            (grpc.StatusCode.RESOURCE_EXHAUSTED, None),
            (grpc.StatusCode.UNAUTHENTICATED, 0.1),
        ],
    )
    def test_grpc_failure_that_is_not_retryable_is_counted_at_once(
        self,
        monkeypatch: pytest.MonkeyPatch,
        otlp_grpc: GrpcOtlpReceiver,
        caplog: pytest.LogCaptureFixture,
        code: grpc.StatusCode,
        retry_delay_s: float | None,
    ) -> None:
        otlp_grpc.fail_next, otlp_grpc.fail_code = 1, code
        otlp_grpc.retry_delay_s = retry_delay_s
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_grpc.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
        handle = cvtrace.init()
        _make_spans(1)
        assert handle.force_flush(timeout_s=10)
        assert otlp_grpc.attempts == 1
        assert handle.stats().spans_failed == 1
        assert f"({code.name} told to fail)" in caplog.text

    def test_grpc_over_tls_with_the_certificate_variable(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", certificate],
            check=True,
            capture_output=True,
        )  # fmt: skip
        credentials = grpc.ssl_server_credentials([(key.read_bytes(), certificate.read_bytes())])
        with GrpcOtlpReceiver(credentials) as receiver:
            endpoint = f"https://127.0.0.1:{receiver.port}"
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(certificate))
            cvtrace.init()
            _make_spans(1)
            cvtrace.shutdown()
            assert [s.name for s in receiver.spans()] == ["span-0"]

    @pytest.mark.parametrize(
        ("variable", "value", "message"),
        [
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/no/such.pem", "cannot read '/no/such.pem'"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "perhaps", "'perhaps' is not a boolean"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://", "'http://' has no host"),
        ],
    )
    def test_grpc_bad_values_name_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
    ) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")  # TLS: no scheme
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv(variable, value)
        pattern = f"^{variable}: .*{re.escape(message)}"
        with pytest.raises(cvtrace.CvtraceConfigError, match=pattern):
            cvtrace.init()

    def test_unsupported_protocol_is_a_clear_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        with pytest.raises(
            cvtrace.CvtraceConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json'"
        ):
            cvtrace.init(exporters=["otlp"])

    def test_a_whole_request_arrives_as_one_trace(
        self, monkeypatch: pytest.MonkeyPatch, otlp_http: HttpOtlpReceiver
    ) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_http.base_url)
        engine = create_engine()
        app = create_app(engine)
        cvtrace.init(app=app, engine=engine)
        app.test_client().get("/users/1")
        cvtrace.shutdown()
        spans = otlp_http.spans()
        assert len(spans) == 2
        assert spans[0].trace_id == spans[1].trace_id
        assert {attributes(s).get("db.system.name") for s in spans} == {"sqlite", None}


class TestJaeger:
    @pytest.mark.parametrize("transport", ["http", "grpc"])
    def test_jaeger_gets_no_collector_headers(
        self,
        monkeypatch: pytest.MonkeyPatch,
        otlp_http: HttpOtlpReceiver,
        otlp_grpc: GrpcOtlpReceiver,
        transport: str,
    ) -> None:
        """``OTEL_EXPORTER_OTLP_*HEADERS`` are the collector's (issue 10, bug 3)."""
        receiver: HttpOtlpReceiver | GrpcOtlpReceiver
        if transport == "http":
            receiver, endpoint = otlp_http, otlp_http.base_url
        else:
            receiver, endpoint = otlp_grpc, f"grpc://127.0.0.1:{otlp_grpc.port}"
        monkeypatch.setenv("CVTRACE_EXPORTERS", "jaeger")
        monkeypatch.setenv("CVTRACE_JAEGER_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=collector-only,x-a=1")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=collector-only")
        cvtrace.init()
        _make_spans(2)
        cvtrace.shutdown()
        (received,) = receiver.received
        assert "collector-only" not in str(received.headers)
        assert not {"authorization", "x-a", "x-tenant"} & set(received.headers)
        assert [s.name for s in receiver.spans()] == ["span-0", "span-1"]
        if transport == "http":
            assert received.path == "/v1/traces"
            assert received.headers["content-type"] == "application/x-protobuf"

    def test_bad_endpoint_names_the_setting(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CVTRACE_JAEGER_ENDPOINT", "jaeger:4318")
        with pytest.raises(
            cvtrace.CvtraceConfigError, match="CVTRACE_JAEGER_ENDPOINT: 'jaeger:4318'"
        ):
            cvtrace.init(exporters=["jaeger"])


class TestNewRelic:
    """New Relic's servers cannot be reached here: a real local receiver stands in,
    through NEW_RELIC_OTLP_ENDPOINT, and the test checks what New Relic requires."""

    def test_path_key_gzip_and_limits(
        self, monkeypatch: pytest.MonkeyPatch, otlp_http: HttpOtlpReceiver
    ) -> None:
        monkeypatch.setenv("NEW_RELIC_LICENSE_KEY", "nr-license-123")
        monkeypatch.setenv("NEW_RELIC_OTLP_ENDPOINT", otlp_http.base_url + "/")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=collector-only")
        cvtrace.init(exporters=["newrelic"])
        many = {f"app.attr{i:03}": i for i in range(100)}
        _make_spans(1, **{"app.long": "x" * 10_000, "app.list": ["y" * 5000, "z"]}, **many)
        cvtrace.shutdown()
        (received,) = otlp_http.received
        assert received.path == "/v1/traces"
        assert received.headers["api-key"] == "nr-license-123"
        assert received.headers["content-encoding"] == "gzip"
        assert "authorization" not in received.headers
        (span,) = otlp_http.spans()
        span_attributes = attributes(span)
        assert len(span_attributes) == MAX_ATTRIBUTES
        assert len(span_attributes["app.long"]) == 4095
        assert [len(v.string_value) for v in span_attributes["app.list"].values] == [4095, 1]

    def test_batches_are_split_under_one_megabyte(
        self, monkeypatch: pytest.MonkeyPatch, otlp_http: HttpOtlpReceiver
    ) -> None:
        monkeypatch.setenv("NEW_RELIC_LICENSE_KEY", "k")
        monkeypatch.setenv("NEW_RELIC_OTLP_ENDPOINT", otlp_http.base_url)
        cvtrace.init(exporters=["newrelic"])
        # 400 spans x 4 KB of attributes: about 1.6 MB in one batch.
        _make_spans(400, **{"app.a": "a" * 4000})
        cvtrace.shutdown()
        assert len(otlp_http.received) >= 2
        for item in otlp_http.received:
            assert item.request.ByteSize() < MAX_REQUEST_BYTES
        assert len(otlp_http.spans()) == 400

    def test_no_license_key_names_the_variable(self) -> None:
        with pytest.raises(cvtrace.CvtraceConfigError, match=r"^NEW_RELIC_LICENSE_KEY: not set"):
            cvtrace.init(exporters=["newrelic"])

    @pytest.mark.parametrize(
        ("region", "endpoint"),
        [
            ("us", "https://otlp.nr-data.net/v1/traces"),
            ("EU", "https://otlp.eu01.nr-data.net/v1/traces"),
            ("fedramp", "https://gov-otlp.nr-data.net/v1/traces"),
        ],
    )
    def test_regions(self, region: str, endpoint: str) -> None:
        exporter = create_newrelic_exporter(
            {"NEW_RELIC_LICENSE_KEY": "k", "NEW_RELIC_REGION": region}
        )
        assert exporter.endpoint == endpoint

    def test_unknown_region(self) -> None:
        with pytest.raises(
            cvtrace.CvtraceConfigError, match="NEW_RELIC_REGION: unknown region 'mars'"
        ):
            create_newrelic_exporter({"NEW_RELIC_LICENSE_KEY": "k", "NEW_RELIC_REGION": "mars"})


class TestLocal:
    def test_spans_land_in_the_sqlite_store(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        db = tmp_path / "traces.sqlite3"
        monkeypatch.setenv("CVTRACE_EXPORTERS", "local")
        monkeypatch.setenv("CVTRACE_LOCAL_DB", str(db))
        engine = create_engine()
        app = create_app(engine)
        cvtrace.init(app=app, engine=engine, service_name="circuits")
        app.test_client().get("/users/1")
        cvtrace.shutdown()
        store = SpanStore(db)
        try:
            assert store.span_count() == 2
            assert store.services() == ["circuits"]
            assert "GET /users/<int:user_id>" in store.operations("circuits")
        finally:
            store.close()

    def test_default_path_is_the_viewers_default(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
        cvtrace.init(exporters=["local"])
        _make_spans(1)
        cvtrace.shutdown()
        assert (tmp_path / "cvtrace" / "traces.sqlite3").exists()


class TestConsole:
    def test_one_readable_line_per_span(self, capsys: pytest.CaptureFixture[str]) -> None:
        engine = create_engine()
        app = create_app(engine)
        cvtrace.init(app=app, engine=engine, service_name="circuits", exporters="console")
        app.test_client().get("/users/1")
        cvtrace.shutdown()
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 2
        assert "[circuits] GET /users/<int:user_id>" in lines[1]
        assert "http.response.status_code=200" in lines[1]
        assert "db.query.text='select name from users where id = ?'" in lines[0]

    def test_writes_to_stderr_by_default(self, capsys: pytest.CaptureFixture[str]) -> None:
        cvtrace.init(exporters=["console"], service_name="svc")
        _make_spans(1)
        cvtrace.shutdown()
        assert "[svc] span-0" in capsys.readouterr().err


def test_several_exporters_at_once(
    monkeypatch: pytest.MonkeyPatch, otlp_http: HttpOtlpReceiver, tmp_path: Path
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_http.base_url)
    cvtrace.init(exporters="otlp,local", local_db=tmp_path / "t.sqlite3")
    _make_spans(2)
    cvtrace.shutdown()
    assert len(otlp_http.spans()) == 2
    store = SpanStore(tmp_path / "t.sqlite3")
    assert store.span_count() == 2
    store.close()


class TestOtlpSettings:
    @pytest.mark.parametrize(
        ("variable", "value", "message"),
        [
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", "unknown compression 'brotli'"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon", "'soon' is not a number of seconds"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json", "'http/json' is not supported"),
        ],
    )
    def test_bad_values_name_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
    ) -> None:
        monkeypatch.setenv(variable, value)
        with pytest.raises(cvtrace.CvtraceConfigError, match=f"^{variable}: .*{message}"):
            cvtrace.init(exporters=["otlp"])

    def test_traces_variables_win_over_generic_ones(
        self, monkeypatch: pytest.MonkeyPatch, otlp_http: HttpOtlpReceiver
    ) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_http.base_url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-which=generic")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-which=traces,x-space=a%20b")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "deflate")
        cvtrace.init()
        _make_spans(1)
        cvtrace.shutdown()
        (received,) = otlp_http.received
        assert received.headers["x-which"] == "traces"
        assert received.headers["x-space"] == "a b"
        assert received.headers["content-encoding"] == "deflate"
        assert len(otlp_http.spans()) == 1
