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

Cost: only the spans the path enters have their children clipped and sorted (the
path of a 100,000-span trace enters a handful), so it is about a walk over those
children, O(n log n) at worst (a chain), without recursion.
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
    """Return the critical path of ``root`` (default: the main root), in time order."""
    if root is None:
        root = trace.main_root()
    if root is None:
        return []
    children, starts, ends, span_ids = trace.children, trace.starts, trace.ends, trace.span_ids
    # clipped times of the spans entered and of their children (the candidates)
    low = {root: starts[root]}
    high = {root: ends[root]}
    candidates: dict[int, list[int]] = {}
    taken: dict[int, int] = {}

    def enter(span: int) -> None:
        """Clip ``span``'s children to its time; sort them last-finishing first."""
        floor, ceiling = low[span], high[span]
        inside = []
        for child in children[span]:
            start = starts[child]
            end = ends[child]
            if start < floor:
                start = floor
            if end > ceiling:
                end = ceiling
            if start > end:  # entirely outside its parent: not on the path
                continue
            low[child], high[child] = start, end
            inside.append(child)
        # on equal ends the earlier start, then the lower id
        inside.sort(key=lambda c: (-high[c], low[c], span_ids[c]))
        candidates[span] = inside
        taken[span] = 0

    backwards: list[Section] = []
    boundary = high[root]
    path = [root]
    enter(root)
    while path:
        current = path[-1]
        inside = candidates[current]
        position = taken[current]
        # children ending after the boundary overlap the part walked: never taken
        while position < len(inside) and high[inside[position]] > boundary:
            position += 1
        if position < len(inside):
            child = inside[position]
            taken[current] = position + 1
            _add(backwards, current, high[child], boundary)
            boundary = high[child]
            path.append(child)
            enter(child)
        else:
            taken[current] = position
            _add(backwards, current, low[current], boundary)
            boundary = low[current]
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
