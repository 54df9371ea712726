"""Spans merged by path, and two traces laid on one tree."""

from __future__ import annotations

from cvtrace.viewer.analyses.compare import compare_traces
from cvtrace.viewer.analyses.paths import TOP, depth_first, path_tree
from tests.viewer.analyses.build import MS, TraceBuilder, sid


def typical() -> TraceBuilder:
    t = TraceBuilder(b"\x01" * 16)
    root = t.add("GET /circuits/<id>", 0, 10, service="web")
    t.add("SELECT circuits", 1, 2, root, service="web")
    t.add("SELECT stars", 2, 3, root, service="web")
    return t


def slow() -> TraceBuilder:
    t = TraceBuilder(b"\x02" * 16)
    root = t.add("GET /circuits/<id>", 0, 50, service="web")
    for i in range(10):
        t.add("SELECT circuits", 1 + i, 2 + i, root, service="web")
    call = t.add("POST", 15, 45, root, service="web")
    t.add("POST /render", 16, 44, call, service="preview")
    return t


def test_spans_on_one_path_merge() -> None:
    tree = path_tree(slow().trace())
    nodes = {(n.service, n.operation): n for n in map(tree.node, range(len(tree)))}
    select = nodes["web", "SELECT circuits"]
    assert (select.spans, select.total_ns, select.self_ns, select.depth) == (
        10,
        10 * MS,
        10 * MS,
        1,
    )
    render = nodes["preview", "POST /render"]
    assert (render.depth, tree.operation[render.parent]) == (2, "POST")
    assert tree.self_ns[0] == (50 - 10 - 30) * MS
    assert select.first_span == 1  # the earliest of the ten


def test_the_same_operation_under_different_parents_is_two_paths() -> None:
    t = TraceBuilder()
    root = t.add("root", 0, 10)
    a = t.add("a", 0, 5, root)
    t.add("query", 1, 2, a)
    t.add("query", 6, 7, root)
    tree = path_tree(t.trace())
    assert sorted(tree.depth[n] for n in range(len(tree)) if tree.operation[n] == "query") == [1, 2]


def test_orphans_start_paths_of_their_own() -> None:
    t = TraceBuilder()
    t.add("root", 0, 10)
    t.add("lost", 1, 2, sid(99))
    assert path_tree(t.trace()).parent == [TOP, TOP]


def test_comparison_presence_counts_and_differences() -> None:
    a, b = typical(), slow()
    nodes = compare_traces(a.trace(), b.trace())
    by_path = {(n.service, n.operation): n for n in nodes}
    root = by_path["web", "GET /circuits/<id>"]
    assert root.presence == "both"
    assert root.total_diff_ns == 40 * MS
    select = by_path["web", "SELECT circuits"]
    assert select.a is not None
    assert select.b is not None
    assert (select.a.count, select.b.count) == (1, 10)
    assert select.self_diff_ns == 9 * MS
    assert by_path["web", "SELECT stars"].presence == "a"
    assert by_path["web", "POST"].presence == "b"
    assert by_path["preview", "POST /render"].presence == "b"
    assert by_path["preview", "POST /render"].depth == 2
    # depth first, siblings by biggest time difference: POST (+30), SELECT circuits (+9),
    # SELECT stars (-1)
    assert [(n.operation, n.depth) for n in nodes] == [
        ("GET /circuits/<id>", 0),
        ("POST", 1),
        ("POST /render", 2),
        ("SELECT circuits", 1),
        ("SELECT stars", 1),
    ]
    # each side points at its own earliest span of the path
    assert root.a is not None
    assert root.b is not None
    assert root.a.first_span == 0
    assert root.b.first_span == 0


def test_a_trace_compared_with_itself_differs_nowhere() -> None:
    trace = slow().trace()
    nodes = compare_traces(trace, trace)
    assert all(n.presence == "both" and n.total_diff_ns == 0 for n in nodes)
    sides = [n.a for n in nodes if n.a is not None]
    assert len(sides) == len(nodes)
    assert sum(side.count for side in sides) == len(trace)


def test_depth_first_puts_parents_before_children_siblings_by_key() -> None:
    parents = [TOP, 0, 0, 1, TOP, 2, 1]
    assert depth_first(parents, lambda n: -n) == [4, 0, 2, 5, 1, 6, 3]
    assert depth_first(parents, lambda n: n) == [0, 1, 3, 6, 2, 5, 4]
    assert depth_first([], lambda n: n) == []
