"""Spans merged by path: the trace's shape as a tree of (service, operation) steps.

A span's path is the (service, operation) of each span from its root down to it.
Spans on the same path are one node, with their count, total time and self time:
the 316 identical queries of an N+1 are one node of count 316. This tree is the
flame graph of a trace (width = total or self time) and what
:mod:`.compare` lays two traces on. Roots and orphans start paths of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cvtrace.viewer.analyses.self_time import self_times
from cvtrace.viewer.analyses.spans import ROOT, TraceSpans

__all__ = ["PathNode", "PathTree", "path_tree"]


@dataclass
class PathNode:
    """The spans of a trace that share one path; times in nanoseconds."""

    id: int
    parent: int
    """The id of the node one step up, or -1 at the top."""
    service: str
    operation: str
    depth: int
    count: int = 0
    total_ns: int = 0
    self_ns: int = 0
    errors: int = 0
    first_span: int = -1
    """Index of the node's earliest span (to link to it)."""
    children: list[int] = field(default_factory=list)


class PathTree:
    """Nodes keyed by (parent node, service, operation); ids are list positions.

    ``intern`` returns the node of a step, creating it the first time, so a parent's
    id is always lower than its children's.
    """

    def __init__(self) -> None:
        self.nodes: list[PathNode] = []
        self._ids: dict[tuple[int, str, str], int] = {}

    def intern(self, parent: int, service: str, operation: str) -> int:
        """Return the id of the node for ``(service, operation)`` under ``parent``."""
        key = (parent, service, operation)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self.nodes)
            depth = self.nodes[parent].depth + 1 if parent >= 0 else 0
            self.nodes.append(PathNode(found, parent, service, operation, depth))
            if parent >= 0:
                self.nodes[parent].children.append(found)
        return found

    def tops(self) -> list[int]:
        """Return the ids of the nodes at the top (roots' and orphans' paths)."""
        return [node.id for node in self.nodes if node.parent < 0]

    def add(self, trace: TraceSpans) -> list[int]:
        """Add one trace's spans to the tree; return each span's node id."""
        node_of = [-1] * len(trace)
        own = self_times(trace)
        children = trace.children
        stack = [i for i, parent in enumerate(trace.parents) if parent == ROOT]
        services, names, starts, ends = trace.services, trace.names, trace.starts, trace.ends
        errors = trace.errors
        while stack:
            i = stack.pop()
            parent = trace.parents[i]
            node_id = self.intern(node_of[parent] if parent != ROOT else -1, services[i], names[i])
            node_of[i] = node_id
            node = self.nodes[node_id]
            node.count += 1
            node.total_ns += ends[i] - starts[i]
            node.self_ns += own[i]
            if errors[i]:
                node.errors += 1
            if node.first_span < 0 or (starts[i], trace.span_ids[i]) < (
                starts[node.first_span],
                trace.span_ids[node.first_span],
            ):
                node.first_span = i
            stack.extend(children[i])
        return node_of


def path_tree(trace: TraceSpans) -> PathTree:
    """Return one trace's spans merged by path."""
    tree = PathTree()
    tree.add(trace)
    return tree
