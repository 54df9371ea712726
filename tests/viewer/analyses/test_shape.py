"""A trace's shape: root operation and set of (service, operation) pairs."""

from __future__ import annotations

from cvtrace.viewer.analyses.shape import trace_shape
from tests.viewer.analyses.build import TraceBuilder


def request(queries: int, *, extra: str | None = None) -> TraceBuilder:
    t = TraceBuilder()
    root = t.add("GET /circuits", 0, 100, service="web")
    for i in range(queries):
        t.add("SELECT circuits", i, i + 1, root, service="web")
    if extra:
        t.add(extra, 50, 60, root, service="web")
    return t


def test_repetitions_do_not_change_the_shape() -> None:
    assert trace_shape(request(3).trace()) == trace_shape(request(300).trace())


def test_another_operation_changes_it() -> None:
    assert trace_shape(request(3).trace()) != trace_shape(request(3, extra="POST").trace())


def test_the_root_operation_is_part_of_it() -> None:
    a = TraceBuilder()
    ra = a.add("GET /a", 0, 10)
    a.add("GET /b", 1, 2, ra)
    b = TraceBuilder()
    rb = b.add("GET /b", 0, 10)
    b.add("GET /a", 1, 2, rb)
    shape_a, shape_b = trace_shape(a.trace()), trace_shape(b.trace())
    assert shape_a.pairs == shape_b.pairs
    assert shape_a != shape_b
    assert shape_a.root == ("svc", "GET /a")
    assert shape_a.services == {"svc"}
