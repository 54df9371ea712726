"""Trace statistics: one row per (service, operation), as Jaeger's "Trace Statistics".

Repetition first: rows are ordered by span count, then self time, so an N+1 (the
same query run hundreds of times under one request) is the top row, its count and
total time on one line instead of hundreds of bars.
"""

from __future__ import annotations

from dataclasses import dataclass

from cvtrace.viewer.analyses.self_time import self_times
from cvtrace.viewer.analyses.spans import TraceSpans

__all__ = ["StatsRow", "trace_stats"]


@dataclass
class StatsRow:
    """The spans of one operation of one service in a trace; times in nanoseconds."""

    service: str
    operation: str
    count: int = 0
    total_ns: int = 0
    """Sum of the spans' durations."""
    self_ns: int = 0
    """Sum of the spans' self times (see :mod:`.self_time`)."""
    min_ns: int = 0
    max_ns: int = 0
    errors: int = 0


def trace_stats(trace: TraceSpans, own: list[int] | None = None) -> list[StatsRow]:
    """Return the statistics of a trace, most repeated operation first.

    Args:
        trace: The trace.
        own: Its self times, if computed already (:func:`.self_time.self_times`).
    """
    if own is None:
        own = self_times(trace)
    rows: dict[tuple[str, str], StatsRow] = {}
    starts, ends, errors = trace.starts, trace.ends, trace.errors
    for i, key in enumerate(zip(trace.services, trace.names, strict=True)):
        duration = ends[i] - starts[i]
        row = rows.get(key)
        if row is None:
            row = rows[key] = StatsRow(key[0], key[1], min_ns=duration, max_ns=duration)
        row.count += 1
        row.total_ns += duration
        row.self_ns += own[i]
        if duration < row.min_ns:
            row.min_ns = duration
        if duration > row.max_ns:
            row.max_ns = duration
        if errors[i]:
            row.errors += 1
    return sorted(
        rows.values(), key=lambda r: (-r.count, -r.self_ns, -r.total_ns, r.service, r.operation)
    )
