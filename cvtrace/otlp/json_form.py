"""OTLP JSON: the JSON encoding of OTLP trace messages, both ways.

OTLP JSON is protobuf's canonical JSON mapping with the differences that
opentelemetry-proto's ``docs/specification.md`` lists: trace and span ids are
hex strings (not base64), field names are lowerCamelCase (the original names are
accepted too), enums are integers (names are accepted), 64-bit integers may be
strings or numbers, and unknown fields are ignored.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

__all__ = [
    "OtlpJsonError",
    "message_to_otlp_dict",
    "otlp_json_bytes",
    "parse_otlp_dict",
    "parse_otlp_json",
]

M = TypeVar("M", bound=Message)

_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


class OtlpJsonError(ValueError):
    """A body is not valid OTLP JSON; the message says where."""


def _hex_to_b64(value: object, where: str) -> object:
    if not isinstance(value, str):
        msg = f"{where}: expected a hex string, got {type(value).__name__}"
        raise OtlpJsonError(msg)
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        msg = f"{where}: {value[:64]!r} is not hex"
        raise OtlpJsonError(msg) from None
    return base64.b64encode(raw).decode("ascii")


def _b64_to_hex(value: object) -> object:
    if not isinstance(value, str):
        return value
    return base64.b64decode(value).hex()


def _list(obj: dict[str, Any], camel: str, snake: str) -> list[Any]:
    value = obj.get(camel, obj.get(snake))
    return value if isinstance(value, list) else []


def _convert_ids(data: object, convert: Callable[[object], object], *, parsing: bool) -> None:
    """Rewrite the id fields of every span and link in place."""
    if not isinstance(data, dict):
        return
    for r_i, rs in enumerate(_list(data, "resourceSpans", "resource_spans")):
        if not isinstance(rs, dict):
            continue
        for s_i, ss in enumerate(_list(rs, "scopeSpans", "scope_spans")):
            if not isinstance(ss, dict):
                continue
            for p_i, span in enumerate(_list(ss, "spans", "spans")):
                if not isinstance(span, dict):
                    continue
                where = f"resourceSpans[{r_i}].scopeSpans[{s_i}].spans[{p_i}]"
                objects = [(where, span)] + [
                    (f"{where}.links[{l_i}]", link)
                    for l_i, link in enumerate(_list(span, "links", "links"))
                    if isinstance(link, dict)
                ]
                for path, obj in objects:
                    for key in _ID_KEYS:
                        if key in obj:
                            if parsing:
                                obj[key] = _hex_to_b64(obj[key], f"{path}.{key}")
                            else:
                                obj[key] = convert(obj[key])


def parse_otlp_json(body: bytes | str, message: M) -> M:
    """Parse an OTLP JSON body into ``message`` (e.g. an ExportTraceServiceRequest).

    Raises:
        OtlpJsonError: The body is not JSON, or not OTLP JSON of that message.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        msg = f"body is not JSON: {exc}"
        raise OtlpJsonError(msg) from None
    if not isinstance(data, dict):
        msg = "body is not a JSON object"
        raise OtlpJsonError(msg)
    return parse_otlp_dict(data, message)


def parse_otlp_dict(data: dict[str, Any], message: M) -> M:
    """Parse OTLP JSON already read by ``json.loads`` into ``message``.

    ``data`` may be changed in place (its ids rewritten for protobuf's parser, when
    that reads it).

    Raises:
        OtlpJsonError: ``data`` is not OTLP JSON of that message.
    """
    if isinstance(message, (ExportTraceServiceRequest, TracesData)):
        try:
            _read_traces(data, message)
        except _Unusual:
            message.Clear()  # protobuf's parser decides: it parses it, or says why not
        else:
            return message
    _convert_ids(data, _b64_to_hex, parsing=True)
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        msg = f"not OTLP JSON: {exc}"
        raise OtlpJsonError(msg) from None
    return message


def message_to_otlp_dict(message: Message) -> dict[str, Any]:
    """Return a message as an OTLP JSON object (hex ids, integer enums)."""
    data: dict[str, Any] = json_format.MessageToDict(
        message, use_integers_for_enums=True, preserving_proto_field_name=False
    )
    _convert_ids(data, _b64_to_hex, parsing=False)
    return data


def otlp_json_bytes(message: Message) -> bytes:
    """Return a message as compact OTLP JSON bytes."""
    return json.dumps(message_to_otlp_dict(message), separators=(",", ":")).encode()


# -- the common case, read directly ------------------------------------------------
#
# json_format.ParseDict walks descriptors in Python for every field: ~80% of the time of
# an OTLP/JSON import or request (BENCHMARKS.md, section 8). Trace requests as SDKs and
# the collector write them (camelCase names, hex ids, numbers or decimal strings for
# integers, integer enums) are read here instead, without changing ``data``; anything
# else (another spelling, a wrong type, bad hex, an unknown field) raises _Unusual and
# ParseDict reads the request as before, so the result or the error is the same.


class _Unusual(Exception):
    """Not the common form: leave it to protobuf's parser."""


def _int(value: object) -> int:
    if type(value) is int:
        return value
    if type(value) is str and value.lstrip("-").isdigit() and value.isascii():
        return int(value)
    raise _Unusual


def _hex(value: object) -> bytes:
    if type(value) is not str:
        raise _Unusual
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise _Unusual from None


def _set_any(target: AnyValue, value: object) -> None:
    if type(value) is not dict or len(value) > 1:
        raise _Unusual
    target.SetInParent()
    for key, item in value.items():
        if key == "stringValue" and type(item) is str:
            target.string_value = item
        elif key == "intValue":
            target.int_value = _int(item)
        elif key == "boolValue" and type(item) is bool:
            target.bool_value = item
        elif key == "doubleValue" and type(item) in (int, float) and math.isfinite(item):
            target.double_value = item
        elif key == "arrayValue" and type(item) is dict and item.keys() <= {"values"}:
            values = target.array_value.values
            target.array_value.SetInParent()
            for element in _items(item.get("values")):
                _set_any(values.add(), element)
        elif key == "kvlistValue" and type(item) is dict and item.keys() <= {"values"}:
            target.kvlist_value.SetInParent()
            _set_attributes(target.kvlist_value.values, item.get("values"))
        else:  # bytes (base64), NaN as text, other spellings
            raise _Unusual


def _items(value: object) -> list[Any]:
    if value is None:
        return []
    if type(value) is not list:
        raise _Unusual
    return value


def _set_attributes(target: Any, values: object) -> None:
    for kv in _items(values):
        if type(kv) is not dict or not kv.keys() <= {"key", "value"}:
            raise _Unusual
        key = kv.get("key", "")
        if type(key) is not str:
            raise _Unusual
        item: KeyValue = target.add(key=key)
        if "value" in kv:
            _set_any(item.value, kv["value"])


_SPAN_INTS = {
    "startTimeUnixNano": "start_time_unix_nano",
    "endTimeUnixNano": "end_time_unix_nano",
    "flags": "flags",
    "kind": "kind",
    "droppedAttributesCount": "dropped_attributes_count",
    "droppedEventsCount": "dropped_events_count",
    "droppedLinksCount": "dropped_links_count",
}
_SPAN_IDS = {"traceId": "trace_id", "spanId": "span_id", "parentSpanId": "parent_span_id"}


def _read_span(span: Span, data: object) -> None:
    if type(data) is not dict:
        raise _Unusual
    for key, value in data.items():
        if key in _SPAN_IDS:
            setattr(span, _SPAN_IDS[key], _hex(value))
        elif key in _SPAN_INTS:
            setattr(span, _SPAN_INTS[key], _int(value))
        elif key == "name" or key == "traceState":
            if type(value) is not str:
                raise _Unusual
            setattr(span, "name" if key == "name" else "trace_state", value)
        elif key == "attributes":
            _set_attributes(span.attributes, value)
        elif key == "events":
            for event_data in _items(value):
                if type(event_data) is not dict:
                    raise _Unusual
                event = span.events.add()
                for ekey, evalue in event_data.items():
                    if ekey == "timeUnixNano":
                        event.time_unix_nano = _int(evalue)
                    elif ekey == "name" and type(evalue) is str:
                        event.name = evalue
                    elif ekey == "attributes":
                        _set_attributes(event.attributes, evalue)
                    elif ekey == "droppedAttributesCount":
                        event.dropped_attributes_count = _int(evalue)
                    else:
                        raise _Unusual
        elif key == "links":
            for link_data in _items(value):
                if type(link_data) is not dict:
                    raise _Unusual
                link = span.links.add()
                for lkey, lvalue in link_data.items():
                    if lkey in ("traceId", "spanId"):
                        setattr(link, _SPAN_IDS[lkey], _hex(lvalue))
                    elif lkey == "traceState" and type(lvalue) is str:
                        link.trace_state = lvalue
                    elif lkey == "attributes":
                        _set_attributes(link.attributes, lvalue)
                    elif lkey in ("droppedAttributesCount", "flags"):
                        name = "flags" if lkey == "flags" else "dropped_attributes_count"
                        setattr(link, name, _int(lvalue))
                    else:
                        raise _Unusual
        elif key == "status":
            if type(value) is not dict or not value.keys() <= {"code", "message"}:
                raise _Unusual
            span.status.SetInParent()
            if "code" in value:
                span.status.code = _int(value["code"])  # type: ignore[assignment]
            message = value.get("message", "")
            if type(message) is not str:
                raise _Unusual
            span.status.message = message
        else:
            raise _Unusual


def _read_traces(data: dict[str, Any], message: ExportTraceServiceRequest | TracesData) -> None:
    """Read ``data`` into ``message`` if it is in the common form, else raise _Unusual."""
    if not data.keys() <= {"resourceSpans"}:
        raise _Unusual
    try:
        for rs_data in _items(data.get("resourceSpans")):
            if type(rs_data) is not dict:
                raise _Unusual
            rs = message.resource_spans.add()
            for key, value in rs_data.items():
                if key == "resource":
                    if type(value) is not dict:
                        raise _Unusual
                    rs.resource.SetInParent()
                    for rkey, rvalue in value.items():
                        if rkey == "attributes":
                            _set_attributes(rs.resource.attributes, rvalue)
                        elif rkey == "droppedAttributesCount":
                            rs.resource.dropped_attributes_count = _int(rvalue)
                        else:
                            raise _Unusual
                elif key == "schemaUrl" and type(value) is str:
                    rs.schema_url = value
                elif key == "scopeSpans":
                    for ss_data in _items(value):
                        if type(ss_data) is not dict:
                            raise _Unusual
                        ss = rs.scope_spans.add()
                        for skey, svalue in ss_data.items():
                            if skey == "scope":
                                _read_scope(ss.scope, svalue)
                            elif skey == "schemaUrl" and type(svalue) is str:
                                ss.schema_url = svalue
                            elif skey == "spans":
                                for span_data in _items(svalue):
                                    _read_span(ss.spans.add(), span_data)
                            else:
                                raise _Unusual
                else:
                    raise _Unusual
    except (ValueError, TypeError, OverflowError):  # out of a field's range, say
        raise _Unusual from None


def _read_scope(scope: Any, data: object) -> None:
    if type(data) is not dict:
        raise _Unusual
    scope.SetInParent()
    for key, value in data.items():
        if key in ("name", "version") and type(value) is str:
            setattr(scope, key, value)
        elif key == "attributes":
            _set_attributes(scope.attributes, value)
        elif key == "droppedAttributesCount":
            scope.dropped_attributes_count = _int(value)
        else:
            raise _Unusual
