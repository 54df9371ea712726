"""In-trace search: the spans of one trace that match what a person typed.

A span matches when it matches every filter given: ``text`` (case-insensitive, in
its name, its service, or any attribute key or value of the span or its resource,
or an event name), ``service`` (exactly), ``status`` (``error``, ``ok`` or
``unset``) and ``min_duration_ns``. The text of each span is gathered once per
trace, from its stored spans (the columns leave attributes out), and kept with it
(:func:`span_texts`), so each keystroke is one pass of substring tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.proto.trace.v1.trace_pb2 import Status

from cvtrace.store import StoredSpan
from cvtrace.viewer.analyses.spans import TraceSpans
from cvtrace.viewer.jaeger import any_value_python

__all__ = ["SpanFilter", "find_spans", "span_texts"]

STATUSES = {
    "unset": Status.STATUS_CODE_UNSET,
    "ok": Status.STATUS_CODE_OK,
    "error": Status.STATUS_CODE_ERROR,
}


@dataclass(frozen=True)
class SpanFilter:
    """What to look for; empty filters match every span."""

    text: str = ""
    service: str = ""
    status: str = ""
    """``error``, ``ok``, ``unset`` or empty."""
    min_duration_ns: int = 0


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def span_texts(trace: TraceSpans, spans: Sequence[StoredSpan]) -> list[str]:
    """Return each span's searchable text, lowercased: name, service, attributes, events.

    Args:
        trace: The trace.
        spans: The stored spans it was read from, in the same order.
    """
    out = []
    resource_texts: dict[int, str] = {}
    for i, stored in enumerate(spans):
        resource = resource_texts.get(id(stored.resource))
        if resource is None:
            resource = resource_texts[id(stored.resource)] = "\n".join(
                f"{kv.key}\n{_text(any_value_python(kv.value))}"
                for kv in stored.resource.attributes
            )
        span = stored.span
        parts = [trace.names[i], trace.services[i], resource]
        for kv in span.attributes:
            parts.append(kv.key)
            parts.append(_text(any_value_python(kv.value)))
        parts.extend(event.name for event in span.events)
        if span.status.message:
            parts.append(span.status.message)
        out.append("\n".join(parts).lower())
    return out


def find_spans(trace: TraceSpans, texts: list[str], what: SpanFilter) -> list[int]:
    """Return the indexes of the matching spans, in start order.

    Args:
        trace: The trace.
        texts: Its :func:`span_texts`.
        what: The filters.
    """
    needle = what.text.strip().lower()
    status = STATUSES.get(what.status) if what.status else None
    out = []
    for i, text in enumerate(texts):
        if needle and needle not in text:
            continue
        if what.service and trace.services[i] != what.service:
            continue
        if status is not None and trace.statuses[i] != status:
            continue
        if what.min_duration_ns and trace.ends[i] - trace.starts[i] < what.min_duration_ns:
            continue
        out.append(i)
    out.sort(key=lambda i: (trace.starts[i], trace.span_ids[i]))
    return out
