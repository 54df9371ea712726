"""Spans merged by path: the trace's shape as a tree of (service, operation) steps.

A span's path is the (service, operation) of each span from its root down to it.
Spans on the same path are one node, with their count, total time and self time:
the 316 identical queries of an N+1 are one node of count 316. This tree is the
flame graph of a trace (width = total or self time) and what :mod:`.compare` lays
two traces on. Roots and orphans start paths of their own.

The tree is kept as columns (index ``i`` of each list is node ``i``), not an object
per node: a 100,000-span trace can have tens of thousands of paths, and an object
(and a list of children) per node made the garbage collector the largest cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from cvtrace.viewer.analyses.self_time import self_times
from cvtrace.viewer.analyses.spans import ROOT, TraceSpans

__all__ = ["PathNode", "PathTree", "depth_first", "path_tree"]

TOP = -1
"""The parent of the nodes at the top (the paths of roots and orphans)."""


class PathNode(NamedTuple):
    """The spans of a trace that share one path; times in nanoseconds."""

    id: int
    parent: int
    """The id of the node one step up, or :data:`TOP`."""
    service: str
    operation: str
    depth: int
    spans: int
    """How many spans share the path."""
    total_ns: int
    self_ns: int
    errors: int
    first_span: int
    """Index of the node's earliest span (to link to it)."""


class PathTree:
    """Nodes keyed by (parent node, service, operation), as columns.

    ``intern`` returns the node of a step, creating it the first time, so a parent's
    id is always lower than its children's.
    """

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.service: list[str] = []
        self.operation: list[str] = []
        self.depth: list[int] = []
        self.count: list[int] = []
        self.total_ns: list[int] = []
        self.self_ns: list[int] = []
        self.errors: list[int] = []
        self.first_span: list[int] = []
        self._ids: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.parent)

    def node(self, i: int) -> PathNode:
        """Return node ``i`` as one record."""
        return PathNode(
            i,
            self.parent[i],
            self.service[i],
            self.operation[i],
            self.depth[i],
            self.count[i],
            self.total_ns[i],
            self.self_ns[i],
            self.errors[i],
            self.first_span[i],
        )

    def intern(self, parent: int, service: str, operation: str) -> int:
        """Return the id of the node for ``(service, operation)`` under ``parent``."""
        key = f"{parent}\x1f{service}\x1f{operation}"  # a string: nothing for the GC to track
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self.parent)
            self.parent.append(parent)
            self.service.append(service)
            self.operation.append(operation)
            self.depth.append(self.depth[parent] + 1 if parent != TOP else 0)
            self.count.append(0)
            self.total_ns.append(0)
            self.self_ns.append(0)
            self.errors.append(0)
            self.first_span.append(-1)
        return found

    def add(self, trace: TraceSpans) -> list[int]:
        """Add one trace's spans to the tree; return each span's node id."""
        node_of = [TOP] * len(trace)
        own = self_times(trace)
        children, parents = trace.children, trace.parents
        services, names, starts, ends = trace.services, trace.names, trace.starts, trace.ends
        errors, span_ids = trace.errors, trace.span_ids
        count, total, self_ns, error_count, first = (
            self.count,
            self.total_ns,
            self.self_ns,
            self.errors,
            self.first_span,
        )
        stack = [i for i, parent in enumerate(parents) if parent == ROOT]
        while stack:
            i = stack.pop()
            parent = parents[i]
            node = self.intern(node_of[parent] if parent != ROOT else TOP, services[i], names[i])
            node_of[i] = node
            count[node] += 1
            total[node] += ends[i] - starts[i]
            self_ns[node] += own[i]
            if errors[i]:
                error_count[node] += 1
            earliest = first[node]
            if (
                earliest < 0
                or starts[i] < starts[earliest]
                or (starts[i] == starts[earliest] and span_ids[i] < span_ids[earliest])
            ):
                first[node] = i
            stack.extend(children[i])
        return node_of


def path_tree(trace: TraceSpans) -> PathTree:
    """Return one trace's spans merged by path."""
    tree = PathTree()
    tree.add(trace)
    return tree


def depth_first(parents: Sequence[int], key: Callable[[int], Any]) -> list[int]:
    """Return the ids of a tree given by ``parents`` (:data:`TOP` at the top), depth first.

    Each node comes before its children; siblings are in the order of ``key``.
    """
    count = len(parents)
    # children grouped by parent (a counting sort), then each group sorted by key
    sizes = [0] * (count + 1)
    for parent in parents:
        sizes[parent + 1] += 1
    begin = [0] * (count + 2)
    for i in range(count + 1):
        begin[i + 1] = begin[i] + sizes[i]
    filled = begin[:]
    grouped = [0] * count
    for node, parent in enumerate(parents):
        grouped[filled[parent + 1]] = node
        filled[parent + 1] += 1
    for slot in range(count + 1):
        a, b = begin[slot], begin[slot + 1]
        if b - a > 1:
            grouped[a:b] = sorted(grouped[a:b], key=key)
    out: list[int] = []
    stack = list(reversed(grouped[begin[0] : begin[1]]))
    while stack:
        node = stack.pop()
        out.append(node)
        a, b = begin[node + 1], begin[node + 2]
        if b > a:
            stack.extend(reversed(grouped[a:b]))
    return out
