"""Builders of OTLP requests for the store, receiver and viewer tests."""

from __future__ import annotations

import http.client
import os
import socket
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from cvtrace.viewer.wsgi_server import WsgiServer

T0_NS = 1_700_000_000_000_000_000


def new_trace_id() -> bytes:
    """Return a random valid trace id."""
    return os.urandom(16)


def new_span_id() -> bytes:
    """Return a random valid span id."""
    return os.urandom(8)


def any_value(value: object) -> AnyValue:
    """Return ``value`` as an OTLP AnyValue."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def key_values(attrs: Mapping[str, object]) -> list[KeyValue]:
    """Return a mapping as OTLP attributes."""
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items()]


@dataclass
class SpanSpec:
    """One span to put in a request."""

    name: str
    trace_id: bytes
    span_id: bytes = field(default_factory=new_span_id)
    parent_span_id: bytes = b""
    start_ns: int = T0_NS
    duration_ns: int = 1_000_000
    service: str = "svc"
    attrs: Mapping[str, object] = field(default_factory=dict)
    error: bool = False
    kind: Span.SpanKind.ValueType = Span.SPAN_KIND_INTERNAL
    scope: str = "tests"
    events: Sequence[tuple[str, int, Mapping[str, object]]] = ()
    links: Sequence[tuple[bytes, bytes, Mapping[str, object]]] = ()
    """(trace id, span id, attributes) of each span link."""


def make_request(specs: Sequence[SpanSpec]) -> ExportTraceServiceRequest:
    """Return a request grouping the spans by service (resource) and scope."""
    request = ExportTraceServiceRequest()
    by_service: dict[str, ResourceSpans] = {}
    by_scope: dict[tuple[str, str], ScopeSpans] = {}
    for spec in specs:
        rs = by_service.get(spec.service)
        if rs is None:
            rs = request.resource_spans.add()
            rs.resource.attributes.extend(
                key_values({"service.name": spec.service, "host.name": "box"})
            )
            by_service[spec.service] = rs
        ss = by_scope.get((spec.service, spec.scope))
        if ss is None:
            ss = rs.scope_spans.add()
            ss.scope.name = spec.scope
            ss.scope.version = "1.0"
            by_scope[(spec.service, spec.scope)] = ss
        span = ss.spans.add()
        span.trace_id = spec.trace_id
        span.span_id = spec.span_id
        span.parent_span_id = spec.parent_span_id
        span.name = spec.name
        span.kind = spec.kind
        span.start_time_unix_nano = spec.start_ns
        span.end_time_unix_nano = spec.start_ns + spec.duration_ns
        span.attributes.extend(key_values(spec.attrs))
        for event_name, event_ns, event_attrs in spec.events:
            event = span.events.add()
            event.name = event_name
            event.time_unix_nano = event_ns
            event.attributes.extend(key_values(event_attrs))
        for link_trace, link_span, link_attrs in spec.links:
            link = span.links.add()
            link.trace_id = link_trace
            link.span_id = link_span
            link.attributes.extend(key_values(link_attrs))
        if spec.error:
            span.status.code = Status.STATUS_CODE_ERROR
            span.status.message = "boom"
    return request


def simple_trace(
    service: str = "svc",
    *,
    start_ns: int = T0_NS,
    children: int = 2,
    root_name: str = "GET /",
    child_service: str | None = None,
    error: bool = False,
    attrs: Mapping[str, object] | None = None,
) -> list[SpanSpec]:
    """Return a root span and ``children`` child spans of one new trace."""
    trace_id = new_trace_id()
    root = SpanSpec(
        root_name,
        trace_id,
        start_ns=start_ns,
        duration_ns=10_000_000,
        service=service,
        attrs={"http.route": "/", **(attrs or {})},
        kind=Span.SPAN_KIND_SERVER,
        error=error,
    )
    kids = [
        SpanSpec(
            f"child {i}",
            trace_id,
            parent_span_id=root.span_id,
            start_ns=start_ns + (i + 1) * 1_000_000,
            duration_ns=1_000_000,
            service=child_service or service,
            attrs={"db.system.name": "sqlite", "idx": i},
        )
        for i in range(children)
    ]
    return [root, *kids]


_Served = TypeVar("_Served", bound="ServedInThread")


class ServedInThread:
    """A socketserver-style server serving from a daemon thread while in a ``with``."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self.port = server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)

    def __enter__(self: _Served) -> _Served:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class OtlpServer(ServedInThread):
    """``cvtrace view``'s OTLP/HTTP port: an ``OtlpHttpServer`` on 127.0.0.1, port 0."""

    def __init__(self, store: Any, **options: Any) -> None:
        from cvtrace.viewer.otlp_http import OtlpHttpServer

        super().__init__(OtlpHttpServer(("127.0.0.1", 0), store, **options))


class ViewerServer(ServedInThread):
    """A viewer app served as ``cvtrace view`` serves it (waitress) on 127.0.0.1, port 0."""

    def __init__(self, app: Any) -> None:
        self.app = app
        super().__init__(WsgiServer(app, "127.0.0.1", 0))


def store_snapshot(path: Path) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Return every row of every table of a store file (to prove nothing changed)."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return [(t, sorted(conn.execute(f"SELECT * FROM {t}").fetchall())) for t in tables]
    finally:
        conn.close()


def raw_http(port: int, data: bytes, *, half_close: bool = False) -> tuple[int, bytes]:
    """Send ``data`` as is to 127.0.0.1:``port``; return the answer's status and body.

    With ``half_close`` the client ends its side after ``data`` (a body cut short).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        if half_close:
            conn.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(conn)
        try:
            response.begin()
            return response.status, response.read()
        finally:
            response.close()
