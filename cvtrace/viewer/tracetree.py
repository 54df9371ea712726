"""A trace's spans in tree order: depth, orphans, clock skew, cycles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from cvtrace.store import StoredSpan


class Row(NamedTuple):
    """One span placed in the tree."""

    position: int
    """Position in the list the tree was built from."""
    stored: StoredSpan
    depth: int
    orphan: bool
    """The span names a parent that is not in the trace (or its parents loop)."""
    skewed: bool
    """The span starts before, or ends after, its parent (clock skew)."""
    start_ns: int
    end_ns: int
    span_id: bytes
    """The span's times and id, read once here: a protobuf field read costs more than
    a tuple's (~100k reads of each for a 100,000-span trace)."""


def tree_rows(spans: Sequence[StoredSpan]) -> list[Row]:
    """Return the spans in depth-first order, children by start time.

    Roots (no parent), then orphans (a parent not in the trace) come in start
    order at depth 0. Spans in a parent loop, never reached from a root, are
    shown as orphans too: nothing is dropped.
    """
    protos = [s.span for s in spans]
    starts = [p.start_time_unix_nano for p in protos]
    ends = [p.end_time_unix_nano for p in protos]
    span_ids = [p.span_id for p in protos]
    children, roots, orphans = _link(span_ids, [p.parent_span_id for p in protos])

    def start_key(i: int) -> tuple[int, bytes]:
        return (starts[i], span_ids[i])

    for kids in children.values():
        kids.sort(key=start_key)
    rows: list[Row] = []
    visited = [False] * len(spans)
    add = rows.append
    make = tuple.__new__  # Row(...) without NamedTuple's argument handling: 50k rows add up

    def walk(root: int, root_orphan: bool) -> None:
        stack: list[tuple[int, int, int]] = [(root, 0, -1)]
        pop = stack.pop
        push = stack.append
        while stack:
            i, depth, parent_index = pop()
            if visited[i]:
                continue
            visited[i] = True
            if parent_index < 0:
                orphan, skewed = root_orphan, False
            else:
                orphan = False
                skewed = starts[i] < starts[parent_index] or ends[i] > ends[parent_index]
            add(make(Row, (i, spans[i], depth, orphan, skewed, starts[i], ends[i], span_ids[i])))
            kids = children.get(i)
            if kids:
                below = depth + 1
                for kid in reversed(kids):
                    push((kid, below, i))

    for i in sorted(roots, key=start_key):
        walk(i, i in orphans)
    if not all(visited):
        for i in sorted(range(len(spans)), key=start_key):
            if not visited[i]:  # a parent loop: show it from its earliest span
                walk(i, True)
    return rows


def _link(
    span_ids: Sequence[bytes], parent_ids: Sequence[bytes]
) -> tuple[dict[int, list[int]], list[int], set[int]]:
    """Return each span's children, the roots and the orphans (roots whose parent is
    not in the trace, or is the span itself), by position."""
    by_id: dict[bytes, int] = {}
    for i, span_id in enumerate(span_ids):
        by_id.setdefault(span_id, i)
    children: dict[int, list[int]] = {}
    roots: list[int] = []
    orphans: set[int] = set()
    zero = bytes(8)
    for i, parent in enumerate(parent_ids):
        if not parent or parent == zero:
            roots.append(i)
            continue
        parent_index = by_id.get(parent)
        if parent_index is None or parent_index == i:
            roots.append(i)
            orphans.add(i)
        else:
            children.setdefault(parent_index, []).append(i)
    return children, roots, orphans


def max_depth(rows: Sequence[Row]) -> int:
    """Return the depth of the deepest row (a lone root is depth 1)."""
    return 1 + max((r.depth for r in rows), default=-1)


def tree_marks(
    span_ids: Sequence[bytes],
    parent_ids: Sequence[bytes],
    starts: Sequence[int],
    ends: Sequence[int],
) -> tuple[set[int], set[int]]:
    """Return the positions of the orphans and of the skewed spans, as :func:`tree_rows`
    marks them, from the spans' ids and times alone.

    For traces too big to hold as spans (the Jaeger API streams them): the four
    columns of a 200,000-span trace take a few tens of MB, its spans hundreds.
    """
    count = len(span_ids)
    children, roots, orphans = _link(span_ids, parent_ids)
    visited = bytearray(count)
    walk_roots: set[int] = set(roots)

    def walk(root: int) -> None:
        stack = [root]
        while stack:
            i = stack.pop()
            if visited[i]:
                continue
            visited[i] = 1
            stack.extend(children.get(i, ()))

    for i in roots:
        walk(i)
    if visited.count(0):
        unvisited = sorted(
            (i for i in range(count) if not visited[i]), key=lambda i: (starts[i], span_ids[i])
        )
        for i in unvisited:
            if not visited[i]:  # a parent loop: tree_rows shows it from its earliest span
                walk_roots.add(i)
                orphans.add(i)
                walk(i)
    skewed = {
        kid
        for parent_index, kids in children.items()
        for kid in kids
        if kid not in walk_roots
        and (starts[kid] < starts[parent_index] or ends[kid] > ends[parent_index])
    }
    return orphans, skewed
