"""cvtrace's direct OTLP encoding equals the SDK's, message for message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from cvtrace.otlp.encoding import SpanEncoder


def _spans() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource({"service.name": "enc", "n": 3}, "https://schema/r"),
        span_limits=SpanLimits(max_span_attributes=20, max_events=2, max_links=1),
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer(
        "scope.a", "1.2", schema_url="https://schema/s", attributes={"x": 1}
    )
    other = provider.get_tracer("scope.b")
    remote_parent = SpanContext(
        0xABC,
        0xDEF,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("k", "v")]),
    )
    with tracer.start_as_current_span(
        "root ü",
        kind=SpanKind.SERVER,
        context=set_span_in_context(NonRecordingSpan(remote_parent)),
        attributes={
            "s": "text é",
            "empty": "",
            "b": True,
            "f": False,
            "i": -42,
            "zero": 0,
            "big": 2**62,
            "d": 3.25,
            "ss": ["a", "b"],
            "is": [1, -2],
            "bs": [True, False],
            "ds": [0.5],
            "none_yet": (),
        },
        links=[Link(SpanContext(7, 8, is_remote=True), {"link.attr": "y"})],
    ) as root:
        root.add_event("e1", {"ea": 1}, timestamp=123)
        root.add_event("e2")
        root.add_event("e3 (dropped: over the limit)")
        root.set_status(Status(StatusCode.ERROR, "it broke"))
        with other.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            for index in range(25):  # over the attribute limit: dropped count
                child.set_attribute(f"a{index}", index)
        other.start_span("ok-status").end()
    internal = tracer.start_span(
        "", links=[Link(SpanContext(1, 2, False)), Link(SpanContext(3, 4, False))]
    )
    internal.set_status(Status(StatusCode.OK))
    assert isinstance(internal, ReadableSpan)  # an SDK span, which has a start time
    internal.end(end_time=internal.start_time)
    return list(exporter.get_finished_spans())


def test_equals_the_sdk_encoding() -> None:
    spans = _spans()
    ours = ExportTraceServiceRequest.FromString(SpanEncoder().encode(spans))
    sdks = encode_spans(spans)
    (resource_spans,) = sdks.resource_spans
    if not any(scope_spans.scope.attributes for scope_spans in resource_spans.scope_spans):
        # SDK releases before 1.31 leave out a scope's attributes and schema URL (scope.a
        # has both): compare the rest; test_scope_attributes_and_schema_url checks them.
        for scope_spans in ours.resource_spans[0].scope_spans:
            scope_spans.scope.ClearField("attributes")
            scope_spans.ClearField("schema_url")
    assert ours == sdks
    assert len(ours.resource_spans[0].scope_spans) == 2


def test_scope_attributes_and_schema_url() -> None:
    ours = ExportTraceServiceRequest.FromString(SpanEncoder().encode(_spans()))
    scopes = {
        scope_spans.scope.name: (
            {kv.key: kv.value.int_value for kv in scope_spans.scope.attributes},
            scope_spans.schema_url,
        )
        for scope_spans in ours.resource_spans[0].scope_spans
    }
    assert scopes == {"scope.a": ({"x": 1}, "https://schema/s"), "scope.b": ({}, "")}


def test_cached_attributes_encode_the_same_the_second_time() -> None:
    encoder = SpanEncoder()
    spans = _spans()
    first = encoder.encode(spans)
    assert encoder.encode(spans) == first


def test_empty_batch() -> None:
    assert SpanEncoder().encode([]) == b""
    assert ExportTraceServiceRequest.FromString(b"") == encode_spans([])


def test_unencodable_value_is_a_type_error() -> None:
    from cvtrace.otlp.encoding import _any_value

    with pytest.raises(TypeError, match="cannot encode a object attribute value"):
        _any_value(object())


def test_many_resources_and_scopes_in_one_batch() -> None:
    """More resources than the encoder remembers: each span keeps its own resource."""
    spans: list[ReadableSpan] = []
    for i in range(100):
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": f"svc{i}"}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        with provider.get_tracer(f"scope{i % 3}").start_as_current_span(f"op{i}"):
            pass
        provider.shutdown()
        spans.extend(memory.get_finished_spans())
    encoder = SpanEncoder()
    for _ in range(2):  # the second time with the caches full and cleared on the way
        decoded = ExportTraceServiceRequest.FromString(encoder.encode(spans))
        assert decoded == encode_spans(spans)


FORKING_SCRIPT = """
import os
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from cvtrace.otlp.encoding import SpanEncoder

memory = InMemorySpanExporter()
provider = TracerProvider(resource=Resource({"service.name": "s", "process.pid": os.getpid()}))
provider.add_span_processor(SimpleSpanProcessor(memory))
provider.get_tracer("t").start_span("made before the fork").end()
spans = memory.get_finished_spans()
encoder = SpanEncoder()
in_parent = encoder.encode(spans)  # the encoder remembers the resource's encoding
read_end, write_end = os.pipe()
child = os.fork()
if child == 0:
    (grouped,) = encoder.encode_grouped(spans)
    reported = grouped.resource.attributes["process.pid"]
    os.write(write_end, f"{reported} {encoder.encode(spans).hex()}".encode())
    os._exit(0)
os.waitpid(child, 0)
print(os.getpid(), child, in_parent.hex(), os.read(read_end, 1 << 20).decode())
"""


def test_process_pid_is_the_encoding_processs_own() -> None:
    """A resource made before a fork names the child in the child's exports."""
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", FORKING_SCRIPT],
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    parent, child, in_parent, reported, in_child = result.stdout.split()

    def pid(encoded: str) -> int:
        request = ExportTraceServiceRequest.FromString(bytes.fromhex(encoded))
        (resource_spans,) = request.resource_spans
        (pid,) = [
            kv.value.int_value
            for kv in resource_spans.resource.attributes
            if kv.key == "process.pid"
        ]
        return pid

    assert (pid(in_parent), pid(in_child), int(reported)) == (int(parent), int(child), int(child))
