"""Jaeger query JSON (``{"data": [trace, ...]}``) read into OTLP requests.

The JSON that Jaeger UI downloads, Jaeger's ``/api/traces`` answers and the viewer's
own ``/api/traces/<id>`` gives. The mapping is the inverse of the viewer's export
(:mod:`cvtrace.viewer.jaeger`) and follows the collector's Jaeger translator
(``pkg/translator/jaeger``):

- a process becomes the resource: ``serviceName`` is ``service.name``, its tags the
  other attributes;
- tags keep their types (``string``, ``bool``, ``int64``, ``float64``, ``binary`` in
  base64); ``span.kind`` becomes the kind, ``otel.status_code`` /
  ``otel.status_description`` and ``error: true`` the status, ``otel.scope.name`` /
  ``otel.scope.version`` (or the older ``otel.library.*``) the scope, and
  ``w3c.tracestate`` the trace state; none of them stays an attribute;
- the first ``CHILD_OF`` reference in the same trace is the parent; every other
  reference is a link (another ``CHILD_OF`` one carries ``opentracing.ref_type:
  child_of``; ``FOLLOWS_FROM`` is what an OTLP link becomes, so it needs no mark);
- logs become events: the first ``event`` field names the event, the other fields
  are its attributes; times are microseconds;
- a span's ``warnings`` other than the ones the viewer derives itself (orphans,
  clock skew: computed again on display) are kept in a ``jaeger.warnings`` attribute.

What Jaeger JSON cannot carry is not there to read back: times finer than a
microsecond, link attributes, scope attributes, schema URLs, array and map values
(written as JSON text, read back as strings), the span flags above the W3C trace flags.

Unlike Jaeger's newer query service, a ``FOLLOWS_FROM`` reference alone does not make
a parent: OTLP links are written as ``FOLLOWS_FROM``, so a linked root would come back
as a child.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

__all__ = [
    "JaegerJsonError",
    "is_jaeger_json",
    "jaeger_traces",
    "trace_to_request",
]

_KINDS = {
    "internal": Span.SPAN_KIND_INTERNAL,
    "server": Span.SPAN_KIND_SERVER,
    "client": Span.SPAN_KIND_CLIENT,
    "producer": Span.SPAN_KIND_PRODUCER,
    "consumer": Span.SPAN_KIND_CONSUMER,
}
_STATUS = {"OK": Status.STATUS_CODE_OK, "ERROR": Status.STATUS_CODE_ERROR}
DERIVED_WARNINGS = frozenset(
    {"parent span not in this trace", "span is outside its parent's time (clock skew?)"}
)
"""Warnings the viewer's Jaeger export computes from the trace (not span data)."""
_MAX_U64 = 2**64 - 1


class JaegerJsonError(ValueError):
    """A trace is not valid Jaeger JSON; the message says where."""


def is_jaeger_json(data: Mapping[str, Any]) -> bool:
    """Return whether a JSON object is Jaeger JSON: an envelope or one trace."""
    return "data" in data or ("spans" in data and ("traceID" in data or "processes" in data))


def jaeger_traces(data: Mapping[str, Any]) -> Iterator[tuple[str, object]]:
    """Yield ``(where, trace)`` for each trace of a Jaeger JSON object.

    Raises:
        JaegerJsonError: The envelope holds no list of traces (an error answer, say).
    """
    if "data" not in data:
        yield "trace", data
        return
    traces = data["data"]
    if not isinstance(traces, list):
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            texts = [str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in errors]
            msg = f"a Jaeger error answer, not traces: {'; '.join(texts)}"
        else:
            msg = f"data: expected a list of traces, got {_kind(traces)}"
        raise JaegerJsonError(msg)
    for i, trace in enumerate(traces):
        yield f"data[{i}]", trace


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _fail(where: str, what: str) -> JaegerJsonError:
    return JaegerJsonError(f"{where}: {what}")


def _hex_id(value: object, size: int, where: str) -> bytes:
    """Return a hex id of up to ``size`` bytes, left-padded (Jaeger's 64-bit trace ids)."""
    if not isinstance(value, str):
        raise _fail(where, f"expected a hex id, got {_kind(value)}")
    text = value.strip()
    if not text or len(text) > 2 * size:
        raise _fail(where, f"{value[:40]!r} is not a hex id of up to {2 * size} digits")
    try:
        return bytes.fromhex(text.rjust(2 * size, "0"))
    except ValueError:
        raise _fail(where, f"{value[:40]!r} is not hex") from None


def _integer(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"expected an integer, got {_kind(value)}")
    return value


def _micros_ns(value: object, where: str) -> int:
    """Return a time in microseconds as nanoseconds (within OTLP's fixed64)."""
    micros = _integer(value, where)
    if not 0 <= micros * 1000 <= _MAX_U64:
        raise _fail(where, f"{micros} µs is outside the range of OTLP times")
    return micros * 1000


def _float(value: object, where: str) -> float:
    if isinstance(value, bool):
        raise _fail(where, "expected a number, got bool")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)  # "NaN", "Infinity", or a number written as text
        except ValueError:
            pass
    raise _fail(where, f"expected a number, got {_kind(value)}")


def _any_value(tag: Mapping[str, Any], where: str) -> AnyValue:
    """Return a Jaeger tag's value, typed by its ``type`` (or its JSON type)."""
    value = tag.get("value")
    kind = tag.get("type")
    if kind is None:  # hand-written files: take the JSON type
        kind = {bool: "bool", int: "int64", float: "float64", str: "string"}.get(type(value))
    if isinstance(kind, str):
        kind = kind.lower()
    if kind == "string":
        if not isinstance(value, str):
            raise _fail(where, f"a string tag with a {_kind(value)} value")
        return AnyValue(string_value=value)
    if kind == "bool":
        if isinstance(value, bool):
            return AnyValue(bool_value=value)
        if value in ("true", "false"):  # Jaeger's all-strings form
            return AnyValue(bool_value=value == "true")
        raise _fail(where, f"a bool tag with the value {value!r}")
    if kind == "int64":
        if isinstance(value, str):  # beyond 2**53 Jaeger UI's model writes text
            text = value
            try:
                value = int(text)
            except ValueError:
                raise _fail(where, f"an int64 tag with the value {text[:40]!r}") from None
        number = _integer(value, where)
        if not -(2**63) <= number < 2**63:
            raise _fail(where, f"{number} does not fit in an int64")
        return AnyValue(int_value=number)
    if kind == "float64":
        return AnyValue(double_value=_float(value, where))
    if kind == "binary":
        if not isinstance(value, str):
            raise _fail(where, f"a binary tag with a {_kind(value)} value")
        try:
            raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise _fail(where, f"a binary tag whose value is not base64: {value[:40]!r}") from None
        return AnyValue(bytes_value=raw)
    raise _fail(where, f"unknown tag type {kind!r}; expected string, bool, int64, float64, binary")


def _tags(tags: object, where: str) -> list[tuple[str, AnyValue]]:
    if tags is None:
        return []
    if not isinstance(tags, list):
        raise _fail(where, f"expected a list of tags, got {_kind(tags)}")
    out = []
    for i, tag in enumerate(tags):
        here = f"{where}[{i}]"
        if not isinstance(tag, dict):
            raise _fail(here, f"expected a tag object, got {_kind(tag)}")
        key = tag.get("key")
        if not isinstance(key, str):
            raise _fail(here, f"key: expected a string, got {_kind(key)}")
        out.append((key, _any_value(tag, here)))
    return out


def _resource(process: object, where: str) -> Resource:
    if not isinstance(process, dict):
        raise _fail(where, f"expected a process object, got {_kind(process)}")
    service = process.get("serviceName", "")
    if not isinstance(service, str):
        raise _fail(f"{where}.serviceName", f"expected a string, got {_kind(service)}")
    resource = Resource()
    if service:
        resource.attributes.add(key="service.name", value=AnyValue(string_value=service))
    for key, value in _tags(process.get("tags"), f"{where}.tags"):
        if key == "service.name" and service:
            continue
        resource.attributes.append(KeyValue(key=key, value=value))
    return resource


def _take_string(attributes: dict[str, AnyValue], key: str) -> str | None:
    """Remove and return a string attribute (non-string ones stay attributes)."""
    value = attributes.get(key)
    if value is None or value.WhichOneof("value") != "string_value":
        return None
    del attributes[key]
    return value.string_value


def _span(
    raw: Mapping[str, Any], trace_id: bytes, where: str
) -> tuple[Span, tuple[str, str], str | None]:
    """Return a span, its scope (name, version) and its process id, if any."""
    span = Span(trace_id=trace_id)
    span_trace = raw.get("traceID")
    if span_trace is not None:
        span.trace_id = _hex_id(span_trace, 16, f"{where}.traceID")
    span.span_id = _hex_id(raw.get("spanID"), 8, f"{where}.spanID")
    name = raw.get("operationName", "")
    if not isinstance(name, str):
        raise _fail(f"{where}.operationName", f"expected a string, got {_kind(name)}")
    span.name = name
    start_ns = _micros_ns(raw.get("startTime"), f"{where}.startTime")
    duration_ns = _micros_ns(raw.get("duration", 0), f"{where}.duration")
    if start_ns + duration_ns > _MAX_U64:
        raise _fail(f"{where}.duration", "the span ends beyond the range of OTLP times")
    span.start_time_unix_nano = start_ns
    span.end_time_unix_nano = start_ns + duration_ns
    flags = raw.get("flags", 0)
    span.flags = _integer(flags, f"{where}.flags") & 0xFF if flags is not None else 0

    # attributes; a repeated key keeps its last value, as OTLP attributes do
    attributes: dict[str, AnyValue] = dict(_tags(raw.get("tags"), f"{where}.tags"))
    kind = attributes.get("span.kind")
    if kind is not None and kind.string_value in _KINDS:
        span.kind = _KINDS[kind.string_value]
        del attributes["span.kind"]
    error = attributes.get("error")
    code_text = _take_string(attributes, "otel.status_code")
    message = _take_string(attributes, "otel.status_description")
    if error is not None and error.WhichOneof("value") == "bool_value" and error.bool_value:
        span.status.code = Status.STATUS_CODE_ERROR
        del attributes["error"]
    elif code_text is not None and code_text.upper() in _STATUS:
        span.status.code = _STATUS[code_text.upper()]
    if message is not None and span.status.code != Status.STATUS_CODE_UNSET:
        span.status.message = message
    elif message is not None:
        attributes["otel.status_description"] = AnyValue(string_value=message)
    scope_name = _take_string(attributes, "otel.scope.name")
    scope_version = _take_string(attributes, "otel.scope.version")
    if scope_name is None:
        scope_name = _take_string(attributes, "otel.library.name")
        if scope_version is None:
            scope_version = _take_string(attributes, "otel.library.version")
    trace_state = _take_string(attributes, "w3c.tracestate")
    if trace_state is not None:
        span.trace_state = trace_state
    warnings = raw.get("warnings")
    if warnings is not None and not isinstance(warnings, list):
        raise _fail(f"{where}.warnings", f"expected a list, got {_kind(warnings)}")
    kept = [str(w) for w in warnings or () if str(w) not in DERIVED_WARNINGS]
    if kept:
        attributes["jaeger.warnings"] = AnyValue()
        attributes["jaeger.warnings"].array_value.values.extend(
            AnyValue(string_value=w) for w in kept
        )
    span.attributes.extend(KeyValue(key=k, value=v) for k, v in attributes.items())

    for i, log in enumerate(_list(raw.get("logs"), f"{where}.logs")):
        here = f"{where}.logs[{i}]"
        if not isinstance(log, dict):
            raise _fail(here, f"expected a log object, got {_kind(log)}")
        event = span.events.add()
        event.time_unix_nano = _micros_ns(log.get("timestamp"), f"{here}.timestamp")
        named = False
        for key, value in _tags(log.get("fields"), f"{here}.fields"):
            if key == "event" and not named and value.WhichOneof("value") == "string_value":
                event.name = value.string_value
                named = True
            else:
                event.attributes.append(KeyValue(key=key, value=value))

    parent_found = False
    for i, ref in enumerate(_list(raw.get("references"), f"{where}.references")):
        here = f"{where}.references[{i}]"
        if not isinstance(ref, dict):
            raise _fail(here, f"expected a reference object, got {_kind(ref)}")
        ref_type = ref.get("refType", "CHILD_OF")
        if ref_type not in ("CHILD_OF", "FOLLOWS_FROM"):
            raise _fail(f"{here}.refType", f"{ref_type!r} is neither CHILD_OF nor FOLLOWS_FROM")
        ref_trace = _hex_id(ref.get("traceID", span.trace_id.hex()), 16, f"{here}.traceID")
        ref_span = _hex_id(ref.get("spanID"), 8, f"{here}.spanID")
        if ref_type == "CHILD_OF" and not parent_found and ref_trace == span.trace_id:
            span.parent_span_id = ref_span
            parent_found = True
            continue
        link = span.links.add(trace_id=ref_trace, span_id=ref_span)
        if ref_type == "CHILD_OF":
            link.attributes.add(key="opentracing.ref_type").value.string_value = "child_of"
    process_id = raw.get("processID")
    return (
        span,
        (scope_name or "", scope_version or ""),
        (process_id if isinstance(process_id, str) else None),
    )


def _list(value: object, where: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(where, f"expected a list, got {_kind(value)}")
    return value


def trace_to_request(trace: object, where: str = "trace") -> ExportTraceServiceRequest:
    """Return one Jaeger JSON trace as an OTLP request: a resource per process.

    Raises:
        JaegerJsonError: The trace is malformed; nothing of it is returned.
    """
    if not isinstance(trace, dict):
        raise _fail(where, f"expected a trace object, got {_kind(trace)}")
    trace_id = b""
    if trace.get("traceID") is not None:
        trace_id = _hex_id(trace["traceID"], 16, f"{where}.traceID")
    raw_processes = trace.get("processes") or {}
    if not isinstance(raw_processes, dict):
        raise _fail(f"{where}.processes", f"expected an object, got {_kind(raw_processes)}")
    resources: dict[str, Resource] = {}
    request = ExportTraceServiceRequest()
    # spans by resource (a process id, or an embedded process's bytes), then by scope
    blocks: dict[str | bytes, tuple[ResourceSpans, dict[tuple[str, str], ScopeSpans]]] = {}
    for i, raw in enumerate(_list(trace.get("spans"), f"{where}.spans")):
        here = f"{where}.spans[{i}]"
        if not isinstance(raw, dict):
            raise _fail(here, f"expected a span object, got {_kind(raw)}")
        if not trace_id and raw.get("traceID") is None:
            raise _fail(f"{here}.traceID", "missing (and the trace has none)")
        span, scope, process_id = _span(raw, trace_id, here)
        key: str | bytes
        if isinstance(raw.get("process"), dict):  # the span-embedded form
            resource = _resource(raw["process"], f"{here}.process")
            key = resource.SerializeToString(deterministic=True)
        else:
            if process_id is None or process_id not in raw_processes:
                raise _fail(
                    f"{here}.processID", f"{process_id!r} is not one of the trace's processes"
                )
            if process_id not in resources:
                resources[process_id] = _resource(
                    raw_processes[process_id], f"{where}.processes.{process_id}"
                )
            resource = resources[process_id]
            key = process_id
        block = blocks.get(key)
        if block is None:
            rs = request.resource_spans.add()
            rs.resource.CopyFrom(resource)
            block = blocks[key] = (rs, {})
        ss = block[1].get(scope)
        if ss is None:
            ss = block[0].scope_spans.add()
            ss.scope.name, ss.scope.version = scope
            block[1][scope] = ss
        ss.spans.append(span)
    return request
