"""The critical path of a trace: which span was doing the work at each moment.

Jaeger's definition: walk back in time from the root's end. At each moment the path
is in some span; it passes to that span's *last-finishing child* that ends at or
before the current moment, runs through the child back to the child's start, and
returns to the parent there. Time of a span not covered by the child the path went
through is the span's own. So the sections tile the root exactly: they are
contiguous, in time order, and their lengths add up to the root's duration.

Choices, where traces are not tidy:

- **Which root.** The trace's main root (:meth:`TraceSpans.main_root`): the earliest
  span without a parent, the longest on a tie; without one (the root has not
  arrived), the earliest orphan. Other roots and orphans are not the root's children,
  so they are never on its path.
- **Clock skew.** A child is clipped to its parent's (clipped) time: the part outside
  the parent is not on the path. A child entirely outside its parent is left out, with
  its descendants.
- **Links** (``FOLLOWS_FROM``) are not parent-child relations: a linked span is not
  on the path of the span it links to (Jaeger drops ``FOLLOWS_FROM`` children too).
- **Ties.** A child that ends exactly when the child the path just left begins is on
  the path (Jaeger requires it to end strictly before, which drops back-to-back
  sequential children). Of children ending at the same moment, the one that started
  first is taken, then the lower span id.
- Zero-length sections are left out, and consecutive sections of one span merged.
"""

from __future__ import annotations

from typing import NamedTuple

from cvtrace.viewer.analyses.spans import TraceSpans

__all__ = ["Section", "critical_path"]


class Section(NamedTuple):
    """A stretch of time during which span ``span`` (an index) is on the critical path."""

    span: int
    start_ns: int
    end_ns: int


def critical_path(trace: TraceSpans, root: int | None = None) -> list[Section]:
    """Return the critical path of ``root`` (default: the main root), in time order.

    Runs in O(n log n) for n spans, without recursion (traces may be deep).
    """
    if root is None:
        root = trace.main_root()
    if root is None:
        return []
    children = trace.children
    span_ids = trace.span_ids
    # clip every span of the root's subtree to its parent's clipped time, top down
    starts: dict[int, int] = {root: trace.starts[root]}
    ends: dict[int, int] = {root: trace.ends[root]}
    kept: dict[int, list[int]] = {}
    stack = [root]
    while stack:
        parent = stack.pop()
        low, high = starts[parent], ends[parent]
        inside = []
        for child in children[parent]:
            start = max(trace.starts[child], low)
            end = min(trace.ends[child], high)
            if start > end:  # entirely outside its parent: not on the path
                continue
            starts[child], ends[child] = start, end
            inside.append(child)
            stack.append(child)
        # last-finishing first; on equal ends the earlier start, then the lower id
        inside.sort(key=lambda c: (-ends[c], starts[c], span_ids[c]))
        kept[parent] = inside

    backwards: list[Section] = []
    boundary = ends[root]
    path = [root]
    next_child = {root: 0}
    while path:
        current = path[-1]
        candidates = kept[current]
        position = next_child[current]
        # children ending after the boundary overlap the part already walked: never taken
        while position < len(candidates) and ends[candidates[position]] > boundary:
            position += 1
        if position < len(candidates):
            child = candidates[position]
            next_child[current] = position + 1
            _add(backwards, current, ends[child], boundary)
            boundary = ends[child]
            path.append(child)
            next_child[child] = 0
        else:
            next_child[current] = position
            _add(backwards, current, starts[current], boundary)
            boundary = starts[current]
            path.pop()
    backwards.reverse()
    return backwards


def _add(sections: list[Section], index: int, start: int, end: int) -> None:
    """Add a section walking backwards: skip empty ones, merge with the same span's last."""
    if end <= start:
        return
    if sections and sections[-1].span == index and sections[-1].start_ns == end:
        sections[-1] = Section(index, start, sections[-1].end_ns)
    else:
        sections.append(Section(index, start, end))
