"""``console``: one readable line per span on stderr, for development."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode, format_span_id, format_trace_id

KEY_ATTRIBUTES = (
    "http.request.method",
    "http.route",
    "url.path",
    "http.response.status_code",
    "db.system.name",
    "db.query.text",
    "url.full",
)


class ConsoleSpanExporter(SpanExporter):
    """Write one line per span: time, service, name, duration, ids, status, key attributes.

    Args:
        out: where to write (``sys.stderr`` when omitted).
    """

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write the spans."""
        out = self._out or sys.stderr
        out.write("".join(format_span(span) + "\n" for span in spans))
        out.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""


def format_span(span: ReadableSpan) -> str:
    """Return the one-line form of a span."""
    start_ns = span.start_time or 0
    duration_ms = ((span.end_time or start_ns) - start_ns) / 1e6
    started = datetime.fromtimestamp(start_ns / 1e9, tz=timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    service = span.resource.attributes.get("service.name", "?")
    context = span.context
    trace_id = format_trace_id(context.trace_id) if context else "?"
    span_id = format_span_id(context.span_id) if context else "?"
    parent = format_span_id(span.parent.span_id) if span.parent else "-"
    status = "ERROR" if span.status.status_code is StatusCode.ERROR else "ok"
    attributes = span.attributes or {}
    details = " ".join(f"{key}={attributes[key]!r}" for key in KEY_ATTRIBUTES if key in attributes)
    return (
        f"{started} [{service}] {span.name} {duration_ms:.2f}ms {status} "
        f"trace={trace_id} span={span_id} parent={parent} {details}"
    ).rstrip()
