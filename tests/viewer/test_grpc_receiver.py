"""The OTLP/gRPC receiver on 127.0.0.1: same storage path and validation as HTTP."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.trace.export import SpanExportResult

from cvtrace.store import SpanStore
from cvtrace.viewer.grpc_receiver import start_grpc_server
from cvtrace.viewer.receiver import DecodeSlots
from tests.viewer.support import SpanSpec, make_request, new_trace_id, simple_trace
from tests.viewer.test_receiver import sdk_spans


@pytest.fixture
def grpc_port(store: SpanStore) -> Iterator[int]:
    server, port = start_grpc_server(store, "127.0.0.1", 0)
    yield port
    server.stop(grace=None).wait()


def test_sdk_grpc_exporter_gzip(grpc_port: int, store: SpanStore) -> None:
    exporter = OTLPSpanExporter(
        endpoint=f"127.0.0.1:{grpc_port}",
        insecure=True,
        compression=grpc.Compression.Gzip,
        timeout=10,
    )
    assert exporter.export(sdk_spans()) == SpanExportResult.SUCCESS
    exporter.shutdown()
    assert store.services() == ["sdk-svc"]
    assert store.span_count() == 2


def test_partial_success_over_grpc(grpc_port: int, store: SpanStore) -> None:
    trace_id = new_trace_id()
    request = make_request([SpanSpec("good", trace_id), SpanSpec("bad", trace_id, span_id=b"x")])
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        response = stub.Export(request, timeout=10)
    assert response.partial_success.rejected_spans == 1
    assert "span id that is not 8 bytes" in response.partial_success.error_message
    assert [s.span.name for s in store.get_trace(trace_id)] == ["good"]


def test_undecodable_message_is_refused(grpc_port: int, store: SpanStore) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.RpcError) as info:
            export(b"\xff\xff\xff\xff garbage", timeout=10)
    assert info.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
    assert store.span_count() == 0


def test_token_required_in_metadata(store: SpanStore) -> None:
    server, port = start_grpc_server(store, "127.0.0.1", 0, token="tok")
    try:
        request = make_request(simple_trace())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.Export(request, timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert store.span_count() == 0
            stub.Export(request, timeout=10, metadata=[("authorization", "Bearer tok")])
        assert store.span_count() == 3
    finally:
        server.stop(grace=None).wait()


def test_spans_stored_as_sent(grpc_port: int, store: SpanStore) -> None:
    """Like the HTTP receiver, gRPC hands the store the request's bytes."""
    request = make_request(simple_trace(children=2))
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        stub.Export(request, timeout=10)
    conn = sqlite3.connect(store.path)
    (body,) = conn.execute("SELECT body FROM span_groups").fetchone()
    conn.close()
    assert body in request.SerializeToString()
    assert store.span_count() == 3


def test_busy_slots_are_unavailable(store: SpanStore) -> None:
    """Issue 11, 8: gRPC decodes within the viewer's shared slots; none free: UNAVAILABLE
    (which exporters retry), nothing stored."""
    slots = DecodeSlots(1, wait_s=0.2)
    server, port = start_grpc_server(store, "127.0.0.1", 0, slots=slots)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            with slots.hold():
                with pytest.raises(grpc.RpcError) as refused:
                    stub.Export(make_request(simple_trace()), timeout=10)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert store.span_count() == 0
            stub.Export(make_request(simple_trace()), timeout=10)
            assert store.span_count() == 3
    finally:
        server.stop(grace=None).wait()
