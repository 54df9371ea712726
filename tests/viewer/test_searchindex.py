"""The in-trace search's attribute index, built without a server."""

from __future__ import annotations

from typing import Any

from cvtrace.store import SpanStore
from cvtrace.viewer.searchindex import MAX_VALUE, search_index
from cvtrace.viewer.tracetree import tree_rows
from tests.viewer.support import T0_NS, SpanSpec, new_trace_id
from tests.viewer.test_figures import column, stored


def pairs_of(index: dict[str, Any], row: int) -> set[str]:
    """Return the pairs of one row: its own, then its resource's."""
    first = column(index, "first")
    ids = column(index, "pairIds")
    own = {index["pairs"][int(i)] for i in ids[int(first[row]) : int(first[row + 1])]}
    resource = index["resources"][int(column(index, "resource")[row])]
    return own | {index["pairs"][i] for i in resource}


def test_pairs_per_row_in_waterfall_order(store: SpanStore) -> None:
    trace_id = new_trace_id()
    root = SpanSpec(
        "GET /x",
        trace_id,
        start_ns=T0_NS,
        duration_ns=10_000_000,
        service="web",
        attrs={"http.route": "/X", "n": 3},
    )
    late = SpanSpec(
        "late",
        trace_id,
        parent_span_id=root.span_id,
        start_ns=T0_NS + 5_000_000,
        service="db",
        attrs={"db.query.text": "SELECT 1"},
        events=[("exception", T0_NS + 5_000_001, {})],
        error=True,
    )
    early = SpanSpec(
        "early",
        trace_id,
        parent_span_id=root.span_id,
        start_ns=T0_NS + 1_000_000,
        service="db",
        attrs={"db.query.text": "SELECT 1"},
    )
    spans = stored(store, [root, late, early])
    rows = tree_rows(spans)
    index = search_index(rows)
    assert index["rowCount"] == 3
    assert [r.stored.span.name for r in rows] == ["GET /x", "early", "late"]
    # lowercased, key and value apart, each distinct pair once
    assert pairs_of(index, 0) == {"http.route\0/x", "n\x003", "service.name\0web", "host.name\0box"}
    assert pairs_of(index, 1) == {"db.query.text\0select 1", "service.name\0db", "host.name\0box"}
    assert index["pairs"].count("db.query.text\0select 1") == 1
    # events' names and the status message, with an empty key
    assert "\0exception" in pairs_of(index, 2)
    assert column(index, "status") == [0, 0, 2]
    # one list per resource, shared by its spans
    assert len(index["resources"]) == 2
    assert column(index, "resource")[1] == column(index, "resource")[2]


def test_long_values_are_searched_in_their_start(store: SpanStore) -> None:
    spec = SpanSpec("q", new_trace_id(), attrs={"db.query.text": "x" * (MAX_VALUE + 500) + "END"})
    spans = stored(store, [spec])
    index = search_index(tree_rows(spans))
    (text,) = [p for p in index["pairs"] if p.startswith("db.query.text")]
    assert text == "db.query.text\0" + "x" * MAX_VALUE


def test_empty() -> None:
    index = search_index([])
    assert index["rowCount"] == 0
    assert column(index, "first") == [0]
    assert index["pairs"] == []
