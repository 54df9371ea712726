"""Two traces laid on one tree, merged by path (see :mod:`.paths`).

Each node of the merged tree is a path of (service, operation) steps from the root,
with its count, total and self time in trace A and in trace B, and whether the path
is in A only, in B only, or in both. Siblings come in order of their biggest time
difference, so reading the tree top down answers "where did the time go".
"""

from __future__ import annotations

from dataclasses import dataclass

from cvtrace.viewer.analyses.paths import TOP, PathTree, depth_first, path_tree
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


@dataclass(frozen=True)
class CompareNode:
    """A path in the merged tree."""

    id: int
    parent: int
    """The id of the node one step up, or -1 at the top."""
    service: str
    operation: str
    depth: int
    a: Side | None
    b: Side | None

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


def _side(tree: PathTree, node: int) -> Side | None:
    if node < 0:
        return None
    return Side(
        tree.count[node],
        tree.total_ns[node],
        tree.self_ns[node],
        tree.errors[node],
        tree.first_span[node],
    )


def compare_traces(a: TraceSpans, b: TraceSpans) -> list[CompareNode]:
    """Return the merged tree of two traces, depth first.

    Siblings are ordered by the absolute difference of their total time, biggest
    first (then by service and operation). Node ids are positions in the merged tree
    before that ordering; ``parent`` refers to them.
    """
    merged = PathTree()  # the union of the paths; its counts are not used
    in_a: list[int] = []
    in_b: list[int] = []
    trees = (path_tree(a), path_tree(b))
    for side, tree in enumerate(trees):
        mapping = [TOP] * len(tree)
        for node in range(len(tree)):  # parents come before their children
            parent = tree.parent[node]
            merged_id = merged.intern(
                mapping[parent] if parent != TOP else TOP,
                tree.service[node],
                tree.operation[node],
            )
            mapping[node] = merged_id
            while len(in_a) <= merged_id:
                in_a.append(-1)
                in_b.append(-1)
            (in_a if side == 0 else in_b)[merged_id] = node
    tree_a, tree_b = trees

    def total_diff(m: int) -> int:
        return (tree_b.total_ns[in_b[m]] if in_b[m] >= 0 else 0) - (
            tree_a.total_ns[in_a[m]] if in_a[m] >= 0 else 0
        )

    order = depth_first(
        merged.parent, lambda m: (-abs(total_diff(m)), merged.service[m], merged.operation[m])
    )
    return [
        CompareNode(
            m,
            merged.parent[m],
            merged.service[m],
            merged.operation[m],
            merged.depth[m],
            _side(tree_a, in_a[m]),
            _side(tree_b, in_b[m]),
        )
        for m in order
    ]
