"""tree_marks: the orphans and skewed spans of tree_rows, from ids and times alone."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from cvtrace.store import StoredSpan
from cvtrace.viewer.tracetree import tree_marks, tree_rows

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
