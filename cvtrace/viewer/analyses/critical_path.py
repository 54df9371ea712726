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
    children, span_ids = trace.children, trace.span_ids
    # clipped times; only those of the spans entered and of their children are used
    low = list(trace.starts)
    high = list(trace.ends)

    def enter(span: int) -> list[int]:
        """Clip ``span``'s children to its time; return them last-finishing first."""
        floor, ceiling = low[span], high[span]
        inside = []
        for child in children[span]:
            start = low[child]
            end = high[child]
            if start < floor:
                start = low[child] = floor
            if end > ceiling:
                end = high[child] = ceiling
            if start <= end:  # else entirely outside its parent: not on the path
                inside.append(child)
        if len(inside) < 2:
            return inside
        # by end, latest first (no key tuple per child); ties, rare, by start then id
        inside.sort(key=high.__getitem__, reverse=True)
        ends = [high[c] for c in inside]
        if len(set(ends)) < len(ends):
            first = 0
            for position in range(1, len(inside) + 1):
                if position == len(inside) or ends[position] != ends[first]:
                    if position - first > 1:
                        inside[first:position] = sorted(
                            inside[first:position], key=lambda c: (low[c], span_ids[c])
                        )
                    first = position
        return inside

    backwards: list[Section] = []
    append = backwards.append
    boundary = high[root]
    current, inside, position = root, enter(root), 0
    above: list[tuple[int, list[int], int]] = []  # the path's spans above ``current``
    while True:
        count = len(inside)
        # children ending after the boundary overlap the part walked: never taken
        while position < count and high[inside[position]] > boundary:
            position += 1
        if position < count:
            child = inside[position]
            position += 1
            end = high[child]
            if end < boundary:
                _add(backwards, current, end, boundary)
            boundary = end
            if children[child]:
                above.append((current, inside, position))
                current, inside, position = child, enter(child), 0
            else:  # a leaf: all of it is on the path, and back to the parent
                start = low[child]
                if start < end:
                    append(_new(Section, (child, start, end)))
                boundary = start
        else:
            _add(backwards, current, low[current], boundary)
            boundary = low[current]
            if not above:
                break
            current, inside, position = above.pop()
    backwards.reverse()
    return backwards


_new = tuple.__new__  # Section(...) without NamedTuple's argument handling


def _add(sections: list[Section], index: int, start: int, end: int) -> None:
    """Add a section walking backwards: skip empty ones, merge with the same span's last."""
    if end <= start:
        return
    if sections:
        last = sections[-1]
        if last[0] == index and last[1] == end:
            sections[-1] = _new(Section, (index, start, last[2]))
            return
    sections.append(_new(Section, (index, start, end)))
