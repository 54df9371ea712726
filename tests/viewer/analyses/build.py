"""Hand-built traces for the analyses' tests: times in milliseconds from T0."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from cvtrace.store import StoredSpan
from cvtrace.viewer.analyses.spans import TraceSpans, trace_spans
from tests.viewer.support import T0_NS, key_values

MS = 1_000_000
SERVER = Span.SPAN_KIND_SERVER
CLIENT = Span.SPAN_KIND_CLIENT
INTERNAL = Span.SPAN_KIND_INTERNAL
CONSUMER = Span.SPAN_KIND_CONSUMER


def sid(n: int) -> bytes:
    """Return span id number ``n`` (readable in failures: 00..0n)."""
    return n.to_bytes(8, "big")


class TraceBuilder:
    """Spans of one trace, added one by one; ids are 1, 2, 3 ... in order of adding."""

    def __init__(self, trace_id: bytes = b"\x0a" * 16) -> None:
        self.trace_id = trace_id
        self.spans: list[StoredSpan] = []
        self._resources: dict[str, Resource] = {}
        self._scope = InstrumentationScope(name="tests", version="1")

    def add(
        self,
        name: str,
        start_ms: float,
        end_ms: float,
        parent: bytes | None = None,
        *,
        service: str = "svc",
        kind: Span.SpanKind.ValueType = INTERNAL,
        error: bool = False,
        span_id: bytes | None = None,
        links: Sequence[bytes] = (),
        attrs: Mapping[str, object] | None = None,
    ) -> bytes:
        """Add a span; return its id."""
        span = Span(
            trace_id=self.trace_id,
            span_id=span_id or sid(len(self.spans) + 1),
            parent_span_id=parent or b"",
            name=name,
            kind=kind,
            start_time_unix_nano=T0_NS + round(start_ms * MS),
            end_time_unix_nano=T0_NS + round(end_ms * MS),
        )
        if error:
            span.status.code = Status.STATUS_CODE_ERROR
        for target in links:
            link = span.links.add()
            link.trace_id = self.trace_id
            link.span_id = target
        span.attributes.extend(key_values(attrs or {}))
        resource = self._resources.get(service)
        if resource is None:
            resource = self._resources[service] = Resource(
                attributes=key_values({"service.name": service, "host.name": "box"})
            )
        self.spans.append(StoredSpan(span, resource, "", self._scope, "", service))
        return span.span_id

    def trace(self) -> TraceSpans:
        """Return the spans as the analyses' columns."""
        return trace_spans(self.spans)

    def index(self, span_id: bytes) -> int:
        """Return the position of a span in the trace."""
        return next(i for i, s in enumerate(self.spans) if s.span.span_id == span_id)


def ns(ms: float) -> int:
    """Return an absolute time ``ms`` after T0, in ns."""
    return T0_NS + round(ms * MS)
