"""Spans stored by the ``local`` exporter and received over OTLP are stored identically."""

from __future__ import annotations

from pathlib import Path

import pytest

import cvtrace
from cvtrace.store import SpanStore, TraceQuery
from tests.sample_app import create_app, create_engine
from tests.viewer.support import ViewerServer, store_snapshot


def test_same_spans_both_ways_give_the_same_rows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    via_local, via_otlp = tmp_path / "local.sqlite3", tmp_path / "otlp.sqlite3"
    from cvtrace.viewer import create_receiver_app

    receiver_store = SpanStore(via_otlp)
    with ViewerServer(create_receiver_app({"STORE": receiver_store})) as viewer:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{viewer.url}/v1/traces")
        engine = create_engine()
        app = create_app(engine)
        # One processor hands every batch to both exporters: the same spans, two paths.
        cvtrace.init(app=app, engine=engine, exporters=["otlp", "local"], local_db=via_local)
        client = app.test_client()
        client.get("/users/1")
        client.get("/fail")
        client.post("/login", data={"user": "ada", "password": "pw", "api_key": "k"})
        cvtrace.shutdown()
    receiver_store.close()

    local_rows = store_snapshot(via_local)
    otlp_rows = store_snapshot(via_otlp)
    groups = dict(local_rows)["span_groups"]  # (id, resource_id, scope_id, span_ids, body)
    assert sum(len(row[3]) // 8 for row in groups) == 5  # users: 2, fail: 1, login: 2
    assert local_rows == otlp_rows


def test_encoded_sdk_spans_and_their_request_give_the_same_rows(tmp_path: Path) -> None:
    """``write_encoded`` (the local exporter's path) reads the SDK's objects where
    ``write_request`` reads the decoded request: every field that matters, both ways."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

    from cvtrace.otlp.encoding import SpanEncoder, request_bytes

    memory = InMemorySpanExporter()
    resource = Resource.create(
        {"service.name": "shop", "service.version": "1.2", "host.name": "h", "replicas": 3},
        schema_url="https://opentelemetry.io/schemas/1.26.0",
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("lib", "0.1", schema_url="https://example.com/s")
    other = provider.get_tracer("other")
    with tracer.start_as_current_span("GET /a", kind=SpanKind.SERVER) as root:
        root.set_attributes({"http.route": "/a", "http.response.status_code": 500, "ok": False})
        root.set_attribute("ratio", 0.25)
        root.set_attribute("list", ["x", "y"])
        root.set_status(Status(StatusCode.ERROR, "boom"))
        root.add_event("retry", {"attempt": 2})
        with other.start_as_current_span("query", kind=SpanKind.CLIENT) as query:
            query.set_attribute("db.system.name", "sqlite")
    with tracer.start_as_current_span(
        "job", links=[Link(root.get_span_context(), {"why": "follows"})]
    ) as job:
        job.set_status(Status(StatusCode.OK))
    provider.shutdown()
    spans = memory.get_finished_spans()
    spans = (*spans, spans[0])  # a span sent twice is stored once, both ways
    tag_keys = ["http.route", "http.response.status_code", "ok", "ratio", "list", "replicas"]
    encoded = SpanEncoder().encode_grouped(spans)
    body = request_bytes(encoded)
    paths = tmp_path / "encoded.sqlite3", tmp_path / "request.sqlite3"
    with SpanStore(paths[0], tag_keys=tag_keys) as store:
        assert store.write_encoded(encoded).accepted_spans == 4
    with SpanStore(paths[1], tag_keys=tag_keys) as store:
        result = store.write_request(ExportTraceServiceRequest.FromString(body), body)
        assert result.accepted_spans == 4
        assert store.search(TraceQuery(tags={"ok": "false", "ratio": "0.25"}))
        assert store.search(TraceQuery(tags={"replicas": "3"}))
    assert store_snapshot(paths[0]) == store_snapshot(paths[1])
