"""An OTLP request, or SDK spans encoded by cvtrace, read into per-trace batches.

The first half of a write to the span store (:mod:`cvtrace.store`), done outside its
write transaction: the valid spans of a request grouped by trace, with what the store
indexes of them (the operations, the indexed tags) and each span's bytes as a
``ScopeSpans.spans`` field. :func:`prepare_request` reads a decoded OTLP request (the
viewer's receivers); :func:`prepare_encoded` reads the output of
:meth:`cvtrace.otlp.encoding.SpanEncoder.encode_grouped` (the ``local`` exporter), from
the SDK's objects, without decoding a request again. The two give equal batches for
the same spans (``tests/store/test_local_vs_otlp.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, Status

from cvtrace.otlp.encoding import EncodedResource

logger = logging.getLogger(__name__)

MAX_TAG_VALUE_CHARS = 256
UNKNOWN_SERVICE = "unknown_service"

SPAN_KIND_NAMES: dict[int, str] = {
    Span.SPAN_KIND_INTERNAL: "internal",
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
}
STATUS_ERROR = Status.STATUS_CODE_ERROR
STATUS_NAMES: dict[int, str] = {Status.STATUS_CODE_OK: "OK", Status.STATUS_CODE_ERROR: "ERROR"}
MAX_I64 = 2**63 - 1  # SQLite integers are signed 64-bit; OTLP times are fixed64
_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)


@dataclass
class Prepared:
    """A request's valid spans, grouped by trace outside the write transaction."""

    resources: list[tuple[bytes, str, bytes, str]] = field(default_factory=list)
    """(digest, service, body, schema_url) per resource."""
    resource_tags: list[list[tuple[str, str]]] = field(default_factory=list)
    scopes: list[tuple[bytes, bytes, str]] = field(default_factory=list)
    """(digest, body, schema_url) per scope."""
    traces: dict[bytes, TraceBatch] = field(default_factory=dict)
    """The spans of each trace, by trace id, in order of first appearance."""
    accepted: int = 0
    """Valid spans, counting a span sent twice in the request twice."""
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    new_spans: int = 0
    """Spans written (not stored before); set by the write transaction."""


StoredSummary = tuple[int, int, int, int, int, int, str, str, str]
"""(key, start_ns, end_ns, span_count, error_count, has_root, root_name,
root_service, services JSON) of a stored trace."""

BatchSpan = tuple[bytes, int, int, bytes, int, int, bool, bool, str, str, bytes, int]
"""(span_id, resource index, scope index, body, start_ns, end_ns, is_error,
is_root, name, service, parent_span_id, kind) of one span of a request."""


class TraceBatch:
    """One trace's spans in one request, and its summary over them.

    Built while a request is prepared; in the write transaction, the spans
    stored before are left out and the summary is computed over the others,
    merged into the one stored before.
    """

    __slots__ = (
        "blocks",
        "end_ns",
        "errors",
        "has_root",
        "operations",
        "root_name",
        "root_service",
        "services",
        "spans",
        "start_ns",
        "tags",
    )

    def __init__(self) -> None:
        self.spans: dict[bytes, BatchSpan] = {}
        """By span id, in order of arrival: a span sent twice is kept once."""
        self.blocks: set[tuple[int, int]] = set()
        """The (resource index, scope index) pairs of the spans."""
        self.operations: set[tuple[int, str]] = set()
        """(resource index, span name) pairs."""
        self.tags: set[tuple[str, str]] = set()
        """Indexed tags of the spans and of the spans left out as stored before
        (these are indexed already, so indexing them again changes nothing)."""
        self.start_ns = self.end_ns = self.errors = 0
        self.has_root = False
        self.root_name = self.root_service = ""
        self.services: dict[str, int] = {}

    def leave_out(self, span_ids: set[bytes]) -> None:
        """Leave out the spans whose ids are in ``span_ids``."""
        self.spans = {i: span for i, span in self.spans.items() if i not in span_ids}
        self.blocks = {(span[1], span[2]) for span in self.spans.values()}

    def summarize(self, old: StoredSummary | None) -> None:
        """Compute the summary of the spans, merged into ``old``, the stored one.

        A trace without a root span is named after its earliest span.
        """
        start_ns, end_ns, errors = 1 << 64, 0, 0  # above any fixed64
        first = root = None
        services: dict[str, int] = {}
        for span in self.spans.values():
            if span[4] < start_ns:
                start_ns, first = span[4], span
            if span[5] > end_ns:
                end_ns = span[5]
            if span[6]:
                errors += 1
            if span[7] and root is None:
                root = span
            services[span[9]] = services.get(span[9], 0) + 1
        named = root or first
        assert named is not None
        self.has_root = root is not None
        self.root_name, self.root_service = named[8], named[9]
        if old is not None:
            _key, start, end, _count, stored_errors, has_root, root_name, root_service, stored = old
            if has_root or (root is None and start <= start_ns):
                self.has_root = bool(has_root)
                self.root_name, self.root_service = root_name, root_service
            start_ns, end_ns = min(start_ns, start), max(end_ns, end)
            errors += stored_errors
            merged: dict[str, int] = json.loads(stored)
            for name, n in services.items():
                merged[name] = merged.get(name, 0) + n
            services = merged
        # OTLP times are unsigned 64-bit, SQLite integers signed
        self.start_ns, self.end_ns = min(start_ns, MAX_I64), min(end_ns, MAX_I64)
        self.errors, self.services = errors, services


def _derived_tags(kind: int, status_code: int) -> tuple[tuple[str, str], ...]:
    tags: list[tuple[str, str]] = []
    kind_name = SPAN_KIND_NAMES.get(kind)
    if kind_name is not None:
        tags.append(("span.kind", kind_name))
    status_name = STATUS_NAMES.get(status_code)
    if status_name is not None:
        tags.append(("otel.status_code", status_name))
    if status_code == STATUS_ERROR:
        tags.append(("error", "true"))
    return tuple(tags)


class _DerivedTags(dict[tuple[int, int], tuple[tuple[str, str], ...]]):
    """(kind, status code) -> the tags derived from them, computed once each."""

    def __missing__(self, key: tuple[int, int]) -> tuple[tuple[str, str], ...]:
        value = _derived_tags(*key)
        self[key] = value
        return value


_DERIVED_TAGS = _DerivedTags()


def _digest(body: bytes, schema_url: str) -> bytes:
    """The key a resource or scope is stored once under: its bytes and schema URL."""
    return hashlib.blake2b(body + b"\0" + schema_url.encode(), digest_size=16).digest()


def _invalid_ids(trace_id: bytes, span_id: bytes, parent: bytes) -> str:
    """Return why a span's ids are invalid (for ids that are)."""
    if len(trace_id) != 16:
        return "a trace id that is not 16 bytes"
    if trace_id == _ZERO_TRACE_ID:
        return "an all-zero trace id"
    if len(span_id) != 8:
        return "a span id that is not 8 bytes"
    if span_id == _ZERO_SPAN_ID:
        return "an all-zero span id"
    return "a parent span id that is neither empty nor 8 bytes"


def _python_value_text(value: object) -> str | None:
    """Return a scalar SDK attribute value as :func:`any_value_text` does its OTLP form."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return None


def any_value_text(value: AnyValue) -> str | None:
    """Return a scalar attribute value as a tag string, or None for others."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        return repr(value.double_value)
    return None


def duration_bucket(duration_ns: int) -> int:
    """Return a duration's bucket: two per power of two, in the order of durations."""
    if duration_ns < 2:
        return max(0, duration_ns)
    bits = duration_ns.bit_length()
    return 2 * (bits - 1) + ((duration_ns >> (bits - 2)) & 1)


def _fields(buf: bytes, start: int, end: int, wanted: int) -> list[tuple[int, int, int]]:
    """Return where each length-delimited field number ``wanted`` of a message is.

    ``buf[start:end]`` is one serialized protobuf message; returns ``(field
    start, value start, end)`` of each occurrence, in order.

    Raises:
        ValueError: The bytes are not a well-formed message.
    """
    out: list[tuple[int, int, int]] = []
    pos = start
    while pos < end:
        field_start = pos
        tag = buf[pos]
        pos += 1
        if tag >= 0x80:
            tag, pos = _varint(buf, pos - 1)
        wire = tag & 7
        if wire == 2:
            size = buf[pos]
            pos += 1
            if size >= 0x80:  # spans are usually 128 bytes to 16 KiB: two bytes
                second = buf[pos]
                if second < 0x80:
                    size = (size & 0x7F) | (second << 7)
                    pos += 1
                else:
                    size, pos = _varint(buf, pos - 1)
            if tag >> 3 == wanted:
                out.append((field_start, pos, pos + size))
            pos += size
        elif wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:  # groups: not in OTLP
            msg = f"unexpected wire type {wire}"
            raise ValueError(msg)
    if pos != end:
        msg = "a field runs past the end of its message"
        raise ValueError(msg)
    return out


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Return the varint at ``pos`` and the position after it."""
    value = 0
    shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            msg = "a varint is longer than 10 bytes"
            raise ValueError(msg)


def _span_bytes(encoded: bytes) -> list[list[list[bytes]]]:
    """Return the spans of an encoded ``ExportTraceServiceRequest`` as fields.

    By resource, then scope, in the order the decoded message holds them; each
    is a slice of ``encoded``, as it was sent: a ``ScopeSpans.spans`` field (tag,
    length, span).

    Raises:
        ValueError: The bytes are not a well-formed request.
    """
    return [
        [
            [encoded[f:b] for f, _a, b in _fields(encoded, sa, sb, 2)]
            for _sf, sa, sb in _fields(encoded, ra, rb, 2)
        ]
        for _rf, ra, rb in _fields(encoded, 0, len(encoded), 1)
    ]


def span_field(span: bytes) -> bytes:
    """Return a serialized span as a ``ScopeSpans.spans`` field."""
    size = len(span)
    head = bytearray(b"\x12")
    while size >= 0x80:
        head.append((size & 0x7F) | 0x80)
        size >>= 7
    head.append(size)
    return bytes(head) + span


def group_spans(body: bytes) -> Sequence[Span]:
    """Return the spans of a ``span_groups`` row's body."""
    return ScopeSpans.FromString(body).spans


def prepare_request(
    request: ExportTraceServiceRequest, encoded: bytes | None, tag_keys: frozenset[str]
) -> Prepared:
    """Read a request's valid spans into per-trace batches (see :class:`Prepared`).

    ``encoded`` is the protobuf ``request`` was decoded from, if at hand: each span
    is then kept as its slice of it, as sent, instead of being serialized again.
    """
    out = Prepared()
    sent: list[list[list[bytes]]] | None = None
    if encoded is not None:
        try:
            sent = _span_bytes(encoded)
        except (ValueError, IndexError):
            logger.debug("cannot slice an encoded request; serializing its spans")
    if sent is not None and (
        len(sent) != len(request.resource_spans)
        or any(
            len(scopes) != len(rs.scope_spans)
            or any(len(b) != len(ss.spans) for b, ss in zip(scopes, rs.scope_spans, strict=True))
            for scopes, rs in zip(sent, request.resource_spans, strict=True)
        )
    ):
        sent = None
    reasons = out.reasons
    traces = out.traces
    accepted = 0
    for ri, rs in enumerate(request.resource_spans):
        resource = rs.resource
        service = UNKNOWN_SERVICE
        rtags: list[tuple[str, str]] = []
        for kv in resource.attributes[:]:
            key = kv.key
            if key == "service.name":
                service = kv.value.string_value or UNKNOWN_SERVICE
            elif key in tag_keys:
                text = any_value_text(kv.value)
                if text is not None and len(text) <= MAX_TAG_VALUE_CHARS:
                    rtags.append((key, text))
        rbody = resource.SerializeToString(deterministic=True)
        rdigest = _digest(rbody, rs.schema_url)
        res_index = len(out.resources)
        resource_used = False
        for si, ss in enumerate(rs.scope_spans):
            span_bodies = sent[ri][si] if sent is not None else None
            sbody = ss.scope.SerializeToString(deterministic=True)
            sdigest = _digest(sbody, ss.schema_url)
            scope_index = len(out.scopes)
            block = (res_index, scope_index)
            scope_used = False
            for span_index, span in enumerate(ss.spans):
                trace_id = span.trace_id
                span_id = span.span_id
                parent = span.parent_span_id
                if (
                    len(trace_id) != 16
                    or len(span_id) != 8
                    or trace_id == _ZERO_TRACE_ID
                    or span_id == _ZERO_SPAN_ID
                    or (parent and len(parent) != 8)
                ):
                    why = _invalid_ids(trace_id, span_id, parent)
                    reasons[why] = reasons.get(why, 0) + 1
                    out.rejected += 1
                    continue
                accepted += 1
                batch = traces.get(trace_id)
                if batch is None:
                    batch = traces[trace_id] = TraceBatch()
                elif span_id in batch.spans:
                    continue  # sent twice: stored once
                status_code = span.status.code
                kind = span.kind
                tags = batch.tags
                tags.update(_DERIVED_TAGS[kind, status_code])
                # a slice, not the container's iterator: prepare_request 0.92-0.95x in
                # A/B runs (slicing the spans and scopes as well measured 1.05x: not done)
                for kv in span.attributes[:]:
                    key = kv.key
                    if key in tag_keys:
                        value = kv.value
                        text = value.string_value or any_value_text(value)
                        if text is not None and len(text) <= MAX_TAG_VALUE_CHARS:
                            tags.add((key, text))
                name = span.name
                batch.operations.add((res_index, name))
                batch.blocks.add(block)
                batch.spans[span_id] = (
                    span_id,
                    res_index,
                    scope_index,
                    span_field(span.SerializeToString())
                    if span_bodies is None
                    else span_bodies[span_index],
                    span.start_time_unix_nano,
                    span.end_time_unix_nano,
                    status_code == STATUS_ERROR,
                    not parent or parent == _ZERO_SPAN_ID,
                    name,
                    service,
                    parent,
                    kind,
                )
                scope_used = True
            if scope_used:
                out.scopes.append((sdigest, sbody, ss.schema_url))
                resource_used = True
        if resource_used:
            out.resources.append((rdigest, service, rbody, rs.schema_url))
            out.resource_tags.append(rtags)
    out.accepted = accepted
    return out


def prepare_encoded(resources: Sequence[EncodedResource], tag_keys: frozenset[str]) -> Prepared:
    """Like :func:`prepare_request`, from encoded SDK spans (keep the two in step).

    Why a near-copy: the two read different objects (protobuf messages there, the SDK's
    spans and the encoder's bytes here), so only the ~12-line per-span tail (batch,
    duplicate check, tags, row) is common. Sharing it as a function costs a call with
    ~15 arguments per span: 135 ns measured here (timeit, 1M calls, best of 5, loaded
    machine), ~2% of preparing a span (~6 µs) on the ingest path that BENCHMARKS.md
    tracks; ``tests/store/test_local_vs_otlp.py`` keeps the two in step, table by table.
    """
    out = Prepared()
    traces = out.traces
    accepted = 0
    for encoded_resource in resources:
        service = UNKNOWN_SERVICE
        rtags: list[tuple[str, str]] = []
        for key, value in encoded_resource.resource.attributes.items():
            if key == "service.name":
                service = value if isinstance(value, str) and value else UNKNOWN_SERVICE
            elif key in tag_keys:
                text = _python_value_text(value)
                if text is not None and len(text) <= MAX_TAG_VALUE_CHARS:
                    rtags.append((key, text))
        schema_url = encoded_resource.resource.schema_url
        rbody = encoded_resource.body
        rdigest = _digest(rbody, schema_url)
        res_index = len(out.resources)
        resource_used = False
        for encoded_scope in encoded_resource.scopes:
            scope = encoded_scope.scope
            sbody = encoded_scope.body
            scope_schema = (scope.schema_url or "") if scope is not None else ""
            sdigest = _digest(sbody, scope_schema)
            scope_index = len(out.scopes)
            block = (res_index, scope_index)
            scope_used = False
            for span, body in encoded_scope.spans:
                # the encoder writes the trace id first, then the span id
                trace_id = body[2:18]
                span_id = body[20:28]
                parent_context = span.parent
                parent = (
                    b"" if parent_context is None else parent_context.span_id.to_bytes(8, "big")
                )
                if trace_id == _ZERO_TRACE_ID or span_id == _ZERO_SPAN_ID:
                    why = _invalid_ids(trace_id, span_id, parent)
                    out.reasons[why] = out.reasons.get(why, 0) + 1
                    out.rejected += 1
                    continue
                accepted += 1
                batch = traces.get(trace_id)
                if batch is None:
                    batch = traces[trace_id] = TraceBatch()
                elif span_id in batch.spans:
                    continue  # sent twice: stored once
                status_code = span.status.status_code.value
                kind = span.kind.value + 1  # the SDK's kinds start at 0, OTLP's at 1
                tags = batch.tags
                tags.update(_DERIVED_TAGS[kind, status_code])
                attributes = span.attributes
                if attributes:
                    for key in tag_keys.intersection(attributes):
                        text = _python_value_text(attributes[key])
                        if text is not None and len(text) <= MAX_TAG_VALUE_CHARS:
                            tags.add((key, text))
                name = span.name
                batch.operations.add((res_index, name))
                batch.blocks.add(block)
                batch.spans[span_id] = (
                    span_id,
                    res_index,
                    scope_index,
                    span_field(body),
                    span.start_time or 0,
                    span.end_time or 0,
                    status_code == STATUS_ERROR,
                    not parent or parent == _ZERO_SPAN_ID,
                    name,
                    service,
                    parent,
                    kind,
                )
                scope_used = True
            if scope_used:
                out.scopes.append((sdigest, sbody, scope_schema))
                resource_used = True
        if resource_used:
            out.resources.append((rdigest, service, rbody, schema_url))
            out.resource_tags.append(rtags)
    out.accepted = accepted
    return out
