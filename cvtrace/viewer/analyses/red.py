"""RED metrics (rate, errors, duration) of services, from their entry spans.

What Jaeger's Monitor tab shows from a Prometheus fed by the collector's span
metrics, computed straight from the stored spans, in the shape of Jaeger's metrics
query API (``/api/metrics/calls|errors|latencies``, an OpenMetrics ``MetricFamily``
as JSON). The spans counted are entry spans (:mod:`.calls`) of the services asked
for, of the span kinds asked for (default: server), grouped by service or by service
and operation.

Time series, as Jaeger's readers compute them:

- points every ``step`` from ``end - lookback`` up to ``end``;
- each point ``t`` covers the spans that *started* in ``(t - window, t]``, where the
  window is ``ratePer`` rounded up to a whole number of steps (as Jaeger's
  Elasticsearch reader does; with ``ratePer = step`` each span is in one point);
- **calls**: spans per second over the window; **errors**: the fraction of those
  spans with an error status (no point where there were no calls); **latencies**:
  the ``quantile`` of their durations, in milliseconds (nearest rank: the smallest
  duration with at least that fraction of the spans at or below it), from a sketch
  whose buckets are 2% wide, so a value is within 1% of the exact one (DDSketch's
  bound); no point where there were no calls.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from cvtrace.viewer.analyses.calls import Call

__all__ = ["MAX_POINTS", "MetricsQuery", "call_rates", "error_rates", "latencies"]

MAX_POINTS = 11_000
"""Points per series at most (Prometheus's own limit per query)."""
GAMMA = 1.02
"""Bucket growth of the latency sketch: relative error (GAMMA-1)/(GAMMA+1), under 1%."""
_LOG_GAMMA = math.log(GAMMA)


@dataclass(frozen=True)
class MetricsQuery:
    """What a metrics request asks for; times in nanoseconds."""

    services: frozenset[str]
    end_ns: int
    lookback_ns: int
    step_ns: int
    rate_per_ns: int
    group_by_operation: bool = False
    span_kinds: frozenset[int] = frozenset({Span.SPAN_KIND_SERVER})

    @property
    def window_steps(self) -> int:
        """Steps in the window each point covers (``ratePer`` rounded up)."""
        return max(1, -(-self.rate_per_ns // self.step_ns))

    @property
    def start_ns(self) -> int:
        """The time of the first point."""
        return self.end_ns - self.points * self.step_ns + self.step_ns

    @property
    def points(self) -> int:
        """How many points each series has."""
        return self.lookback_ns // self.step_ns + 1

    @property
    def first_start_ns(self) -> int:
        """The earliest span start any point covers (excluded)."""
        return self.start_ns - self.window_steps * self.step_ns


class _Series:
    """Per-step counts of one series: bin ``j`` holds spans in (t_j - step, t_j]."""

    __slots__ = ("counts", "errors", "sketches")

    def __init__(self, bins: int, durations: bool) -> None:
        self.counts = [0] * bins
        self.errors = [0] * bins
        self.sketches: list[dict[int, int]] | None = (
            [{} for _ in range(bins)] if durations else None
        )


def _bucket(duration_ns: int) -> int:
    """Return the sketch bucket of a duration: (GAMMA**(k-1), GAMMA**k]; 0 and below: 0."""
    if duration_ns <= 0:
        return -(2**31)
    return math.ceil(math.log(duration_ns) / _LOG_GAMMA)


def _bucket_value_ns(bucket: int) -> float:
    """Return the value a sketch bucket stands for (within 1% of any in it)."""
    if bucket == -(2**31):
        return 0.0
    return 2 * GAMMA**bucket / (GAMMA + 1)


def _series(
    calls: Iterable[Call], query: MetricsQuery, durations: bool
) -> dict[tuple[str, str], _Series]:
    steps = query.window_steps
    bins = query.points + steps - 1
    first = query.first_start_ns
    last = query.end_ns
    step = query.step_ns
    origin = query.start_ns
    services = query.services
    kinds = query.span_kinds
    by_operation = query.group_by_operation
    out: dict[tuple[str, str], _Series] = {}
    for call in calls:
        start = call.start_ns
        if (
            start <= first
            or start > last
            or not call.entry
            or call.service not in services
            or call.kind not in kinds
        ):
            continue
        key = (call.service, call.operation if by_operation else "")
        series = out.get(key)
        if series is None:
            series = out[key] = _Series(bins, durations)
        # bin j covers (origin + (j-1)*step, origin + j*step]; stored at j + steps - 1
        index = -((origin - start) // step) + steps - 1
        series.counts[index] += 1
        if call.error:
            series.errors[index] += 1
        if series.sketches is not None:
            sketch = series.sketches[index]
            bucket = _bucket(call.duration_ns)
            sketch[bucket] = sketch.get(bucket, 0) + 1
    return out


def _windows(values: list[int], steps: int) -> list[int]:
    """Return the sum of each point's window: ``values[k : k + steps]`` for each point."""
    out = []
    running = sum(values[: steps - 1])
    for k in range(len(values) - steps + 1):
        running += values[k + steps - 1]
        out.append(running)
        running -= values[k]
    return out


def _timestamp(ns: int) -> str:
    """Return a time as protobuf's JSON form of a Timestamp (RFC 3339, UTC)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if rest:  # 3, 6 or 9 digits, as protobuf writes them
        digits = f"{rest:09d}"
        while digits.endswith("000"):
            digits = digits[:-3]
        text += "." + digits
    return text + "Z"


def _family(
    query: MetricsQuery,
    what: str,
    help_text: str,
    series: dict[tuple[str, str], _Series],
    value: Any,
) -> dict[str, Any]:
    grouping = "service & operation" if query.group_by_operation else "service"
    name = f"service_operation_{what}" if query.group_by_operation else f"service_{what}"
    metrics = []
    times = [query.start_ns + k * query.step_ns for k in range(query.points)]
    stamps = [_timestamp(t) for t in times]
    for (service, operation), one in sorted(series.items()):
        labels = [{"name": "service_name", "value": service}]
        if query.group_by_operation:
            labels.insert(0, {"name": "operation", "value": operation})
        points = []
        for k, number in enumerate(value(one)):
            if number is not None:
                points.append({"gaugeValue": {"doubleValue": number}, "timestamp": stamps[k]})
        metrics.append({"labels": labels, "metricPoints": points})
    return {
        "name": name,
        "type": "GAUGE",
        "help": f"{help_text}, grouped by {grouping}",
        "metrics": metrics,
    }


def call_rates(calls: Iterable[Call], query: MetricsQuery) -> dict[str, Any]:
    """Return the entry spans per second of each series (a ``MetricFamily``)."""
    steps = query.window_steps
    seconds = steps * query.step_ns / 1e9

    def value(one: _Series) -> list[float | None]:
        return [n / seconds for n in _windows(one.counts, steps)]

    return _family(query, "call_rate", "calls/sec", _series(calls, query, False), value)


def error_rates(calls: Iterable[Call], query: MetricsQuery) -> dict[str, Any]:
    """Return the fraction of entry spans in error of each series (a ``MetricFamily``)."""
    steps = query.window_steps

    def value(one: _Series) -> list[float | None]:
        counts = _windows(one.counts, steps)
        errors = _windows(one.errors, steps)
        return [e / n if n else None for n, e in zip(counts, errors, strict=True)]

    return _family(
        query,
        "error_rate",
        "error rate, computed as a fraction of errors/sec over calls/sec",
        _series(calls, query, False),
        value,
    )


def latencies(calls: Iterable[Call], query: MetricsQuery, quantile: float) -> dict[str, Any]:
    """Return the ``quantile`` of entry span durations of each series, in ms."""
    steps = query.window_steps

    def value(one: _Series) -> list[float | None]:
        assert one.sketches is not None
        out: list[float | None] = []
        running: dict[int, int] = {}
        total = 0
        sketches = one.sketches
        for k, sketch in enumerate(sketches):
            for bucket, n in sketch.items():
                running[bucket] = running.get(bucket, 0) + n
                total += n
            if k >= steps:  # the bin leaving the window
                for bucket, n in sketches[k - steps].items():
                    left = running[bucket] - n
                    total -= n
                    if left:
                        running[bucket] = left
                    else:
                        del running[bucket]
            if k < steps - 1:
                continue
            if not total:
                out.append(None)
                continue
            rank = max(1, math.ceil(quantile * total))
            seen = 0
            for bucket in sorted(running):
                seen += running[bucket]
                if seen >= rank:
                    out.append(_bucket_value_ns(bucket) / 1e6)
                    break
        return out

    return _family(
        query,
        "latencies",
        f"{quantile:.2f}th quantile latency",
        _series(calls, query, True),
        value,
    )
