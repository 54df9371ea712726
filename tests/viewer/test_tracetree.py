"""A trace's spans placed in a tree (tree_rows), and tree_marks: the orphans and skewed
spans of tree_rows, from ids and times alone."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from cvtrace.store import SpanStore, StoredSpan
from cvtrace.viewer.tracetree import max_depth, tree_marks, tree_rows
from tests.viewer.support import T0_NS, SpanSpec, make_request, new_trace_id

IDS = [bytes([i]) * 8 for i in range(1, 9)]
SPANS = st.lists(
    st.tuples(
        st.sampled_from(IDS),  # few ids: duplicates, loops and self-parents happen
        st.sampled_from([b"", bytes(8), b"\xff" * 8, *IDS]),  # none, zero, missing, any
        st.integers(0, 50),
        st.integers(0, 50),
    ),
    max_size=25,
)


def stored(span_id: bytes, parent: bytes, start: int, length: int) -> StoredSpan:
    span = Span(
        trace_id=b"\x01" * 16,
        span_id=span_id,
        parent_span_id=parent,
        start_time_unix_nano=start,
        end_time_unix_nano=start + length,
    )
    return StoredSpan(span, Resource(), "", InstrumentationScope(), "", "svc")


@settings(max_examples=200, deadline=None)
@given(SPANS)
def test_marks_are_those_of_the_tree(specs: list[tuple[bytes, bytes, int, int]]) -> None:
    spans = [stored(*spec) for spec in specs]
    rows = tree_rows(spans)
    orphans, skewed = tree_marks(
        [s.span.span_id for s in spans],
        [s.span.parent_span_id for s in spans],
        [s.span.start_time_unix_nano for s in spans],
        [s.span.end_time_unix_nano for s in spans],
    )
    assert orphans == {r.position for r in rows if r.orphan}
    assert skewed == {r.position for r in rows if r.skewed}


def test_a_parent_loop_is_shown_from_its_earliest_span() -> None:
    a, b = IDS[0], IDS[1]
    spans = [stored(a, b, 10, 5), stored(b, a, 5, 1)]
    assert tree_marks([a, b], [b, a], [10, 5], [15, 6]) == ({1}, {0})
    assert [(r.position, r.orphan, r.skewed) for r in tree_rows(spans)] == [
        (1, True, False),
        (0, False, True),
    ]


def written(store: SpanStore, specs: list[SpanSpec]) -> list[StoredSpan]:
    store.write_request(make_request(specs))
    return store.get_trace(specs[0].trace_id)


def test_depth_first_children_by_start(store: SpanStore) -> None:
    trace_id = new_trace_id()
    root = SpanSpec("root", trace_id, duration_ns=10_000_000)
    b = SpanSpec("b", trace_id, parent_span_id=root.span_id, start_ns=T0_NS + 5)
    a = SpanSpec("a", trace_id, parent_span_id=root.span_id, start_ns=T0_NS + 1)
    a1 = SpanSpec("a1", trace_id, parent_span_id=a.span_id, start_ns=T0_NS + 2)
    rows = tree_rows(written(store, [b, a1, root, a]))
    assert [(r.stored.span.name, r.depth) for r in rows] == [
        ("root", 0),
        ("a", 1),
        ("a1", 2),
        ("b", 1),
    ]
    assert max_depth(rows) == 3
    assert max_depth([]) == 0


def test_orphans_and_skew_kept_and_marked(store: SpanStore) -> None:
    trace_id = new_trace_id()
    root = SpanSpec("root", trace_id, duration_ns=1000)
    rows = tree_rows(
        written(
            store,
            [
                root,
                SpanSpec("lost", trace_id, parent_span_id=b"\x07" * 8, start_ns=T0_NS + 1),
                SpanSpec("early", trace_id, parent_span_id=root.span_id, start_ns=T0_NS - 100),
            ],
        )
    )
    marks = {r.stored.span.name: (r.depth, r.orphan, r.skewed) for r in rows}
    assert marks == {"root": (0, False, False), "early": (1, False, True), "lost": (0, True, False)}


def test_parent_loop_is_shown_not_dropped(store: SpanStore) -> None:
    trace_id = new_trace_id()
    a = SpanSpec("a", trace_id)
    b = SpanSpec("b", trace_id, parent_span_id=a.span_id, start_ns=T0_NS + 1)
    a.parent_span_id = b.span_id
    rows = tree_rows(written(store, [a, b]))
    assert [(r.stored.span.name, r.depth) for r in rows] == [("a", 0), ("b", 1)]
    assert rows[0].orphan
