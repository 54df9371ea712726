"""Stored spans as Jaeger query JSON (what Jaeger's ``/api/traces`` returns).

The mapping follows Jaeger's own OTLP translation: resource attributes become
process tags, span kind becomes ``span.kind``, the status becomes
``otel.status_code`` / ``otel.status_description`` and ``error: true``, the
scope becomes ``otel.scope.name`` / ``otel.scope.version``, the parent becomes a
``CHILD_OF`` reference and links become ``FOLLOWS_FROM``, events become logs.
"""

from __future__ import annotations

import base64
import json
import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from cvtrace.store import StoredSpan
from cvtrace.viewer.tracetree import tree_marks

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
        # base64, as Jaeger's own JSON has it (Go encodes a []byte so)
        value_b64 = base64.b64encode(value.bytes_value).decode("ascii")
        return {"key": key, "type": "binary", "value": value_b64}
    return {"key": key, "type": "string", "value": json.dumps(any_value_python(value))}


def _tags(attributes: Sequence[KeyValue]) -> list[dict[str, Any]]:
    return [jaeger_tag(kv.key, kv.value) for kv in attributes]


def _string(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "type": "string", "value": value}


def hex_id(raw: bytes) -> str:
    """Return an id as lowercase hex."""
    return raw.hex()


class _Processes:
    """Jaeger's ``processes``: one per distinct resource and service, numbered as met."""

    def __init__(self) -> None:
        self.processes: dict[str, dict[str, Any]] = {}
        self._ids: dict[tuple[bytes, str], str] = {}
        # the store hands out one Resource object per stored resource: serialize each once
        self._by_object: dict[tuple[int, str], tuple[str, Any]] = {}

    def pid(self, stored: StoredSpan) -> str:
        """Return the process id of a span's resource and service."""
        okey = (id(stored.resource), stored.service)
        hit = self._by_object.get(okey)
        if hit is not None:
            return str(hit[0])
        pkey = (stored.resource.SerializeToString(deterministic=True), stored.service)
        pid = self._ids.get(pkey)
        if pid is None:
            pid = f"p{len(self._ids) + 1}"
            self._ids[pkey] = pid
            self.processes[pid] = {
                "serviceName": stored.service,
                "tags": [
                    jaeger_tag(kv.key, kv.value)
                    for kv in stored.resource.attributes
                    if kv.key != "service.name"
                ],
            }
        # keep the resource alive with its id, so the id is not reused by another object
        self._by_object[okey] = (pid, stored.resource)
        return pid


def jaeger_span(stored: StoredSpan, pid: str, span_warnings: list[str]) -> dict[str, Any]:
    """Return one span in Jaeger's JSON model."""
    span = stored.span
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
    return {
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


_SPANS_PER_WRITE = 500
"""Spans turned into dicts and JSON at a time (about 300 KB of JSON)."""
_ORPHAN = "parent span not in this trace"
_SKEWED = "span is outside its parent's time (clock skew?)"


def jaeger_trace_json(pieces: Iterable[Sequence[StoredSpan]]) -> Iterator[str]:
    """Yield one trace in Jaeger's JSON model, as text, a piece of spans at a time.

    ``pieces`` is read twice (it must be re-iterable: a list, or
    :class:`cvtrace.store.TracePieces`): once for the span tree's ids and times
    (orphans and clock skew, as the waterfall marks them), once to write the
    spans. So only those columns and one piece are in memory at a time, however
    big the trace: a 200,000-span trace was 1 GB of dicts and JSON built at once.
    Spans come in stored order (Jaeger's UI and Grafana order them themselves).
    """
    span_ids: list[bytes] = []
    parent_ids: list[bytes] = []
    starts = array("Q")
    ends = array("Q")
    for piece in pieces:
        for stored in piece:
            span = stored.span
            span_ids.append(span.span_id)
            parent_ids.append(span.parent_span_id)
            starts.append(span.start_time_unix_nano)
            ends.append(span.end_time_unix_nano)
    orphans, skewed = tree_marks(span_ids, parent_ids, starts, ends)
    del parent_ids, starts, ends
    trace_hex = ""
    processes = _Processes()
    warnings: list[str] = []
    position = 0
    moved: dict[bytes, int] | None = None  # positions by id, if the trace changed in between
    separator = ""
    for piece in pieces:
        for first in range(0, len(piece), _SPANS_PER_WRITE):
            out: list[dict[str, Any]] = []
            for stored in piece[first : first + _SPANS_PER_WRITE]:
                span_id = stored.span.span_id
                if moved is None and (position >= len(span_ids) or span_ids[position] != span_id):
                    moved = {sid: i for i, sid in reversed(list(enumerate(span_ids)))}
                index = position if moved is None else moved.get(span_id, -1)
                position += 1
                if index < 0:
                    continue  # stored after the first reading: not part of this answer
                span_warnings = []
                if index in orphans:
                    span_warnings.append(_ORPHAN)
                if index in skewed:
                    span_warnings.append(_SKEWED)
                warnings.extend(f"span {hex_id(span_id)}: {w}" for w in span_warnings)
                out.append(jaeger_span(stored, processes.pid(stored), span_warnings))
            if not out:
                continue
            if not trace_hex:
                trace_hex = out[0]["traceID"]
                yield f'{{"traceID":"{trace_hex}","spans":['
            yield separator + json.dumps(out, separators=(",", ":"))[1:-1]
            separator = ","
    if not trace_hex:
        yield '{"traceID":"","spans":['
    tail = json.dumps(processes.processes, separators=(",", ":"))
    yield f'],"processes":{tail},"warnings":{json.dumps(warnings or None)}}}'
