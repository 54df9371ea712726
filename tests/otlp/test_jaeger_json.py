"""Jaeger query JSON read into OTLP: the model Jaeger's own query service writes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from cvtrace.otlp.jaeger_json import (
    JaegerJsonError,
    is_jaeger_json,
    jaeger_traces,
    trace_to_request,
)

TRACE = "00000000000000004bf92f3577b34da6"


def jaeger_trace() -> dict[str, Any]:
    """A trace as Jaeger's query service writes it (Go's encoding of its JSON model):
    a 64-bit trace id, an int64 past 2**53 as text (Jaeger UI's model does that),
    binary in base64, and an OpenTracing client's FOLLOWS_FROM and second CHILD_OF."""
    return {
        "traceID": "4bf92f3577b34da6",
        "spans": [
            {
                "traceID": "4bf92f3577b34da6",
                "spanID": "a2fb4a1d1a96d312",
                "operationName": "HTTP GET /orders",
                "references": [],
                "flags": 1,
                "startTime": 1700000000000001,
                "duration": 2500,
                "tags": [
                    {"key": "span.kind", "type": "string", "value": "server"},
                    {"key": "http.status_code", "type": "int64", "value": 500},
                    {"key": "big", "type": "int64", "value": "9007199254740993"},
                    {"key": "ratio", "type": "float64", "value": 0.25},
                    {"key": "cached", "type": "bool", "value": False},
                    {"key": "digest", "type": "binary", "value": "AP9oaQ=="},
                    {"key": "error", "type": "bool", "value": True},
                    {"key": "otel.status_description", "type": "string", "value": "boom"},
                    {"key": "otel.library.name", "type": "string", "value": "old-lib"},
                    {"key": "otel.library.version", "type": "string", "value": "0.9"},
                ],
                "logs": [
                    {
                        "timestamp": 1700000000000500,
                        "fields": [
                            {"key": "event", "type": "string", "value": "exception"},
                            {"key": "exception.type", "type": "string", "value": "ValueError"},
                        ],
                    },
                    {"timestamp": 1700000000000600, "fields": [{"key": "n", "value": 3}]},
                ],
                "processID": "p1",
                "warnings": ["clock skew adjustment disabled", "parent span not in this trace"],
            },
            {
                "traceID": "4bf92f3577b34da6",
                "spanID": "00000000000000b1",
                "operationName": "queue work",
                "references": [
                    {"refType": "FOLLOWS_FROM", "traceID": "4bf92f3577b34da6", "spanID": "0c"},
                    {
                        "refType": "CHILD_OF",
                        "traceID": "4bf92f3577b34da6",
                        "spanID": "a2fb4a1d1a96d312",
                    },
                    {"refType": "CHILD_OF", "traceID": "4bf92f3577b34da6", "spanID": "0d"},
                ],
                "startTime": 1700000000001000,
                "duration": 10,
                "tags": [
                    {"key": "span.kind", "type": "string", "value": "worker"},
                    {"key": "otel.status_code", "type": "string", "value": "OK"},
                    {"key": "w3c.tracestate", "type": "string", "value": "congo=t61rcWkgMzE"},
                ],
                "logs": [],
                "processID": "p2",
                "warnings": None,
            },
        ],
        "processes": {
            "p1": {
                "serviceName": "frontend",
                "tags": [
                    {"key": "hostname", "type": "string", "value": "box-1"},
                    {"key": "client-uuid", "type": "string", "value": "6f1d"},
                ],
            },
            "p2": {"serviceName": "worker", "tags": []},
        },
        "warnings": None,
    }


def _attrs(kvs: Any) -> dict[str, object]:
    out: dict[str, object] = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        value = getattr(kv.value, which)
        if which == "array_value":
            value = [v.string_value for v in value.values]
        out[kv.key] = value
    return out


def test_jaeger_query_model_becomes_otlp() -> None:
    request = trace_to_request(jaeger_trace())
    front, worker = request.resource_spans
    assert _attrs(front.resource.attributes) == {
        "service.name": "frontend",
        "hostname": "box-1",
        "client-uuid": "6f1d",
    }
    assert _attrs(worker.resource.attributes) == {"service.name": "worker"}
    (scope,) = front.scope_spans
    assert (scope.scope.name, scope.scope.version) == ("old-lib", "0.9")
    (root,) = scope.spans
    assert root.trace_id.hex() == TRACE  # a 64-bit Jaeger id, padded
    assert root.span_id.hex() == "a2fb4a1d1a96d312"
    assert root.parent_span_id == b""
    assert root.kind == Span.SPAN_KIND_SERVER
    assert (root.start_time_unix_nano, root.end_time_unix_nano) == (
        1_700_000_000_000_001_000,
        1_700_000_000_002_501_000,
    )
    assert root.flags == 1
    assert root.status.code == Status.STATUS_CODE_ERROR
    assert root.status.message == "boom"
    assert _attrs(root.attributes) == {
        "http.status_code": 500,
        "big": 9007199254740993,
        "ratio": 0.25,
        "cached": False,
        "digest": b"\x00\xffhi",
        # Jaeger's own warning is kept; the viewer's derived one is computed again
        "jaeger.warnings": ["clock skew adjustment disabled"],
    }
    exception, unnamed = root.events
    assert exception.name == "exception"
    assert exception.time_unix_nano == 1_700_000_000_000_500_000
    assert _attrs(exception.attributes) == {"exception.type": "ValueError"}
    assert (unnamed.name, _attrs(unnamed.attributes)) == ("", {"n": 3})

    (child,) = worker.scope_spans[0].spans
    assert worker.scope_spans[0].scope.name == ""
    assert child.parent_span_id.hex() == "a2fb4a1d1a96d312"  # CHILD_OF, not FOLLOWS_FROM
    assert [(link.span_id.hex(), _attrs(link.attributes)) for link in child.links] == [
        ("000000000000000c", {}),
        ("000000000000000d", {"opentracing.ref_type": "child_of"}),
    ]
    assert child.kind == Span.SPAN_KIND_UNSPECIFIED
    assert _attrs(child.attributes) == {"span.kind": "worker"}  # unknown: kept
    assert child.status.code == Status.STATUS_CODE_OK
    assert child.trace_state == "congo=t61rcWkgMzE"


def test_embedded_processes_and_envelope() -> None:
    trace = jaeger_trace()
    processes = trace.pop("processes")
    for span in trace["spans"]:
        span["process"] = processes[span.pop("processID")]
    envelope = {"data": [trace, trace], "total": 0, "limit": 0, "offset": 0, "errors": None}
    assert is_jaeger_json(envelope)
    assert is_jaeger_json(trace)
    assert not is_jaeger_json({"resourceSpans": []})
    traces = list(jaeger_traces(envelope))
    assert [where for where, _ in traces] == ["data[0]", "data[1]"]
    request = trace_to_request(traces[0][1])
    assert [rs.resource.attributes[0].value.string_value for rs in request.resource_spans] == [
        "frontend",
        "worker",
    ]


def test_error_answer_is_reported() -> None:
    answer = {"data": None, "errors": [{"code": 404, "msg": "trace not found"}]}
    with pytest.raises(JaegerJsonError, match="trace not found"):
        list(jaeger_traces(answer))


def _broken(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    trace = copy.deepcopy(jaeger_trace())
    target: Any = trace
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return trace


_DELETE = object()

BROKEN = [
    (("spans", 0, "spanID"), "xyz", r"spans\[0\]\.spanID: 'xyz' is not hex"),
    (("spans", 0, "spanID"), "1" * 17, r"spanID: .* up to 16 digits"),
    (("spans", 0, "startTime"), "soon", r"spans\[0\]\.startTime: expected an integer, got str"),
    (("spans", 0, "startTime"), -1, r"outside the range of OTLP times"),
    (("spans", 0, "tags", 1, "value"), "many", r"tags\[1\]: an int64 tag with the value 'many'"),
    (("spans", 0, "tags", 5, "value"), "!!", r"tags\[5\]: a binary tag whose value is not base64"),
    (("spans", 0, "tags", 0, "type"), "uuid", r"tags\[0\]: unknown tag type 'uuid'"),
    (("spans", 0, "tags", 0, "key"), 7, r"tags\[0\]: key: expected a string"),
    (("spans", 0, "tags", 4, "value"), "maybe", r"a bool tag with the value 'maybe'"),
    (("spans", 0, "processID"), "p9", r"processID: 'p9' is not one of the trace's processes"),
    (("spans", 1, "references", 0, "refType"), "PARENT", r"'PARENT' is neither CHILD_OF"),
    (("spans", 0, "logs", 0, "timestamp"), None, r"logs\[0\]\.timestamp: expected an integer"),
    (("spans", 0, "logs"), {}, r"spans\[0\]\.logs: expected a list, got dict"),
    (("processes", "p1", "serviceName"), 3, r"processes\.p1\.serviceName: expected a string"),
    (("spans",), [7], r"spans\[0\]: expected a span object, got int"),
]


@pytest.mark.parametrize(("path", "value", "reason"), BROKEN)
def test_broken_traces_are_refused_with_where_and_why(
    path: tuple[Any, ...], value: Any, reason: str
) -> None:
    with pytest.raises(JaegerJsonError, match=reason):
        trace_to_request(_broken(path, value), "data[0]")


def test_a_trace_without_ids_anywhere_is_refused() -> None:
    trace = _broken(("traceID",), _DELETE)
    del trace["spans"][0]["traceID"]
    with pytest.raises(JaegerJsonError, match=r"spans\[0\]\.traceID: missing"):
        trace_to_request(trace)
