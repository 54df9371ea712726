"""A trace as columns: the tree it forms is the waterfall's."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cvtrace.viewer.analyses.spans import ROOT, trace_spans
from cvtrace.viewer.tracetree import tree_rows
from tests.viewer.analyses.build import CLIENT, CONSUMER, SERVER, TraceBuilder, sid


def test_roots_orphans_and_children() -> None:
    t = TraceBuilder()
    root = t.add("root", 0, 10)
    child = t.add("child", 1, 2, root)
    t.add("orphan", 3, 4, sid(99))
    t.add("self parent", 3, 4, span_id=sid(50), parent=sid(50))
    trace = t.trace()
    assert trace.parents == [ROOT, 0, ROOT, ROOT]
    assert trace.orphans == [False, False, True, True]
    assert trace.children[0] == (1,)
    assert trace.main_root() == 0
    assert trace.span_ids[1] == child


def test_a_duplicated_span_id_attaches_children_to_the_first() -> None:
    t = TraceBuilder()
    t.add("first", 0, 10, span_id=sid(7))
    t.add("second", 0, 10, span_id=sid(7))
    t.add("child", 1, 2, sid(7))
    assert t.trace().parents == [ROOT, ROOT, 0]


def test_a_parent_loop_is_cut_at_its_earliest_span() -> None:
    t = TraceBuilder()
    t.add("a", 2, 5, sid(2), span_id=sid(1))
    t.add("b", 1, 5, sid(1), span_id=sid(2))  # a and b name each other
    t.add("c", 3, 4, sid(1), span_id=sid(3))
    trace = t.trace()
    assert trace.parents == [1, ROOT, 0]
    assert trace.orphans == [False, True, False]
    assert trace.named_parents == [1, 0, 0]  # as named, loop and all


def test_entry_spans() -> None:
    t = TraceBuilder()
    root = t.add("root", 0, 10, kind=CLIENT)
    t.add("server", 1, 2, root, kind=SERVER)
    t.add("consumer", 1, 2, root, kind=CONSUMER)
    t.add("internal", 1, 2, root)
    t.add("orphan", 1, 2, sid(99))
    trace = t.trace()
    assert [trace.is_entry(i) for i in range(5)] == [True, True, True, False, False]


@st.composite
def tangled(draw: st.DrawFn) -> TraceBuilder:
    """Random traces with orphans, duplicated ids and parent loops."""
    t = TraceBuilder()
    count = draw(st.integers(1, 30))
    for i in range(count):
        span_id = sid(draw(st.integers(1, count + 2)))  # duplicates happen
        parent = draw(st.one_of(st.none(), st.integers(1, count + 4).map(sid)))
        start = draw(st.integers(0, 20))
        t.add(f"s{i}", start, start + draw(st.integers(0, 5)), parent, span_id=span_id)
    return t


@settings(max_examples=300, deadline=None)
@given(tangled())
def test_the_tree_is_the_waterfalls(t: TraceBuilder) -> None:
    """Each span's parent is the row above it one level up in tree_rows, or none."""
    trace = trace_spans(t.spans)
    rows = tree_rows(t.spans)
    assert sorted(r.position for r in rows) == list(range(len(t.spans)))
    above: list[int] = []
    for row in rows:
        del above[row.depth :]
        assert trace.parents[row.position] == (above[-1] if above else ROOT)
        assert trace.orphans[row.position] == row.orphan
        above.append(row.position)
