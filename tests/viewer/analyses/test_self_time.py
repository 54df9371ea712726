"""Self time: a span's time not covered by its children, checked against the definition."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cvtrace.viewer.analyses.self_time import self_times
from tests.viewer.analyses.build import MS, TraceBuilder, sid


def own_ms(t: TraceBuilder) -> list[float]:
    return [x / MS for x in self_times(t.trace())]


def test_sequential_children() -> None:
    t = TraceBuilder()
    root = t.add("root", 0, 10)
    t.add("a", 1, 4, root)
    t.add("b", 4, 8, root)
    assert own_ms(t) == [3, 3, 4]


def test_parallel_children_are_counted_once() -> None:
    t = TraceBuilder()
    root = t.add("root", 0, 10)
    t.add("a", 1, 6, root)
    t.add("b", 2, 8, root)
    t.add("c", 3, 4, root)
    assert own_ms(t) == [3, 5, 6, 1]


def test_only_the_part_of_a_child_inside_its_parent_counts() -> None:
    t = TraceBuilder()
    root = t.add("root", 0, 10)
    t.add("outlives", 8, 15, root)
    t.add("before", -5, 1, root)
    t.add("outside", 20, 30, root)
    assert own_ms(t) == [7, 7, 6, 10]


def test_a_child_covering_its_parent_leaves_it_nothing_never_less() -> None:
    t = TraceBuilder()
    root = t.add("root", 2, 4)
    t.add("wider", 0, 10, root)
    assert own_ms(t) == [0, 10]


def test_grandchildren_do_not_count_against_the_root() -> None:
    t = TraceBuilder()
    root = t.add("root", 0, 10)
    a = t.add("a", 0, 5, root)
    t.add("a1", 1, 4, a)
    assert own_ms(t) == [5, 2, 3]


def test_zero_length_spans_and_orphans() -> None:
    t = TraceBuilder()
    root = t.add("root", 0, 10)
    t.add("instant", 5, 5, root)
    t.add("orphan", 0, 10, sid(99))  # not the root's child
    assert own_ms(t) == [10, 0, 10]


@st.composite
def family(draw: st.DrawFn) -> TraceBuilder:
    t = TraceBuilder()
    start = draw(st.integers(0, 50))
    root = t.add("root", start, start + draw(st.integers(0, 50)))
    for i in range(draw(st.integers(0, 12))):
        s = draw(st.integers(-10, 110))
        t.add(f"c{i}", s, s + draw(st.integers(0, 40)), root)
    return t


@settings(max_examples=300, deadline=None)
@given(family())
def test_self_time_is_the_uncovered_milliseconds(t: TraceBuilder) -> None:
    """Counted millisecond by millisecond: each ms of the root no child covers."""
    trace = t.trace()
    start, end = trace.starts[0] // MS, trace.ends[0] // MS
    kids = [(trace.starts[c] // MS, trace.ends[c] // MS) for c in trace.children[0]]
    uncovered = sum(1 for ms in range(start, end) if not any(a <= ms < b for a, b in kids))
    assert self_times(trace)[0] == uncovered * MS
