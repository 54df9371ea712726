"""A trace's shape: its root operation and the set of (service, operation) pairs in it.

Two traces have the same shape when both are equal: the same kind of request doing
the same kinds of work, however many times each (an N+1 of 300 queries and one of
30 have the same shape). Comparing an outlier with a sibling of the same shape shows
what made it slow, not what made it different.
"""

from __future__ import annotations

from typing import NamedTuple

from cvtrace.viewer.analyses.spans import TraceSpans

__all__ = ["Shape", "trace_shape"]


class Shape(NamedTuple):
    """What two traces must share to have the same shape."""

    root: tuple[str, str] | None
    """(service, operation) of the main root; None for an empty trace."""
    pairs: frozenset[tuple[str, str]]
    """Every (service, operation) in the trace."""

    @property
    def services(self) -> frozenset[str]:
        """Return the services in the trace."""
        return frozenset(service for service, _ in self.pairs)


def trace_shape(trace: TraceSpans) -> Shape:
    """Return the shape of a trace."""
    root = trace.main_root()
    return Shape(
        None if root is None else (trace.services[root], trace.names[root]),
        frozenset(zip(trace.services, trace.names, strict=True)),
    )
