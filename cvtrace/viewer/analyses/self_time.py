"""Self time: the part of a span's duration that none of its children covers.

A span's self time is its duration minus the union of its children's intervals,
each clipped to the span: children that overlap (parallel calls) are counted once,
the part of a child outside its parent (clock skew, a child outliving its parent)
is not subtracted, so self time is never negative and never more than the duration.
Only children count, not deeper descendants: a grandchild lies within its parent's
time unless clocks are skewed, and then it is its parent's business.
"""

from __future__ import annotations

from cvtrace.viewer.analyses.spans import TraceSpans

__all__ = ["self_times"]


def self_times(trace: TraceSpans) -> list[int]:
    """Return every span's self time in nanoseconds, by span index."""
    starts, ends = trace.starts, trace.ends
    out = [end - start for start, end in zip(starts, ends, strict=True)]
    for parent, kids in enumerate(trace.children):
        if not kids:
            continue
        low, high = starts[parent], ends[parent]
        if len(kids) == 1:  # the common case: no sorting, no merging
            child = kids[0]
            covered = min(ends[child], high) - max(starts[child], low)
            if covered > 0:
                out[parent] -= covered
            continue
        intervals = sorted((max(starts[c], low), min(ends[c], high)) for c in kids if ends[c] > low)
        covered = 0
        run_start = run_end = low
        for start, end in intervals:
            if start >= end:
                continue
            if start > run_end:
                covered += run_end - run_start
                run_start, run_end = start, end
            elif end > run_end:
                run_end = end
        covered += run_end - run_start
        out[parent] -= covered
    return out
