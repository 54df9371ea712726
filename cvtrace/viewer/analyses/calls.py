"""Calls: the spans the service map and the RED metrics are made of.

Two kinds of span matter beyond their own trace:

- **entry spans**, where a request enters a service: server and consumer spans, and
  roots of any kind (:meth:`TraceSpans.is_entry`); their rate, errors and durations
  are a service's RED metrics (:mod:`.red`);
- spans whose parent is in **another service**: each is one call from the parent's
  service to the span's (:mod:`.dependencies`). The parent is the span named as
  parent, when it is in the trace (orphans have none); links are not calls.

:func:`trace_calls` lists them for one trace. The span store keeps the same rows,
computed as spans are written (``cvtrace.store.calls``), so the service map and RED
metrics over a million spans never decode a span; ``tests/store/test_calls.py``
checks that its rows equal this function's for traces written in pieces.
"""

from __future__ import annotations

from typing import NamedTuple

from cvtrace.viewer.analyses.spans import ROOT, TraceSpans

__all__ = ["Call", "trace_calls"]


class Call(NamedTuple):
    """One entry span or cross-service call."""

    start_ns: int
    duration_ns: int
    service: str
    operation: str
    kind: int
    """OTLP span kind (1 internal ... 5 consumer; 0 unspecified)."""
    error: bool
    entry: bool
    parent_service: str | None
    """The service of the span's parent when that is another service, else None."""
    trace_id: bytes


def trace_calls(trace: TraceSpans) -> list[Call]:
    """Return a trace's entry spans and cross-service calls, in span order."""
    out: list[Call] = []
    services = trace.services
    for i, parent in enumerate(trace.named_parents):
        parent_service = None
        if parent != ROOT and services[parent] != services[i]:
            parent_service = services[parent]
        entry = trace.is_entry(i)
        if entry or parent_service is not None:
            out.append(
                Call(
                    trace.starts[i],
                    trace.ends[i] - trace.starts[i],
                    services[i],
                    trace.names[i],
                    trace.kinds[i],
                    trace.errors[i],
                    entry,
                    parent_service,
                    trace.trace_id,
                )
            )
    return out
