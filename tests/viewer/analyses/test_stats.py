"""Trace statistics: one row per operation, the repeated one first."""

from __future__ import annotations

from cvtrace.viewer.analyses.stats import StatsRow, trace_stats
from tests.viewer.analyses.build import MS, TraceBuilder


def test_an_n_plus_one_is_one_row_on_top() -> None:
    t = TraceBuilder()
    root = t.add("GET /circuits", 0, 100, service="web")
    search = t.add("search", 1, 99, root, service="web")
    for i in range(30):
        t.add("SELECT circuits", 2 + 3 * i, 3 + 3 * i, search, service="db", error=i == 7)
    t.add("SELECT users", 95, 97, search, service="db")
    rows = trace_stats(t.trace())
    assert [(r.service, r.operation, r.count) for r in rows] == [
        ("db", "SELECT circuits", 30),
        ("web", "search", 1),  # self time 98 - 30 - 2 = 66 ms
        ("web", "GET /circuits", 1),  # self time 2 ms
        ("db", "SELECT users", 1),
    ]
    assert rows[0] == StatsRow("db", "SELECT circuits", 30, 30 * MS, 30 * MS, MS, MS, errors=1)
    assert rows[1].self_ns == 66 * MS
    assert rows[1].total_ns == 98 * MS


def test_min_max_and_self_over_several_spans() -> None:
    t = TraceBuilder()
    root = t.add("root", 0, 20)
    a1 = t.add("a", 0, 10, root)
    t.add("a", 10, 12, root)
    t.add("b", 2, 6, a1)
    (a,) = [r for r in trace_stats(t.trace()) if r.operation == "a"]
    assert (a.count, a.total_ns, a.self_ns, a.min_ns, a.max_ns) == (
        2,
        12 * MS,
        8 * MS,
        2 * MS,
        10 * MS,
    )


def test_the_same_operation_in_two_services_is_two_rows() -> None:
    t = TraceBuilder()
    root = t.add("POST", 0, 10, service="web")
    t.add("POST", 1, 2, root, service="api")
    assert {(r.service, r.operation) for r in trace_stats(t.trace())} == {
        ("web", "POST"),
        ("api", "POST"),
    }
