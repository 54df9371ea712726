"""The OTLP/HTTP receiver over real HTTP on 127.0.0.1."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
import requests
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from cvtrace.store import SpanStore, TraceQuery, spans_to_traces_data
from cvtrace.viewer import create_app
from tests.viewer.support import (
    OtlpServer,
    SpanSpec,
    ViewerServer,
    make_request,
    new_trace_id,
    simple_trace,
    store_snapshot,
)

PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "viewer.sqlite3"


@pytest.fixture
def store(db: Path) -> Iterator[SpanStore]:
    s = SpanStore(db, max_spans=0)
    yield s
    s.close()


class Receiver(Protocol):
    """What these tests use of either server that receives OTLP: its base URL."""

    @property
    def url(self) -> str: ...


@pytest.fixture(params=["flask-route", "otlp-http-server"])
def server(request: pytest.FixtureRequest, store: SpanStore) -> Iterator[Receiver]:
    """The receiver both ways it is served: the Flask route, and cvtrace view's OTLP port."""
    if request.param == "flask-route":
        app = create_app({"STORE": store, "OTLP_MAX_BODY_BYTES": 1024 * 1024})
        with ViewerServer(app) as srv:
            yield srv
    else:
        with OtlpServer(store, limit=1024 * 1024) as lean:
            yield lean


def otlp_json_request(trace_hex: str, span_hex: str) -> dict[str, object]:
    """Return an OTLP JSON request as the spec writes it, with fields we ignore."""
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "curl-svc"}},
                        {"key": "pid", "value": {"intValue": "4242"}},
                    ]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "manual", "version": "0.1"},
                        "spans": [
                            {
                                "traceId": trace_hex,
                                "spanId": span_hex,
                                "parentSpanId": "",
                                "name": "GET /from-json",
                                "kind": 2,
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": 1700000000250000000,
                                "attributes": [
                                    {"key": "http.route", "value": {"stringValue": "/j"}},
                                    {"key": "n", "value": {"intValue": 7}},
                                ],
                                "status": {"code": 2, "message": "bad"},
                                "futureField": {"nested": True},
                                "links": [{"traceId": "ab" * 16, "spanId": "cd" * 8}],
                            }
                        ],
                    }
                ],
                "someNewField": 1,
            }
        ]
    }


class TestAccepted:
    def test_protobuf(self, server: Receiver, store: SpanStore) -> None:
        specs = simple_trace()
        body = make_request(specs).SerializeToString()
        r = requests.post(f"{server.url}/v1/traces", data=body, headers=PB, timeout=10)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/x-protobuf"
        response = ExportTraceServiceResponse.FromString(r.content)
        assert not response.HasField("partial_success")
        assert len(store.get_trace(specs[0].trace_id)) == 3

    def test_json_per_spec(self, server: Receiver, store: SpanStore) -> None:
        trace_hex, span_hex = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
        r = requests.post(
            f"{server.url}/v1/traces",
            data=json.dumps(otlp_json_request(trace_hex, span_hex)),
            headers=JS,
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == "application/json"
        assert r.json() == {}
        (stored,) = store.get_trace(bytes.fromhex(trace_hex))
        span = stored.span
        assert span.span_id.hex() == span_hex
        assert span.name == "GET /from-json"
        assert span.kind == 2
        assert span.end_time_unix_nano - span.start_time_unix_nano == 250_000_000
        assert span.status.code == 2
        assert span.links[0].trace_id.hex() == "ab" * 16
        assert stored.service == "curl-svc"
        assert stored.resource.attributes[1].value.int_value == 4242

    def test_gzip_protobuf_and_json(self, server: Receiver, store: SpanStore) -> None:
        specs = simple_trace()
        body = gzip.compress(make_request(specs).SerializeToString())
        r = requests.post(
            f"{server.url}/v1/traces",
            data=body,
            headers={**PB, "Content-Encoding": "gzip"},
            timeout=10,
        )
        assert r.status_code == 200
        body = gzip.compress(json.dumps(otlp_json_request("11" * 16, "22" * 8)).encode())
        r = requests.post(
            f"{server.url}/v1/traces",
            data=body,
            headers={**JS, "Content-Encoding": "gzip"},
            timeout=10,
        )
        assert r.status_code == 200
        assert store.span_count() == 4

    def test_partial_success(self, server: Receiver, store: SpanStore) -> None:
        trace_id = new_trace_id()
        specs = [SpanSpec("good", trace_id), SpanSpec("zero", bytes(16)), SpanSpec("short", b"1")]
        r = requests.post(
            f"{server.url}/v1/traces",
            data=make_request(specs).SerializeToString(),
            headers=PB,
            timeout=10,
        )
        assert r.status_code == 200
        response = ExportTraceServiceResponse.FromString(r.content)
        assert response.partial_success.rejected_spans == 2
        assert "all-zero trace id" in response.partial_success.error_message
        assert [s.span.name for s in store.get_trace(trace_id)] == ["good"]

    def test_partial_success_json(self, server: Receiver, store: SpanStore) -> None:
        payload = otlp_json_request("00" * 16, "22" * 8)
        r = requests.post(f"{server.url}/v1/traces", json=payload, timeout=10)
        assert r.status_code == 200
        assert r.json()["partialSuccess"]["rejectedSpans"] in (1, "1")
        assert store.span_count() == 0


class TestRefused:
    """Every bad request gets a 4xx and leaves the store exactly as it was."""

    @pytest.fixture(autouse=True)
    def _seed(self, server: Receiver, store: SpanStore, db: Path) -> Iterator[None]:
        store.write_request(make_request(simple_trace()))
        before = store_snapshot(db)
        yield
        assert store_snapshot(db) == before

    def post(self, server: Receiver, body: bytes, headers: dict[str, str]) -> requests.Response:
        return requests.post(f"{server.url}/v1/traces", data=body, headers=headers, timeout=30)

    @pytest.mark.parametrize(
        ("body", "headers"),
        [
            (b"\xff\xff\xff\xff not protobuf", PB),
            (b"\x0a\x05\x0a\x03", PB),  # truncated message
            (b"{not json", JS),
            (b"[1, 2]", JS),
            (json.dumps(otlp_json_request("zz" * 16, "22" * 8)).encode(), JS),
            (json.dumps({"resourceSpans": "nope"}).encode(), JS),
            (b"\x1f\x8b\x08\x00garbage-gzip", {**PB, "Content-Encoding": "gzip"}),
            (gzip.compress(b"x" * 100)[:-8], {**PB, "Content-Encoding": "gzip"}),
        ],
        ids=[
            "garbage-pb",
            "truncated-pb",
            "bad-json",
            "json-array",
            "bad-hex",
            "wrong-shape",
            "bad-gzip",
            "short-gzip",
        ],
    )
    def test_undecodable_is_400_with_status(
        self, server: Receiver, body: bytes, headers: dict[str, str]
    ) -> None:
        r = self.post(server, body, headers)
        assert r.status_code == 400
        if r.headers["Content-Type"] == "application/json":
            assert r.json()["code"] == 3
            assert r.json()["message"]
        else:
            status = status_pb2.Status.FromString(r.content)
            assert status.code == 3
            assert status.message

    def test_unsupported_content_type_is_415(self, server: Receiver) -> None:
        assert self.post(server, b"hello", {"Content-Type": "text/plain"}).status_code == 415
        assert self.post(server, b"hello", {}).status_code == 415

    def test_unsupported_encoding_is_415(self, server: Receiver) -> None:
        r = self.post(server, b"x", {**PB, "Content-Encoding": "br"})
        assert r.status_code == 415

    def test_over_limit_is_413(self, server: Receiver) -> None:
        r = self.post(server, b"\x00" * (1024 * 1024 + 1), PB)
        assert r.status_code == 413

    def test_gzip_bomb_is_413(self, server: Receiver) -> None:
        bomb = gzip.compress(b"\x00" * (200 * 1024 * 1024), compresslevel=9)
        assert len(bomb) < 1024 * 1024
        r = self.post(server, bomb, {**PB, "Content-Encoding": "gzip"})
        assert r.status_code == 413
        assert "after decompression" in status_pb2.Status.FromString(r.content).message

    def test_get_is_405(self, server: Receiver) -> None:
        assert requests.get(f"{server.url}/v1/traces", timeout=10).status_code == 405


class TestToken:
    def test_receiver_needs_bearer_token(self, store: SpanStore) -> None:
        app = create_app({"STORE": store, "TOKEN": "s3cret"})
        body = make_request(simple_trace()).SerializeToString()
        with ViewerServer(app) as srv:
            r = requests.post(f"{srv.url}/v1/traces", data=body, headers=PB, timeout=10)
            assert r.status_code == 401
            r = requests.post(
                f"{srv.url}/v1/traces",
                data=body,
                headers={**PB, "Authorization": "Bearer wrong"},
                timeout=10,
            )
            assert r.status_code == 401
            assert store.span_count() == 0
            r = requests.post(
                f"{srv.url}/v1/traces",
                data=body,
                headers={**PB, "Authorization": "Bearer s3cret"},
                timeout=10,
            )
            assert r.status_code == 200
            assert store.span_count() == 3


def sdk_spans() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "sdk-svc", "deployment.environment.name": "t"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("my.lib", "2.0")
    with tracer.start_as_current_span("parent", attributes={"http.route": "/p"}) as parent:
        parent.add_event("hello", {"k": "v"})
        with tracer.start_as_current_span("child") as child:
            child.set_status(Status(StatusCode.ERROR, "nope"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


class TestRealExporters:
    def test_sdk_otlp_http_exporter_gzip(self, server: Receiver, store: SpanStore) -> None:
        spans = sdk_spans()
        exporter = OTLPSpanExporter(
            endpoint=f"{server.url}/v1/traces", compression=Compression.Gzip, timeout=10
        )
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        exporter.shutdown()
        assert store.services() == ["sdk-svc"]
        (summary,) = store.search(TraceQuery())
        assert summary.span_count == 2

    def test_local_path_and_otlp_store_identically(
        self, server: Receiver, store: SpanStore, tmp_path: Path
    ) -> None:
        """The same SDK spans, written directly (as `local` does) and sent over OTLP."""
        spans = sdk_spans()
        exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", timeout=10)
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        exporter.shutdown()
        with SpanStore(tmp_path / "direct.sqlite3") as direct:
            direct.write_request(encode_spans(spans))
            trace_id = spans[0].context.trace_id.to_bytes(16, "big")
            via_http = store.get_trace(trace_id)
            via_local = direct.get_trace(trace_id)
            assert len(via_local) == 2
            assert spans_to_traces_data(via_http) == spans_to_traces_data(via_local)
            assert [s.service for s in via_http] == [s.service for s in via_local]
