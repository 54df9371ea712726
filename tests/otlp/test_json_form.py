"""OTLP JSON read directly in the common form gives what protobuf's parser gives."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status, TracesData

from cvtrace.otlp import json_form
from cvtrace.otlp.json_form import OtlpJsonError, message_to_otlp_dict, parse_otlp_dict


def protobuf_parser(data: dict[str, Any]) -> ExportTraceServiceRequest:
    """What parse_otlp_dict gave before it read the common form itself."""
    data = copy.deepcopy(data)
    json_form._convert_ids(data, json_form._b64_to_hex, parsing=True)
    return json_format.ParseDict(data, ExportTraceServiceRequest(), ignore_unknown_fields=True)


scalars = st.one_of(
    st.builds(lambda v: AnyValue(string_value=v), st.text(max_size=8)),
    st.builds(lambda v: AnyValue(int_value=v), st.integers(-(2**63), 2**63 - 1)),
    # NaN as JSON writes it: one NaN (payload bits do not survive "NaN")
    st.builds(lambda v: AnyValue(double_value=v), st.floats(allow_nan=False) | st.just(math.nan)),
    st.builds(lambda v: AnyValue(bool_value=v), st.booleans()),
    st.builds(lambda v: AnyValue(bytes_value=v), st.binary(max_size=6)),
    st.just(AnyValue()),
)


def _array(values: list[AnyValue]) -> AnyValue:
    value = AnyValue()
    value.array_value.SetInParent()
    value.array_value.values.extend(values)
    return value


def _kvlist(pairs: list[tuple[str, AnyValue]]) -> AnyValue:
    value = AnyValue()
    value.kvlist_value.SetInParent()
    value.kvlist_value.values.extend(KeyValue(key=k, value=v) for k, v in pairs)
    return value


any_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.builds(_array, st.lists(inner, max_size=3)),
        st.builds(_kvlist, st.lists(st.tuples(st.text(max_size=4), inner), max_size=3)),
    ),
    max_leaves=6,
)
attributes = st.lists(
    st.builds(lambda k, v: KeyValue(key=k, value=v), st.text(max_size=6), any_values), max_size=4
)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)


@st.composite
def spans(draw: st.DrawFn) -> Span:
    span = Span(
        trace_id=draw(st.binary(min_size=0, max_size=17)),
        span_id=draw(st.binary(min_size=0, max_size=9)),
        parent_span_id=draw(st.binary(max_size=8)),
        trace_state=draw(st.text(max_size=5)),
        flags=draw(u32),
        name=draw(st.text(max_size=8)),
        kind=Span.SpanKind.ValueType(draw(st.integers(0, 6))),
        start_time_unix_nano=draw(u64),
        end_time_unix_nano=draw(u64),
        dropped_attributes_count=draw(u32),
        dropped_events_count=draw(u32),
        dropped_links_count=draw(u32),
    )
    span.attributes.extend(draw(attributes))
    for _ in range(draw(st.integers(0, 2))):
        event = span.events.add(time_unix_nano=draw(u64), name=draw(st.text(max_size=5)))
        event.attributes.extend(draw(attributes))
        event.dropped_attributes_count = draw(u32)
    for _ in range(draw(st.integers(0, 2))):
        link = span.links.add(
            trace_id=draw(st.binary(max_size=16)),
            span_id=draw(st.binary(max_size=8)),
            trace_state=draw(st.text(max_size=4)),
            flags=draw(u32),
        )
        link.attributes.extend(draw(attributes))
    if draw(st.booleans()):
        span.status.code = Status.StatusCode.ValueType(draw(st.integers(0, 2)))
        span.status.message = draw(st.text(max_size=5))
    return span


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = request.resource_spans.add(schema_url=draw(st.text(max_size=4)))
        if draw(st.booleans()):
            rs.resource.attributes.extend(draw(attributes))
            rs.resource.dropped_attributes_count = draw(u32)
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add(schema_url=draw(st.text(max_size=4)))
            if draw(st.booleans()):
                ss.scope.name = draw(st.text(max_size=5))
                ss.scope.version = draw(st.text(max_size=3))
                ss.scope.attributes.extend(draw(attributes))
            ss.spans.extend(draw(st.lists(spans(), max_size=3)))
    return request


def _ints_as_numbers(data: Any) -> Any:
    """The same JSON with 64-bit integers as numbers (the spec allows both)."""
    if isinstance(data, dict):
        return {
            k: int(v)
            if isinstance(v, str) and k.endswith(("UnixNano", "intValue"))
            else _ints_as_numbers(v)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_ints_as_numbers(v) for v in data]
    return data


@settings(max_examples=300, deadline=None)
@given(requests(), st.booleans())
def test_same_request_as_protobufs_parser(
    request: ExportTraceServiceRequest, numbers: bool
) -> None:
    data = json.loads(json.dumps(message_to_otlp_dict(request)))
    if numbers:
        data = _ints_as_numbers(data)
    expected = protobuf_parser(data)
    got = parse_otlp_dict(copy.deepcopy(data), ExportTraceServiceRequest())
    # compared as bytes: a NaN attribute is not equal to itself
    assert got.SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True
    )
    assert got.SerializeToString(deterministic=True) == request.SerializeToString(
        deterministic=True
    )


def test_sdk_form_never_reaches_protobufs_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """What SDKs and the collector write is read directly (ParseDict made to fail)."""
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "s"}}],
                    "droppedAttributesCount": 0,
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "lib", "version": "1"},
                        "spans": [
                            {
                                "traceId": "5f0c0a0e0b0d0c0a5f0c0a0e0b0d0c0a",
                                "spanId": "5f0c0a0e0b0d0c0a",
                                "name": "GET /",
                                "kind": 2,
                                "startTimeUnixNano": "1764201600000000000",
                                "endTimeUnixNano": 1764201600001000000,
                                "attributes": [
                                    {"key": "n", "value": {"intValue": "3"}},
                                    {"key": "f", "value": {"doubleValue": 0.5}},
                                    {"key": "a", "value": {"arrayValue": {"values": []}}},
                                ],
                                "status": {"code": 2, "message": "boom"},
                                "events": [{"timeUnixNano": "5", "name": "e"}],
                                "links": [],
                            }
                        ],
                    }
                ],
            }
        ]
    }

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("ParseDict was called")

    expected = protobuf_parser(body)
    monkeypatch.setattr(json_format, "ParseDict", refuse)
    assert parse_otlp_dict(copy.deepcopy(body), ExportTraceServiceRequest()) == expected
    assert parse_otlp_dict(copy.deepcopy(body), TracesData()).resource_spans == (
        expected.resource_spans
    )


UNUSUAL = [
    {"resource_spans": [{"scope_spans": [{"spans": [{"name": "snake"}]}]}]},
    {"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "SPAN_KIND_SERVER"}]}]}]},
    {"resourceSpans": [{"scopeSpans": [{"spans": [{"status": {"code": "STATUS_CODE_ERROR"}}]}]}]},
    {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "b", "value": {"bytesValue": "AP8="}},
                        {"key": "x", "value": {"doubleValue": "NaN"}},
                    ]
                },
                "futureField": 1,
            }
        ]
    },
]


@pytest.mark.parametrize("body", UNUSUAL)
def test_other_spellings_are_left_to_protobufs_parser(body: dict[str, Any]) -> None:
    ours = parse_otlp_dict(copy.deepcopy(body), ExportTraceServiceRequest())
    # The bytes, not message equality: protobuf 4 (opentelemetry-proto 1.27's, the lowest
    # release `make sdk-range` runs) finds a NaN double unequal to itself.
    assert ours.SerializeToString(deterministic=True) == protobuf_parser(body).SerializeToString(
        deterministic=True
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            {"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "zz"}]}]}]},
            r"spans\[0\]\.spanId: 'zz' is not hex",
        ),
        (
            {"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]},
            "not OTLP JSON",
        ),
        ({"resourceSpans": {"a": 1}}, "not OTLP JSON"),
        (
            {"resourceSpans": [{"scopeSpans": [{"spans": [{"parentSpanId": None}]}]}]},
            "parentSpanId: expected a hex string, got NoneType",
        ),
    ],
)
def test_errors_are_protobufs_parsers(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(OtlpJsonError, match=reason):
        parse_otlp_dict(body, ExportTraceServiceRequest())
