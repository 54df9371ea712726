"""Stored spans as Jaeger query JSON (what Jaeger's ``/api/traces`` returns).

The mapping is Jaeger's own, field for field: Jaeger v2 turns OTLP into its model with
the collector's Jaeger translator, then its query service adjusts the model before
writing the JSON, and tests/ops/test_jaeger_parity.py compares this module's answers
with a real Jaeger's for the same spans. So: resource attributes become process tags
(without ``service.name``); span kind becomes ``span.kind``; the status becomes
``otel.status_code`` / ``otel.status_description`` and ``error: true``; the scope
becomes ``otel.scope.name`` / ``otel.scope.version``; the trace state
``w3c.tracestate``; tags are sorted by key; integers beyond JavaScript's safe range are
strings, bytes are base64, arrays and maps are compact JSON text as Go writes it; the
parent becomes a ``CHILD_OF`` reference put first and links become ``FOLLOWS_FROM``
(a link to the parent changes the parent reference's type instead of adding one);
events become logs whose ``event`` field comes first; ``flags`` (the W3C trace flags)
only when not zero, as Jaeger's model has it (Jaeger itself drops OTLP's flags: a
deliberate difference, so that a download re-imports whole).

Where the viewer deliberately answers otherwise (span warnings in its own words, also
gathered at trace level; non-finite doubles as strings; ...) is listed in
docs/operations.md, "The viewer's Jaeger API".
"""

from __future__ import annotations

import base64
import json
import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from operator import itemgetter
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


JS_MAX_SAFE_INTEGER = 2**53 - 1
"""Larger integers lose precision in JavaScript: Jaeger writes them as strings."""
_REF_TYPE = "opentracing.ref_type"
"""A link attribute (OpenTracing shims) that makes the link a ``CHILD_OF`` reference."""


def jaeger_tag(key: str, value: AnyValue) -> dict[str, Any]:
    """Return one attribute as a Jaeger tag ``{key, type, value}``, as Jaeger writes it."""
    which = value.WhichOneof("value")
    if which == "bool_value":
        return {"key": key, "type": "bool", "value": value.bool_value}
    if which == "int_value":
        integer = value.int_value
        safe = -JS_MAX_SAFE_INTEGER <= integer <= JS_MAX_SAFE_INTEGER
        return {"key": key, "type": "int64", "value": integer if safe else str(integer)}
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
        return {"key": key, "type": "binary", "value": _base64(value.bytes_value)}
    if which is None:  # an empty value: Jaeger's tag of no type is an empty string
        return {"key": key, "type": "string", "value": ""}
    return {"key": key, "type": "string", "value": go_json(value)}


def _base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def go_json(value: AnyValue) -> str:
    """Return an array or map value as the compact JSON text Jaeger (Go) gives it.

    Go's encoding/json of the value's plain form: map keys sorted (the last of two
    equal ones kept), bytes as base64, doubles in Go's shortest form (``1``, not
    ``1.0``), ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, other text as it is.
    A non-finite double, which Go cannot write at all (Jaeger shows the whole value
    as an empty string), is written as protobuf's JSON spells it (``"NaN"``).
    """
    which = value.WhichOneof("value")
    if which == "array_value":
        return "[" + ",".join(go_json(v) for v in value.array_value.values) + "]"
    if which == "kvlist_value":
        entries = {kv.key: kv.value for kv in value.kvlist_value.values}
        return (
            "{" + ",".join(f"{_go_string(k)}:{go_json(entries[k])}" for k in sorted(entries)) + "}"
        )
    if which == "string_value":
        return _go_string(value.string_value)
    if which == "bytes_value":
        return f'"{_base64(value.bytes_value)}"'
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        number = value.double_value
        return go_float(number) if math.isfinite(number) else f'"{finite_or_text(number)}"'
    return "null"


_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _go_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).translate(_GO_ESCAPES)


def go_float(number: float) -> str:
    """Return a finite double as Go's encoding/json writes it: shortest round-trip digits,
    fixed notation from 1e-6 up to 1e21 (``0.00001``, ``1e+21``, ``1e-7``)."""
    if number == 0:
        return "-0" if math.copysign(1.0, number) < 0 else "0"
    exact = Decimal(repr(number))  # the shortest digits that read back as this double
    if 1e-6 <= abs(number) < 1e21:
        text = format(exact, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    sign, digits, exponent = exact.normalize().as_tuple()
    assert isinstance(exponent, int)
    shown = "".join(map(str, digits))
    power = exponent + len(shown) - 1
    mantissa = shown[0] + (f".{shown[1:]}" if len(shown) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}e{'+' if power >= 0 else '-'}{abs(power):02d}".replace(
        "e-0", "e-"
    )


def _sorted_tags(tags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sort tags by key, as Jaeger's query service does before answering."""
    tags.sort(key=_tag_key)
    return tags


def _tag_key(tag: dict[str, Any]) -> str:
    return str(tag["key"])


def _string(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "type": "string", "value": value}


def hex_id(raw: bytes) -> str:
    """Return an id as lowercase hex."""
    return raw.hex()


class _Processes:
    """Jaeger's ``processes``: one per distinct resource and service, numbered as met."""

    def __init__(self) -> None:
        self._texts: list[str] = []
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
            tags = _tag_texts(kv for kv in stored.resource.attributes if kv.key != "service.name")
            tags.sort(key=_by_key)
            self._texts.append(
                f'"{pid}":{{"serviceName":{_quote(stored.service)},'
                f'"tags":[{",".join([text for _, text in tags])}]}}'
            )
        # keep the resource alive with its id, so the id is not reused by another object
        self._by_object[okey] = (pid, stored.resource)
        return pid

    def json(self) -> str:
        """Return the processes as a JSON object, ``{"p1": {serviceName, tags}, ...}``."""
        return "{" + ",".join(self._texts) + "}"


def _link_type(link: Span.Link) -> str:
    for kv in link.attributes:
        if kv.key == _REF_TYPE:
            return "CHILD_OF" if kv.value.string_value == "child_of" else "FOLLOWS_FROM"
    return "FOLLOWS_FROM"


def _references(span: Span) -> list[dict[str, str]]:
    """The parent and the links as Jaeger's references, in Jaeger's order.

    The parent comes first as ``CHILD_OF``; a link to the parent changes that
    reference's type rather than adding another; the other links follow in order.
    Then the first ``CHILD_OF`` within the trace (else its first reference within the
    trace) moves to the front, where Jaeger's UI looks for the parent.
    """
    trace_hex = hex_id(span.trace_id)
    parent = span.parent_span_id if span.parent_span_id != bytes(8) else b""
    references: list[dict[str, str]] = []
    if parent:
        references.append({"refType": "CHILD_OF", "traceID": trace_hex, "spanID": hex_id(parent)})
    for link in span.links:
        if parent and link.trace_id == span.trace_id and link.span_id == parent:
            references[0]["refType"] = _link_type(link)
            continue
        references.append(
            {
                "refType": _link_type(link),
                "traceID": hex_id(link.trace_id),
                "spanID": hex_id(link.span_id),
            }
        )
    same_trace = [i for i, ref in enumerate(references) if ref["traceID"] == trace_hex]
    first = next((i for i in same_trace if references[i]["refType"] == "CHILD_OF"), None)
    if first is None and same_trace:
        first = same_trace[0]
    if first:  # neither None nor 0
        references[0], references[first] = references[first], references[0]
    return references


def _log(event: Span.Event) -> dict[str, Any]:
    """An event as a Jaeger log: its name as the ``event`` field, first, then the rest sorted."""
    fields = [jaeger_tag(kv.key, kv.value) for kv in event.attributes]
    named = [f for f in fields if f["key"] == "event" and f["type"] == "string"]
    if event.name and not any(kv.key == "event" for kv in event.attributes):
        named = [_string("event", event.name)]
    first = named[:1]
    rest = [f for f in fields if not first or f is not first[0]]
    return {"timestamp": event.time_unix_nano // 1000, "fields": first + _sorted_tags(rest)}


_quote = json.encoder.encode_basestring_ascii
"""A string as ``json.dumps`` writes it (quoted, non-ASCII escaped): json's C function."""
_dumps = json.JSONEncoder(separators=(",", ":")).encode
"""``json.dumps`` as this module writes JSON: compact, non-ASCII escaped."""


def _tag_texts(attributes: Iterable[KeyValue]) -> list[tuple[str, str]]:
    """Return each attribute's key and its tag as JSON text (see :func:`_tag_text`)."""
    tags = []
    for kv in attributes:
        key = kv.key
        value = kv.value
        if value.WhichOneof("value") == "string_value":  # most attributes: inline
            text = value.string_value
            tags.append((key, f'{{"key":{_quote(key)},"type":"string","value":{_quote(text)}}}'))
        else:
            tags.append((key, _tag_text(key, value)))
    return tags


def _tag_text(key: str, value: AnyValue) -> str:
    """Return :func:`jaeger_tag`'s tag as JSON text, written directly for the scalars."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return f'{{"key":{_quote(key)},"type":"string","value":{_quote(value.string_value)}}}'
    if which == "int_value":
        integer = value.int_value
        if -JS_MAX_SAFE_INTEGER <= integer <= JS_MAX_SAFE_INTEGER:
            return f'{{"key":{_quote(key)},"type":"int64","value":{integer}}}'
    elif which == "bool_value":
        text = "true" if value.bool_value else "false"
        return f'{{"key":{_quote(key)},"type":"bool","value":{text}}}'
    elif which == "double_value":
        number = value.double_value
        if math.isfinite(number):
            return f'{{"key":{_quote(key)},"type":"float64","value":{float.__repr__(number)}}}'
    elif which == "bytes_value":
        encoded = _base64(value.bytes_value)
        return f'{{"key":{_quote(key)},"type":"binary","value":"{encoded}"}}'
    return _dumps(jaeger_tag(key, value))  # the rest, rare: big ints, NaN, arrays, maps


def _string_text(key: str, value: str) -> str:
    return f'{{"key":"{key}","type":"string","value":{_quote(value)}}}'


_KIND_TAGS = {kind: ("span.kind", _string_text("span.kind", name)) for kind, name in _KINDS.items()}
_STATUS_TAGS: dict[int, tuple[tuple[str, str], ...]] = {
    Status.STATUS_CODE_OK: (("otel.status_code", _string_text("otel.status_code", "OK")),),
    Status.STATUS_CODE_ERROR: (
        ("otel.status_code", _string_text("otel.status_code", "ERROR")),
        ("error", '{"key":"error","type":"bool","value":true}'),
    ),
}
_NO_PARENT = bytes(8)


_by_key = itemgetter(0)


def jaeger_span_json(stored: StoredSpan, pid: str, span_warnings: list[str]) -> str:
    """Return one span in Jaeger's JSON model, as compact JSON text.

    Written field by field, with no dict per span or per tag: the text is what
    ``json.dumps(..., separators=(",", ":"))`` gives for the model, byte for byte
    (tests/viewer/test_jaeger.py checks it against the model for odd values too).
    """
    span = stored.span
    tags = _tag_texts(span.attributes)
    scope = stored.scope
    if scope.name:
        tags.append(("otel.scope.name", _string_text("otel.scope.name", scope.name)))
    if scope.version:
        tags.append(("otel.scope.version", _string_text("otel.scope.version", scope.version)))
    kind = _KIND_TAGS.get(span.kind)
    if kind is not None:
        tags.append(kind)
    status = span.status
    if status.code:
        tags.extend(_STATUS_TAGS.get(status.code, ()))
    if status.message:
        tags.append(
            ("otel.status_description", _string_text("otel.status_description", status.message))
        )
    if span.trace_state:
        tags.append(("w3c.tracestate", _string_text("w3c.tracestate", span.trace_state)))
    tags.sort(key=_by_key)  # stable, as Jaeger's query service sorts them
    trace_hex = span.trace_id.hex()
    if span.links:
        references = _dumps(_references(span))
    else:
        parent = span.parent_span_id
        references = (
            f'[{{"refType":"CHILD_OF","traceID":"{trace_hex}","spanID":"{parent.hex()}"}}]'
            if parent and parent != _NO_PARENT
            else "[]"
        )
    flags = span.flags & 0xFF
    flags_text = f'"flags":{flags},' if flags else ""
    start_ns = span.start_time_unix_nano
    return (
        f'{{"traceID":"{trace_hex}","spanID":"{span.span_id.hex()}",'
        f'"operationName":{_quote(span.name)},"references":{references},'
        f"{flags_text}"
        f'"startTime":{start_ns // 1000},'
        f'"duration":{max(0, span.end_time_unix_nano - start_ns) // 1000},'
        f'"tags":[{",".join([text for _, text in tags])}],'
        f'"logs":{_dumps([_log(e) for e in span.events]) if span.events else "[]"},'
        f'"processID":{_quote(pid)},'
        f'"warnings":{_dumps(span_warnings) if span_warnings else "null"}}}'
    )


_SPANS_PER_WRITE = 500
"""Spans written as JSON text and yielded at a time (about 300 KB of JSON)."""
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
        spans = [stored.span for stored in piece]
        span_ids += [span.span_id for span in spans]
        parent_ids += [span.parent_span_id for span in spans]
        starts.extend([span.start_time_unix_nano for span in spans])
        ends.extend([span.end_time_unix_nano for span in spans])
    orphans, skewed = tree_marks(span_ids, parent_ids, starts, ends)
    del parent_ids, starts, ends
    trace_hex = ""
    processes = _Processes()
    warnings: list[str] = []
    position = 0
    moved: dict[bytes, int] | None = None  # positions by id, if the trace changed in between
    separator = ""
    no_warnings: list[str] = []
    for piece in pieces:
        for first in range(0, len(piece), _SPANS_PER_WRITE):
            out: list[str] = []
            for stored in piece[first : first + _SPANS_PER_WRITE]:
                span_id = stored.span.span_id
                if moved is None and (position >= len(span_ids) or span_ids[position] != span_id):
                    moved = {sid: i for i, sid in reversed(list(enumerate(span_ids)))}
                index = position if moved is None else moved.get(span_id, -1)
                position += 1
                if index < 0:
                    continue  # stored after the first reading: not part of this answer
                span_warnings = no_warnings
                if index in orphans or index in skewed:
                    span_warnings = [_ORPHAN] if index in orphans else []
                    if index in skewed:
                        span_warnings.append(_SKEWED)
                    warnings.extend(f"span {hex_id(span_id)}: {w}" for w in span_warnings)
                out.append(jaeger_span_json(stored, processes.pid(stored), span_warnings))
            if not out:
                continue
            if not trace_hex:
                trace_hex = out[0][12 : out[0].index('"', 12)]  # '{"traceID":"<hex>"'
                yield f'{{"traceID":"{trace_hex}","spans":['
            yield separator + ",".join(out)
            separator = ","
    if not trace_hex:
        yield '{"traceID":"","spans":['
    tail = json.dumps(warnings) if warnings else "null"  # ", " between them, as before
    yield f'],"processes":{processes.json()},"warnings":{tail}}}'
