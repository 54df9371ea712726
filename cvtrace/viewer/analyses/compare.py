"""Two traces laid on one tree, merged by path (see :mod:`.paths`).

Each node of the merged tree is a path of (service, operation) steps from the root,
with its count, total and self time in trace A and in trace B, and whether the path
is in A only, in B only, or in both. Siblings come in order of their biggest time
difference, so reading the tree top down answers "where did the time go".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cvtrace.viewer.analyses.paths import PathNode, path_tree
from cvtrace.viewer.analyses.spans import TraceSpans

__all__ = ["CompareNode", "Side", "compare_traces"]


@dataclass(frozen=True)
class Side:
    """One trace's spans on a path; times in nanoseconds."""

    count: int
    total_ns: int
    self_ns: int
    errors: int
    first_span: int
    """Index of the path's earliest span in that trace."""


@dataclass
class CompareNode:
    """A path in the merged tree."""

    id: int
    parent: int
    service: str
    operation: str
    depth: int
    a: Side | None = None
    b: Side | None = None
    children: list[int] = field(default_factory=list)

    @property
    def presence(self) -> str:
        """``both``, ``a`` (only in trace A) or ``b`` (only in trace B)."""
        if self.a is not None and self.b is not None:
            return "both"
        return "a" if self.a is not None else "b"

    @property
    def total_diff_ns(self) -> int:
        """B's total time on this path minus A's."""
        return (self.b.total_ns if self.b else 0) - (self.a.total_ns if self.a else 0)

    @property
    def self_diff_ns(self) -> int:
        """B's self time on this path minus A's."""
        return (self.b.self_ns if self.b else 0) - (self.a.self_ns if self.a else 0)


def _side(node: PathNode) -> Side:
    return Side(node.count, node.total_ns, node.self_ns, node.errors, node.first_span)


def compare_traces(a: TraceSpans, b: TraceSpans) -> list[CompareNode]:
    """Return the merged tree of two traces, depth first.

    Siblings are ordered by the absolute difference of their total time, biggest
    first (then by service and operation).
    """
    merged: list[CompareNode] = []
    ids: dict[tuple[int, str, str], int] = {}
    for side, trace in (("a", a), ("b", b)):
        tree = path_tree(trace)
        mapping: dict[int, int] = {}
        for node in tree.nodes:  # parents come before their children
            parent = mapping[node.parent] if node.parent >= 0 else -1
            key = (parent, node.service, node.operation)
            merged_id = ids.get(key)
            if merged_id is None:
                merged_id = ids[key] = len(merged)
                merged.append(
                    CompareNode(merged_id, parent, node.service, node.operation, node.depth)
                )
                if parent >= 0:
                    merged[parent].children.append(merged_id)
            mapping[node.id] = merged_id
            setattr(merged[merged_id], side, _side(node))

    def order(node_ids: list[int]) -> list[int]:
        return sorted(
            node_ids,
            key=lambda n: (-abs(merged[n].total_diff_ns), merged[n].service, merged[n].operation),
        )

    out: list[CompareNode] = []
    stack = list(reversed(order([n.id for n in merged if n.parent < 0])))
    while stack:
        done = merged[stack.pop()]
        out.append(done)
        stack.extend(reversed(order(done.children)))
    return out
