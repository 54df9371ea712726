"""Jaeger JSON written as text (cvtrace/viewer/jaeger.py): the bytes ``json.dumps`` gives.

The span writer builds its text field by field; these tests hold it to the JSON the
model (the dicts of :func:`jaeger_tag`, Jaeger's key order) gives through
``json.dumps(..., separators=(",", ":"))``, byte for byte, odd values included.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from cvtrace.store import StoredSpan
from cvtrace.viewer.jaeger import (
    _tag_text,
    jaeger_span_json,
    jaeger_tag,
    jaeger_trace_json,
)

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SPAN_KEYS = [
    "traceID",
    "spanID",
    "operationName",
    "references",
    "startTime",
    "duration",
    "tags",
    "logs",
    "processID",
    "warnings",
]
"""Jaeger's order of a span's fields (``flags`` after ``references`` when set)."""


def _model(value: Any) -> str:
    """The model's JSON, as the writer gave it when it built dicts: compact, ASCII."""
    return json.dumps(value, separators=(",", ":"))


def _array(*values: AnyValue) -> AnyValue:
    return AnyValue(array_value=ArrayValue(values=list(values)))


def _kvlist(**values: AnyValue) -> AnyValue:
    return AnyValue(
        kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in values.items()])
    )


ODD_VALUES: dict[str, AnyValue] = {
    "nan": AnyValue(double_value=math.nan),
    "inf": AnyValue(double_value=math.inf),
    "-inf": AnyValue(double_value=-math.inf),
    "-0.0": AnyValue(double_value=-0.0),
    "tiny": AnyValue(double_value=1e-7),
    "huge double": AnyValue(double_value=1e21),
    "0.1": AnyValue(double_value=0.1),
    "max double": AnyValue(double_value=1.7976931348623157e308),
    "2**53-1": AnyValue(int_value=2**53 - 1),
    "2**53": AnyValue(int_value=2**53),
    "-(2**53)+1": AnyValue(int_value=-(2**53) + 1),
    "-(2**53)": AnyValue(int_value=-(2**53)),
    "int64 max": AnyValue(int_value=2**63 - 1),
    "int64 min": AnyValue(int_value=-(2**63)),
    "zero": AnyValue(int_value=0),
    "true": AnyValue(bool_value=True),
    "false": AnyValue(bool_value=False),
    "bytes": AnyValue(bytes_value=b"\x00\xff\xfe not UTF-8 \x80"),
    "empty bytes": AnyValue(bytes_value=b""),
    "empty value": AnyValue(),
    "empty string": AnyValue(string_value=""),
    "non-ASCII": AnyValue(string_value="café ☕ 𝄞 \u2028 \u2029"),
    "escapes": AnyValue(string_value='"quoted" back\\slash \n\t\r\x00\x1f </script> & <>'),
    "array": _array(
        AnyValue(string_value="a<b"),
        AnyValue(int_value=2**60),
        AnyValue(double_value=math.nan),
        AnyValue(double_value=1.0),
        AnyValue(bytes_value=b"\xff"),
        AnyValue(),
    ),
    "kvlist": _kvlist(
        z=AnyValue(bool_value=True),
        a=_array(AnyValue(double_value=1e-7)),
        é=_kvlist(inner=AnyValue(string_value="\u2028")),
    ),
    "empty array": _array(),
    'key with "quotes" and é': AnyValue(string_value="v"),
}


@pytest.mark.parametrize("key", list(ODD_VALUES))
def test_tag_text_is_the_models_json(key: str) -> None:
    """Each kind of value, odd ones included, writes the bytes its tag dict dumps to."""
    value = ODD_VALUES[key]
    text = _tag_text(key, value)
    assert text == _model(jaeger_tag(key, value))
    json.loads(text, parse_constant=_refuse)  # valid JSON, no NaN or Infinity literal


def _refuse(constant: str) -> object:
    msg = f"invalid JSON constant {constant}"
    raise ValueError(msg)


def _stored(span: Span, scope: InstrumentationScope | None = None) -> StoredSpan:
    resource = Resource(
        attributes=[KeyValue(key="service.name", value=AnyValue(string_value="shop"))]
    )
    return StoredSpan(span, resource, "", scope or InstrumentationScope(), "", "shop")


def _span(**fields: Any) -> Span:
    span = Span(
        trace_id=TRACE_ID,
        span_id=bytes.fromhex("00f067aa0ba902b7"),
        name="GET /cart",
        start_time_unix_nano=1_764_201_600_123_456_789,
        end_time_unix_nano=1_764_201_600_173_456_000,
    )
    for name, value in fields.items():
        if name == "attributes":
            span.attributes.extend(value)
        else:
            setattr(span, name, value)
    return span


def _canonical(text: str) -> dict[str, Any]:
    """Parse ``text`` and check it is exactly what ``json.dumps`` writes for its value."""
    value: dict[str, Any] = json.loads(text, parse_constant=_refuse)
    assert _model(value) == text
    return value


class TestSpanJson:
    def test_every_odd_value_in_one_span(self) -> None:
        """The span's text is the model's JSON: order, escapes and numbers as dumped."""
        attributes = [KeyValue(key=k, value=v) for k, v in ODD_VALUES.items()]
        span = _span(attributes=attributes, kind=Span.SPAN_KIND_CLIENT)
        text = jaeger_span_json(_stored(span), "p1", [])
        model = _canonical(text)
        assert list(model) == SPAN_KEYS
        tags = sorted(
            [jaeger_tag(k, v) for k, v in ODD_VALUES.items()]
            + [{"key": "span.kind", "type": "string", "value": "client"}],
            key=lambda tag: str(tag["key"]),
        )
        assert model["tags"] == json.loads(_model(tags))
        assert model["startTime"] == 1_764_201_600_123_456  # microseconds, rounded down
        assert model["duration"] == 49_999  # 49,999,211 ns
        assert model["references"] == []
        assert model["warnings"] is None

    def test_status_scope_state_flags_and_warnings(self) -> None:
        span = _span(
            parent_span_id=bytes.fromhex("b7ad6b7169203331"),
            flags=0x301,  # W3C flags in the low byte; the rest is OTLP's own
            trace_state="vendor=é",
        )
        span.status.code = Status.STATUS_CODE_ERROR
        span.status.message = 'boom "quoted"'
        scope = InstrumentationScope(name="sqlalchemy", version="2.0")
        warnings = ["parent span not in this trace"]
        model = _canonical(jaeger_span_json(_stored(span, scope), "p2", warnings))
        assert list(model) == [*SPAN_KEYS[:4], "flags", *SPAN_KEYS[4:]]
        assert model["flags"] == 1
        assert model["references"] == [
            {"refType": "CHILD_OF", "traceID": TRACE_ID.hex(), "spanID": "b7ad6b7169203331"}
        ]
        assert [(t["key"], t["value"]) for t in model["tags"]] == [
            ("error", True),
            ("otel.scope.name", "sqlalchemy"),
            ("otel.scope.version", "2.0"),
            ("otel.status_code", "ERROR"),
            ("otel.status_description", 'boom "quoted"'),
            ("w3c.tracestate", "vendor=é"),
        ]
        assert model["processID"] == "p2"
        assert model["warnings"] == warnings

    def test_repeated_keys_keep_their_order(self) -> None:
        """Sorting by key is stable, as with the model's dicts: equal keys stay in order."""
        attributes = [
            KeyValue(key="b", value=AnyValue(string_value="second")),
            KeyValue(key="a", value=AnyValue(string_value="z")),
            KeyValue(key="b", value=AnyValue(string_value="first")),
            KeyValue(key="a", value=AnyValue(int_value=1)),
        ]
        model = _canonical(jaeger_span_json(_stored(_span(attributes=attributes)), "p1", []))
        assert [t["value"] for t in model["tags"]] == ["z", 1, "second", "first"]

    def test_links_events_and_an_unset_parent(self) -> None:
        """Links (references) and events (logs) take the model's path: the same bytes."""
        span = _span(parent_span_id=bytes(8))  # all zero: no parent
        link = span.links.add(trace_id=bytes(range(16)), span_id=bytes(range(8)))
        link.attributes.add(key="opentracing.ref_type").value.string_value = "child_of"
        event = span.events.add(time_unix_nano=1_764_201_600_124_000_000, name="cache miss")
        event.attributes.add(key="key").value.string_value = "cart:é"
        event.attributes.add(key="bad").value.double_value = math.inf
        model = _canonical(jaeger_span_json(_stored(span), "p1", []))
        assert model["references"] == [
            {"refType": "CHILD_OF", "traceID": bytes(range(16)).hex(), "spanID": "0001020304050607"}
        ]
        assert model["logs"] == [
            {
                "timestamp": 1_764_201_600_124_000,
                "fields": [
                    {"key": "event", "type": "string", "value": "cache miss"},
                    {"key": "bad", "type": "string", "value": "Infinity"},
                    {"key": "key", "type": "string", "value": "cart:é"},
                ],
            }
        ]


def test_trace_json_is_canonical_and_names_its_trace() -> None:
    """The trace's text (spans, processes, warnings) is one valid, canonical JSON value."""
    root = _span(attributes=[KeyValue(key="é", value=ODD_VALUES["non-ASCII"])])
    orphan = _span(span_id=b"\x02" * 8, parent_span_id=b"\x09" * 8)
    text = "".join(jaeger_trace_json([[_stored(root), _stored(orphan)]]))
    trace = _canonical(text)
    assert trace["traceID"] == TRACE_ID.hex()
    assert [s["warnings"] for s in trace["spans"]] == [None, ["parent span not in this trace"]]
    assert trace["warnings"] == ["span 0202020202020202: parent span not in this trace"]
    assert trace["processes"] == {"p1": {"serviceName": "shop", "tags": []}}


def test_trace_warnings_keep_their_spaced_separator() -> None:
    """The trace's own warnings are written as ``json.dumps`` writes them by default."""
    orphans = [_span(span_id=bytes([i]) * 8, parent_span_id=b"\x09" * 8) for i in (2, 3)]
    resource = Resource(attributes=[KeyValue(key="host", value=AnyValue(string_value="é"))])
    spans = [StoredSpan(s, resource, "", InstrumentationScope(), "", "shop") for s in orphans]
    text = "".join(jaeger_trace_json([spans]))
    assert text.endswith(
        ',"processes":{"p1":{"serviceName":"shop",'
        '"tags":[{"key":"host","type":"string","value":"\\u00e9"}]}},'
        '"warnings":["span 0202020202020202: parent span not in this trace", '
        '"span 0303030303030303: parent span not in this trace"]}'
    )


def test_empty_trace() -> None:
    assert _canonical("".join(jaeger_trace_json([[]]))) == {
        "traceID": "",
        "spans": [],
        "processes": {},
        "warnings": None,
    }
