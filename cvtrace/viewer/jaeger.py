"""Stored spans as Jaeger query JSON (what Jaeger's ``/api/traces`` returns).

The mapping follows Jaeger's own OTLP translation: resource attributes become
process tags, span kind becomes ``span.kind``, the status becomes
``otel.status_code`` / ``otel.status_description`` and ``error: true``, the
scope becomes ``otel.scope.name`` / ``otel.scope.version``, the parent becomes a
``CHILD_OF`` reference and links become ``FOLLOWS_FROM``, events become logs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from cvtrace.store import StoredSpan
from cvtrace.viewer.tracetree import tree_rows

_KINDS = {
    Span.SPAN_KIND_INTERNAL: "internal",
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
}


def any_value_python(value: AnyValue) -> Any:
    """Return an AnyValue as a plain Python value (lists and dicts for arrays, maps)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value_python(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value_python(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    if which == "double_value":
        return finite_or_text(value.double_value)
    return getattr(value, which)


def finite_or_text(number: float) -> float | str:
    """A double as JSON can carry it: NaN and infinities as protobuf's JSON spells them."""
    if math.isfinite(number):
        return number
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def jaeger_tag(key: str, value: AnyValue) -> dict[str, Any]:
    """Return one attribute as a Jaeger tag ``{key, type, value}``."""
    which = value.WhichOneof("value")
    if which == "bool_value":
        return {"key": key, "type": "bool", "value": value.bool_value}
    if which == "int_value":
        return {"key": key, "type": "int64", "value": value.int_value}
    if which == "double_value":
        number = finite_or_text(value.double_value)
        # JSON has no NaN: a non-finite double becomes a string tag ("NaN", "Infinity").
        return {
            "key": key,
            "type": "float64" if isinstance(number, float) else "string",
            "value": number,
        }
    if which == "string_value":
        return {"key": key, "type": "string", "value": value.string_value}
    if which == "bytes_value":
        return {"key": key, "type": "binary", "value": value.bytes_value.hex()}
    return {"key": key, "type": "string", "value": json.dumps(any_value_python(value))}


def _tags(attributes: Sequence[KeyValue]) -> list[dict[str, Any]]:
    return [jaeger_tag(kv.key, kv.value) for kv in attributes]


def _string(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "type": "string", "value": value}


def hex_id(raw: bytes) -> str:
    """Return an id as lowercase hex."""
    return raw.hex()


def jaeger_trace(spans: Sequence[StoredSpan]) -> dict[str, Any]:
    """Return one trace in Jaeger's JSON model.

    Args:
        spans: The spans of one trace, as the store returns them.
    """
    processes: dict[str, dict[str, Any]] = {}
    process_ids: dict[tuple[bytes, str], str] = {}
    # the store hands out one Resource object per stored resource: serialize each once
    by_object: dict[tuple[int, str], str] = {}
    out_spans: list[dict[str, Any]] = []
    rows = {r.position: r for r in tree_rows(spans)}
    warnings: list[str] = []
    for i, stored in enumerate(spans):
        span = stored.span
        okey = (id(stored.resource), stored.service)  # spans keeps every resource alive
        pid = by_object.get(okey)
        if pid is None:
            pkey = (stored.resource.SerializeToString(deterministic=True), stored.service)
            pid = process_ids.get(pkey)
            if pid is None:
                pid = f"p{len(process_ids) + 1}"
                process_ids[pkey] = pid
                processes[pid] = {
                    "serviceName": stored.service,
                    "tags": [
                        jaeger_tag(kv.key, kv.value)
                        for kv in stored.resource.attributes
                        if kv.key != "service.name"
                    ],
                }
            by_object[okey] = pid
        trace_hex = hex_id(span.trace_id)
        references: list[dict[str, str]] = []
        if span.parent_span_id and span.parent_span_id != bytes(8):
            references.append(
                {"refType": "CHILD_OF", "traceID": trace_hex, "spanID": hex_id(span.parent_span_id)}
            )
        for link in span.links:
            references.append(
                {
                    "refType": "FOLLOWS_FROM",
                    "traceID": hex_id(link.trace_id),
                    "spanID": hex_id(link.span_id),
                }
            )
        tags = _tags(span.attributes)
        if span.kind in _KINDS:
            tags.append(_string("span.kind", _KINDS[span.kind]))
        if span.status.code == Status.STATUS_CODE_OK:
            tags.append(_string("otel.status_code", "OK"))
        elif span.status.code == Status.STATUS_CODE_ERROR:
            tags.append(_string("otel.status_code", "ERROR"))
            tags.append({"key": "error", "type": "bool", "value": True})
            if span.status.message:
                tags.append(_string("otel.status_description", span.status.message))
        if stored.scope.name:
            tags.append(_string("otel.scope.name", stored.scope.name))
        if stored.scope.version:
            tags.append(_string("otel.scope.version", stored.scope.version))
        if span.trace_state:
            tags.append(_string("w3c.tracestate", span.trace_state))
        logs = [
            {
                "timestamp": event.time_unix_nano // 1000,
                "fields": [_string("event", event.name), *_tags(event.attributes)],
            }
            for event in span.events
        ]
        span_warnings: list[str] = []
        row = rows.get(i)
        if row is not None and row.orphan:
            span_warnings.append("parent span not in this trace")
        if row is not None and row.skewed:
            span_warnings.append("span is outside its parent's time (clock skew?)")
        warnings.extend(f"span {hex_id(span.span_id)}: {w}" for w in span_warnings)
        out_spans.append(
            {
                "traceID": trace_hex,
                "spanID": hex_id(span.span_id),
                "operationName": span.name,
                "references": references,
                "flags": span.flags & 0xFF,
                "startTime": span.start_time_unix_nano // 1000,
                "duration": max(0, span.end_time_unix_nano - span.start_time_unix_nano) // 1000,
                "tags": tags,
                "logs": logs,
                "processID": pid,
                "warnings": span_warnings or None,
            }
        )
    trace_id = hex_id(spans[0].span.trace_id) if spans else ""
    return {
        "traceID": trace_id,
        "spans": out_spans,
        "processes": processes,
        "warnings": warnings or None,
    }
