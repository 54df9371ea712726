"""OTLP protobuf encoding of SDK spans, written straight to bytes.

The SDK's ``encode_spans`` builds a protobuf message object per span, attribute and
value, then serialises it: about 38 µs per span here, on the export thread, which
shares the GIL with the app's requests. This module writes the same wire format
directly and remembers the encoding of recurring attributes (``http.request.method:
GET``, ``db.system.name: sqlite``, a repeated SQL statement), so a typical span costs a
fraction of that. Its output parses to a message equal to ``encode_spans``'s
(``tests/otlp/test_encoding.py`` checks it field by field, and on the wire).

A resource's ``process.pid`` is encoded as the encoding process's own. The SDK fixes a
provider's resource when the provider is made, so in a process forked after that (a
gunicorn worker, when tracing starts in the master) it still names the parent; spans
are encoded in the process that made them, which is the one they should name.

Wire format: https://protobuf.dev/programming-guides/encoding/ applied to
opentelemetry-proto's ``trace.proto``, ``common.proto`` and ``resource.proto``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_ids = struct.Struct(">BBQQBBQ").pack  # trace id and span id fields, big-endian ids
_pack_times = struct.Struct("<BQBQ").pack  # start and end time fields
_LOW64 = (1 << 64) - 1

_SPAN_FLAGS_HAS_IS_REMOTE = 0x100
_SPAN_FLAGS_IS_REMOTE = 0x200
_MAX_CACHED_VALUE_CHARS = 2048
_MAX_CACHE_ENTRIES = 8192


def _varint(value: int) -> bytes:
    """Encode a non-negative integer (or an int64, two's complement) as a varint."""
    if value < 0:
        value += 1 << 64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    """Encode an AnyValue message body."""
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if value is None:
        return b""
    if isinstance(value, Mapping):
        pairs = b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items())
        return _field(b"\x32", pairs)
    if isinstance(value, Sequence):
        values = b"".join(_field(b"\x0a", _any_value(item)) for item in value)
        return _field(b"\x2a", values)
    msg = f"cannot encode a {type(value).__name__} attribute value"
    raise TypeError(msg)


def _key_value(key: str, value: Any) -> bytes:
    """Encode a KeyValue message body."""
    return _field(b"\x0a", key.encode()) + _field(b"\x12", _any_value(value))


class EncodedScope(NamedTuple):
    """The encoded spans of one instrumentation scope."""

    scope: InstrumentationScope | None
    body: bytes
    """The ``InstrumentationScope`` message."""
    spans: list[tuple[ReadableSpan, bytes]]
    """Each span with its ``Span`` message."""


class EncodedResource(NamedTuple):
    """The encoded spans of one resource."""

    resource: Resource
    """The resource as encoded (``process.pid`` this process's)."""
    body: bytes
    """The ``Resource`` message."""
    scopes: list[EncodedScope]


def request_bytes(resources: Sequence[EncodedResource]) -> bytes:
    """Return the ``ExportTraceServiceRequest`` holding encoded spans."""
    out = []
    for resource in resources:
        body = [_field(b"\x0a", resource.body)]
        for scope in resource.scopes:
            scope_body = [_field(b"\x0a", scope.body)]
            scope_body.extend(_field(b"\x12", span) for _, span in scope.spans)
            if scope.scope is not None and scope.scope.schema_url:
                scope_body.append(_field(b"\x1a", scope.scope.schema_url.encode()))
            body.append(_field(b"\x12", b"".join(scope_body)))
        if resource.resource.schema_url:
            body.append(_field(b"\x1a", resource.resource.schema_url.encode()))
        out.append(_field(b"\x0a", b"".join(body)))
    return b"".join(out)


class SpanEncoder:
    """Encode batches of SDK spans as ``ExportTraceServiceRequest`` bytes.

    One encoder lives as long as its exporter: it caches the encoding of recurring
    attributes, resources and scopes. Use it from one thread at a time.
    """

    def __init__(self) -> None:
        self._attributes: dict[tuple[str, type, Any], bytes] = {}
        self._resources: dict[int, tuple[int, Resource, Resource, bytes]] = {}
        self._scopes: dict[int, tuple[InstrumentationScope | None, bytes]] = {}

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        """Return the serialised ``ExportTraceServiceRequest`` holding ``spans``."""
        return request_bytes(self.encode_grouped(spans))

    def encode_grouped(self, spans: Sequence[ReadableSpan]) -> list[EncodedResource]:
        """Return ``spans`` encoded one by one, grouped by resource and scope.

        :func:`request_bytes` makes the request of them; the ``local`` exporter
        stores them as they are.
        """
        grouped: dict[int, EncodedResource] = {}
        for span in spans:
            resource = grouped.get(id(span.resource))
            if resource is None:
                resource = grouped[id(span.resource)] = EncodedResource(
                    *self._resource(span.resource), []
                )
            scope = span.instrumentation_scope
            for encoded_scope in resource.scopes:
                if encoded_scope.scope is scope:
                    break
            else:
                encoded_scope = EncodedScope(scope, self._scope_body(scope), [])
                resource.scopes.append(encoded_scope)
            encoded_scope.spans.append((span, self._span(span)))
        return list(grouped.values())

    def _resource(self, resource: Resource) -> tuple[Resource, bytes]:
        """The resource as this process encodes it, and its ``Resource`` message."""
        key = id(resource)
        pid = os.getpid()
        cached = self._resources.get(key)
        if cached is None or cached[0] != pid:
            if len(self._resources) > 64:
                self._resources.clear()
            current = _as_process(resource, pid)
            body = self._attribute_list(b"\x0a", current.attributes)
            # holds the original too: its id stays its own while cached
            cached = self._resources[key] = (pid, resource, current, body)
        return cached[2], cached[3]

    def _scope_body(self, scope: InstrumentationScope | None) -> bytes:
        key = id(scope)
        cached = self._scopes.get(key)
        if cached is None:
            if len(self._scopes) > 1024:
                self._scopes.clear()
            body = b""
            if scope is not None:
                if scope.name:
                    body += _field(b"\x0a", scope.name.encode())
                if scope.version:
                    body += _field(b"\x12", scope.version.encode())
                body += self._attribute_list(b"\x1a", scope.attributes)
            cached = self._scopes[key] = (scope, body)
        return cached[1]

    def _attribute_list(self, tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
        if not attributes:
            return b""
        cache = self._attributes
        parts = []
        for key, value in attributes.items():
            kind = type(value)
            if kind is str or kind is int or kind is bool or kind is float:
                cache_key = (key, kind, value)
                encoded = cache.get(cache_key)
                if encoded is None:
                    encoded = _field(tag, _key_value(key, value))
                    if kind is not str or len(value) <= _MAX_CACHED_VALUE_CHARS:
                        if len(cache) >= _MAX_CACHE_ENTRIES:
                            cache.clear()
                        cache[cache_key] = encoded
                parts.append(encoded)
            else:
                parts.append(_field(tag, _key_value(key, value)))
        return b"".join(parts)

    def _span(self, span: ReadableSpan) -> bytes:
        context = span.context
        assert context is not None  # an ended SDK span always has one
        trace_id = context.trace_id
        parts = [
            _pack_ids(0x0A, 0x10, trace_id >> 64, trace_id & _LOW64, 0x12, 0x08, context.span_id)
        ]
        trace_state = context.trace_state
        if trace_state:
            text = ",".join(f"{key}={value}" for key, value in trace_state.items())
            parts.append(_field(b"\x1a", text.encode()))
        parent = span.parent
        if parent is not None:
            parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
        if span.name:
            parts.append(_field(b"\x2a", span.name.encode()))
        parts.append(_KIND_FIELDS[span.kind])
        start, end = span.start_time, span.end_time
        if start and end:
            parts.append(_pack_times(0x39, start, 0x41, end))
        else:
            if start:
                parts.append(b"\x39" + _pack_fixed64(start))
            if end:
                parts.append(b"\x41" + _pack_fixed64(end))
        parts.append(self._attribute_list(b"\x4a", span.attributes))
        if span.dropped_attributes:
            parts.append(b"\x50" + _varint(span.dropped_attributes))
        for event in span.events:
            body = b"\x09" + _pack_fixed64(event.timestamp) if event.timestamp else b""
            if event.name:
                body += _field(b"\x12", event.name.encode())
            body += self._attribute_list(b"\x1a", event.attributes)
            if event.dropped_attributes:
                body += b"\x20" + _varint(event.dropped_attributes)
            parts.append(_field(b"\x5a", body))
        if span.dropped_events:
            parts.append(b"\x60" + _varint(span.dropped_events))
        for link in span.links:
            body = (
                b"\x0a\x10"
                + link.context.trace_id.to_bytes(16, "big")
                + b"\x12\x08"
                + link.context.span_id.to_bytes(8, "big")
                + self._attribute_list(b"\x22", link.attributes)
            )
            if link.dropped_attributes:
                body += b"\x28" + _varint(link.dropped_attributes)
            body += b"\x35" + _pack_fixed32(_span_flags(link.context))
            parts.append(_field(b"\x6a", body))
        if span.dropped_links:
            parts.append(b"\x70" + _varint(span.dropped_links))
        status = span.status
        if status.description:
            code = b"\x18" + bytes((status.status_code.value,)) if status.status_code.value else b""
            parts.append(_field(b"\x7a", _field(b"\x12", status.description.encode()) + code))
        else:
            parts.append(_STATUS_FIELDS[status.status_code])
        parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
        return b"".join(parts)


_KIND_FIELDS = {kind: b"\x30" + bytes((kind.value + 1,)) for kind in SpanKind}
_STATUS_FIELDS = {
    code: _field(b"\x7a", b"\x18" + bytes((code.value,)) if code.value else b"")
    for code in StatusCode
}
_FLAGS_LOCAL = b"\x85\x01" + _pack_fixed32(_SPAN_FLAGS_HAS_IS_REMOTE)
_FLAGS_REMOTE = b"\x85\x01" + _pack_fixed32(_SPAN_FLAGS_HAS_IS_REMOTE | _SPAN_FLAGS_IS_REMOTE)


def _as_process(resource: Resource, pid: int) -> Resource:
    """``resource`` with its ``process.pid`` (if it has one) made ``pid``."""
    recorded = resource.attributes.get("process.pid")
    if recorded is None or recorded == pid:
        return resource
    return Resource({**resource.attributes, "process.pid": pid}, resource.schema_url)


def _span_flags(parent: SpanContext | None) -> int:
    if parent is not None and parent.is_remote:
        return _SPAN_FLAGS_HAS_IS_REMOTE | _SPAN_FLAGS_IS_REMOTE
    return _SPAN_FLAGS_HAS_IS_REMOTE
