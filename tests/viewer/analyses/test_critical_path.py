"""The critical path on hand-built traces with known answers, and its tiling property."""

from __future__ import annotations

import itertools
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from cvtrace.viewer.analyses.critical_path import Section, critical_path
from cvtrace.viewer.analyses.spans import ROOT, TraceSpans
from tests.viewer.analyses.build import MS, TraceBuilder, ns, sid


def path(t: TraceBuilder) -> list[tuple[str, float, float]]:
    """The critical path as (span name, start ms, end ms) from T0."""
    trace = t.trace()
    return [
        (trace.names[s.span], (s.start_ns - ns(0)) / MS, (s.end_ns - ns(0)) / MS)
        for s in critical_path(trace)
    ]


class TestKnownAnswers:
    def test_sequential_children_are_all_on_the_path(self) -> None:
        t = TraceBuilder()
        root = t.add("root", 0, 10)
        t.add("a", 1, 4, root)
        t.add("b", 4, 8, root)  # starts when a ends: both block the root
        assert path(t) == [("root", 0, 1), ("a", 1, 4), ("b", 4, 8), ("root", 8, 10)]

    def test_parallel_children_only_the_last_to_finish(self) -> None:
        t = TraceBuilder()
        root = t.add("root", 0, 10)
        t.add("long", 1, 9, root)
        t.add("short", 2, 5, root)  # runs while long runs: never waited for
        assert path(t) == [("root", 0, 1), ("long", 1, 9), ("root", 9, 10)]

    def test_parallel_children_last_finishing_wins_even_if_shorter(self) -> None:
        t = TraceBuilder()
        root = t.add("root", 0, 10)
        t.add("a", 1, 6, root)
        t.add("b", 2, 8, root)
        assert path(t) == [("root", 0, 2), ("b", 2, 8), ("root", 8, 10)]

    def test_nested_sequential_grandchildren(self) -> None:
        t = TraceBuilder()
        root = t.add("root", 0, 10)
        a = t.add("a", 1, 9, root)
        t.add("b", 2, 5, a)
        t.add("c", 6, 8, a)
        assert path(t) == [
            ("root", 0, 1),
            ("a", 1, 2),
            ("b", 2, 5),
            ("a", 5, 6),
            ("c", 6, 8),
            ("a", 8, 9),
            ("root", 9, 10),
        ]

    def test_a_child_outliving_its_parent_is_clipped_to_it(self) -> None:
        t = TraceBuilder()
        root = t.add("root", 0, 10)
        t.add("late", 2, 14, root)
        assert path(t) == [("root", 0, 2), ("late", 2, 10)]

    def test_a_child_starting_before_its_parent_is_clipped_to_it(self) -> None:
        t = TraceBuilder()
        root = t.add("root", 0, 10)
        t.add("early", -3, 4, root)
        assert path(t) == [("early", 0, 4), ("root", 4, 10)]

    def test_a_child_entirely_outside_its_parent_is_left_out_with_its_children(self) -> None:
        t = TraceBuilder()
        root = t.add("root", 0, 10)
        outside = t.add("outside", 12, 15, root)
        t.add("below outside", 13, 14, outside)
        a = t.add("a", 5, 14, root)  # clipped to 5..10
        t.add("beyond a", 11, 13, a)  # outside a's clipped time
        assert path(t) == [("root", 0, 5), ("a", 5, 10)]

    def test_a_linked_span_is_not_a_child(self) -> None:
        """FOLLOWS_FROM (a link) is not CHILD_OF: the linked span is its own root."""
        t = TraceBuilder()
        root = t.add("root", 0, 10)
        t.add("linked", 2, 8, links=[root])
        assert path(t) == [("root", 0, 10)]

    def test_a_span_with_a_parent_and_a_link_follows_its_parent(self) -> None:
        t = TraceBuilder()
        root = t.add("root", 0, 10)
        other = t.add("other root", 0, 1)
        t.add("child", 2, 8, root, links=[other])
        assert path(t) == [("root", 0, 2), ("child", 2, 8), ("root", 8, 10)]

    def test_orphans_are_not_on_the_roots_path(self) -> None:
        t = TraceBuilder()
        root = t.add("root", 0, 10)
        t.add("orphan", 1, 9, sid(99))
        t.add("a", 3, 4, root)
        assert path(t) == [("root", 0, 3), ("a", 3, 4), ("root", 4, 10)]

    def test_without_a_root_the_earliest_orphan_is_followed(self) -> None:
        t = TraceBuilder()
        late = t.add("late orphan", 5, 20, sid(99))
        early = t.add("early orphan", 1, 6, sid(98))
        t.add("under late", 6, 7, late)
        t.add("under early", 2, 3, early)
        assert path(t) == [("early orphan", 1, 2), ("under early", 2, 3), ("early orphan", 3, 6)]

    def test_several_roots_the_earliest_is_the_trace(self) -> None:
        t = TraceBuilder()
        t.add("second", 5, 30)
        first = t.add("first", 0, 10)
        t.add("a", 2, 3, first)
        assert path(t) == [("first", 0, 2), ("a", 2, 3), ("first", 3, 10)]

    def test_several_roots_starting_together_the_longest_is_the_trace(self) -> None:
        t = TraceBuilder()
        t.add("short", 0, 5)
        t.add("long", 0, 10)
        assert path(t) == [("long", 0, 10)]

    def test_equal_starts(self) -> None:
        t = TraceBuilder()
        root = t.add("root", 0, 10)
        t.add("a", 2, 6, root)
        t.add("b", 2, 8, root)
        assert path(t) == [("root", 0, 2), ("b", 2, 8), ("root", 8, 10)]

    def test_equal_ends_the_earlier_start_is_taken(self) -> None:
        t = TraceBuilder()
        root = t.add("root", 0, 10)
        t.add("late start", 4, 8, root)
        t.add("early start", 2, 8, root)
        assert path(t) == [("root", 0, 2), ("early start", 2, 8), ("root", 8, 10)]

    def test_zero_length_spans_take_no_time(self) -> None:
        t = TraceBuilder()
        root = t.add("root", 0, 10)
        t.add("instant", 5, 5, root)
        t.add("a", 1, 3, root)
        assert path(t) == [("root", 0, 1), ("a", 1, 3), ("root", 3, 10)]

    def test_a_zero_length_root_has_an_empty_path(self) -> None:
        t = TraceBuilder()
        root = t.add("root", 5, 5)
        t.add("instant child", 5, 5, root)
        assert path(t) == []

    def test_an_end_before_the_start_counts_as_zero_length(self) -> None:
        t = TraceBuilder()
        root = t.add("root", 0, 10)
        t.add("backwards", 6, 2, root)
        assert path(t) == [("root", 0, 10)]

    def test_an_empty_trace_has_no_path(self) -> None:
        assert critical_path(TraceBuilder().trace()) == []

    def test_a_deep_trace_needs_no_recursion(self) -> None:
        t = TraceBuilder()
        depth = sys.getrecursionlimit() + 100
        parent = None
        for level in range(depth):
            parent = t.add(f"level {level}", level * 0.001, 100 - level * 0.001, parent)
        sections = critical_path(t.trace())
        assert len(sections) == 2 * depth - 1  # down one side, up the other
        assert sum(s.end_ns - s.start_ns for s in sections) == 100 * MS


# -- the tiling property on random traces ------------------------------------------


@st.composite
def random_traces(draw: st.DrawFn) -> TraceBuilder:
    """Random trees: children anywhere in time (skew), zero lengths, orphans, roots."""
    t = TraceBuilder()
    count = draw(st.integers(1, 40))
    ids: list[bytes] = []
    for i in range(count):
        start = draw(st.integers(0, 100))
        length = draw(st.sampled_from([0, 0, 1, 2, 5, 10, 30, 60]))
        choice = draw(st.integers(-2, len(ids) - 1)) if ids else -1
        if choice == -2:
            parent: bytes | None = sid(10_000 + i)  # an orphan
        elif choice == -1:
            parent = None  # another root
        else:
            parent = ids[choice]
        ids.append(t.add(f"s{i}", start, start + length, parent))
    return t


def assert_tiles(trace: TraceSpans, sections: list[Section]) -> None:
    root = trace.main_root()
    assert root is not None
    duration = trace.ends[root] - trace.starts[root]
    assert sum(s.end_ns - s.start_ns for s in sections) == duration
    if duration == 0:
        assert sections == []
        return
    assert sections[0].start_ns == trace.starts[root]
    assert sections[-1].end_ns == trace.ends[root]
    for before, after in itertools.pairwise(sections):
        assert before.end_ns == after.start_ns  # contiguous, in time order
        assert before.span != after.span  # merged when the same span continues
    for s in sections:
        assert s.start_ns < s.end_ns
        # within the span's own time, and the span is the root or below it
        assert trace.starts[s.span] <= s.start_ns
        assert s.end_ns <= trace.ends[s.span]
        i = s.span
        while trace.parents[i] != ROOT:
            i = trace.parents[i]
        assert i == root


@settings(max_examples=400, deadline=None)
@given(random_traces())
def test_sections_tile_the_root_exactly(t: TraceBuilder) -> None:
    trace = t.trace()
    assert_tiles(trace, critical_path(trace))


@settings(max_examples=200, deadline=None)
@given(random_traces())
def test_each_section_is_the_deepest_waited_for_span(t: TraceBuilder) -> None:
    """A section of span S: no child of S that is on the path overlaps it."""
    trace = t.trace()
    sections = critical_path(trace)
    on_path = {s.span for s in sections}
    for s in sections:
        for child in trace.children[s.span]:
            if child in on_path:
                child_start = max(trace.starts[child], trace.starts[s.span])
                child_end = min(trace.ends[child], trace.ends[s.span])
                assert child_end <= s.start_ns or child_start >= s.end_ns
