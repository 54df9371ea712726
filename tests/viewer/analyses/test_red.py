"""RED metrics from entry spans, in the shape of Jaeger's metrics query API."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvtrace.viewer.analyses.calls import Call
from cvtrace.viewer.analyses.red import MetricsQuery, call_rates, error_rates, latencies
from tests.viewer.analyses.build import CLIENT, INTERNAL, SERVER

S = 1_000_000_000
END = 1_700_000_100 * S


def call(
    at_s: float,
    ms: float,
    *,
    op: str = "GET /",
    service: str = "web",
    error: bool = False,
    kind: int = SERVER,
    entry: bool = True,
) -> Call:
    return Call(END - round(at_s * S), round(ms * 1e6), service, op, kind, error, entry, None, b"")


def query(**kw: Any) -> MetricsQuery:
    base: dict[str, Any] = {
        "services": frozenset({"web"}),
        "end_ns": END,
        "lookback_ns": 60 * S,
        "step_ns": 10 * S,
        "rate_per_ns": 10 * S,
    }
    base.update(kw)
    return MetricsQuery(**base)


def values(family: dict[str, Any], series: int = 0) -> list[float]:
    return [p["gaugeValue"]["doubleValue"] for p in family["metrics"][series]["metricPoints"]]


def test_the_family_has_jaegers_shape() -> None:
    family = call_rates([call(5, 1)], query())
    assert family["name"] == "service_call_rate"
    assert family["type"] == "GAUGE"
    assert family["help"] == "calls/sec, grouped by service"
    (metric,) = family["metrics"]
    assert metric["labels"] == [{"name": "service_name", "value": "web"}]
    # points every step from end - lookback to end, as RFC 3339 timestamps
    stamps = [p["timestamp"] for p in metric["metricPoints"]]
    assert stamps[0] == "2023-11-14T22:14:00Z"
    assert stamps[-1] == "2023-11-14T22:15:00Z"
    assert len(stamps) == 7


def test_call_rate_per_step() -> None:
    # points at -60, -50, ... 0 s; each covers the 10 s before it, the first one too
    calls = [call(5, 1), call(5, 1), call(15, 1), call(0, 1), call(60, 1), call(61, 1), call(70, 1)]
    assert values(call_rates(calls, query())) == [0.2, 0, 0, 0, 0, 0.1, 0.3]


def test_rate_per_wider_than_the_step_averages_over_it() -> None:
    calls = [call(5, 1), call(5, 1), call(15, 1)]
    # the point at 0 covers (-20 s, 0]: 3 calls in 20 s
    assert values(call_rates(calls, query(rate_per_ns=20 * S)))[-1] == pytest.approx(0.15)
    # 15 s is rounded up to whole steps (20 s), as Jaeger's readers do
    assert values(call_rates(calls, query(rate_per_ns=15 * S)))[-1] == pytest.approx(0.15)


def test_only_entry_spans_of_the_asked_services_and_kinds() -> None:
    calls = [
        call(5, 1),
        call(5, 1, service="api"),
        call(5, 1, entry=False),
        call(5, 1, kind=CLIENT),
        call(5, 1, kind=INTERNAL),
    ]
    assert values(call_rates(calls, query()))[-1] == 0.1
    both = query(span_kinds=frozenset({SERVER, INTERNAL}))
    assert values(call_rates(calls, both))[-1] == 0.2


def test_grouped_by_operation() -> None:
    calls = [call(5, 1, op="GET /a"), call(5, 1, op="GET /b"), call(6, 1, op="GET /b")]
    family = call_rates(calls, query(group_by_operation=True))
    assert family["name"] == "service_operation_call_rate"
    assert family["help"] == "calls/sec, grouped by service & operation"
    assert [m["labels"] for m in family["metrics"]] == [
        [{"name": "operation", "value": "GET /a"}, {"name": "service_name", "value": "web"}],
        [{"name": "operation", "value": "GET /b"}, {"name": "service_name", "value": "web"}],
    ]
    assert values(family, 1)[-1] == 0.2


def test_error_rate_and_no_point_without_calls() -> None:
    calls = [call(5, 1, error=True), call(5, 1), call(6, 1), call(7, 1), call(25, 1)]
    family = error_rates(calls, query())
    assert family["name"] == "service_error_rate"
    points = family["metrics"][0]["metricPoints"]
    assert [p["gaugeValue"]["doubleValue"] for p in points] == [0.0, 0.25]
    assert [p["timestamp"] for p in points] == ["2023-11-14T22:14:40Z", "2023-11-14T22:15:00Z"]


def test_latency_quantiles_nearest_rank_within_one_percent() -> None:
    calls = [call(5, ms) for ms in (1, 2, 3, 4, 5, 6, 7, 8, 9, 100)]
    for q, exact in ((0.5, 5), (0.9, 9), (0.95, 100), (0.99, 100), (0.1, 1)):
        family = latencies(calls, query(), q)
        (value,) = values(family)
        assert value == pytest.approx(exact, rel=0.01)
    assert latencies(calls, query(), 0.95)["help"] == "0.95th quantile latency, grouped by service"


def test_zero_durations() -> None:
    assert values(latencies([call(5, 0), call(5, 0)], query(), 0.5)) == [0.0]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 59.9), st.integers(0, 10**9)), min_size=1, max_size=80),
    st.sampled_from([0.5, 0.75, 0.95, 0.99, 1.0]),
    st.sampled_from([10, 20, 60]),
)
def test_latency_matches_the_exact_quantile(
    spans: list[tuple[float, int]], q: float, window_s: int
) -> None:
    calls = [
        Call(END - round(at * S), d, "web", "GET /", SERVER, False, True, None, b"")
        for at, d in spans
    ]
    family = latencies(calls, query(rate_per_ns=window_s * S), q)
    points = {
        p["timestamp"]: p["gaugeValue"]["doubleValue"] for p in family["metrics"][0]["metricPoints"]
    }
    for k in range(7):
        t = END - (6 - k) * 10 * S
        inside = sorted(c.duration_ns for c in calls if t - window_s * S < c.start_ns <= t)
        if not inside:
            continue
        exact = inside[max(1, math.ceil(q * len(inside))) - 1] / 1e6
        (value,) = [v for ts, v in points.items() if ts.startswith(_stamp(t))]
        assert value == pytest.approx(exact, rel=0.01, abs=1e-9)


def _stamp(ns: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ns // S, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
