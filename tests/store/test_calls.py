"""The store's call rows, kept on write, equal the viewer's definition of them.

``cvtrace.viewer.analyses.calls.trace_calls`` defines the entry spans and cross-service
calls of a trace; the store computes the same rows as spans arrive, in any order and
in any split across requests (a parent after its children, the caller's service
after the called one's), so the service map and RED metrics need not decode spans.
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from cvtrace.store import SpanStore
from cvtrace.viewer.analyses.calls import trace_calls
from cvtrace.viewer.analyses.spans import trace_spans
from tests.viewer.support import T0_NS, SpanSpec, make_request, new_trace_id

KINDS = [
    Span.SPAN_KIND_INTERNAL,
    Span.SPAN_KIND_SERVER,
    Span.SPAN_KIND_CLIENT,
    Span.SPAN_KIND_CONSUMER,
    Span.SPAN_KIND_UNSPECIFIED,
]
CallRow = tuple[int, int, str, str, int, bool, bool, "str | None"]


def stored_rows(path: Path) -> Counter[CallRow]:
    """Every row of the ``calls`` table, with names instead of ids."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT c.start_ns, c.duration_ns, s.name, o.name, c.flags >> 3, c.flags & 1, "
            "c.flags & 2, p.name FROM calls c JOIN operations o ON o.id = c.operation_id "
            "JOIN services s ON s.id = o.service_id LEFT JOIN services p "
            "ON p.id = c.parent_service_id"
        ).fetchall()
    finally:
        conn.close()
    return Counter((a, b, c, d, e, bool(f), bool(g), h) for a, b, c, d, e, f, g, h in rows)


def expected_rows(store: SpanStore, trace_ids: list[bytes]) -> Counter[CallRow]:
    """The rows the viewer's definition gives for the traces as stored."""
    out: Counter[CallRow] = Counter()
    for trace_id in trace_ids:
        for c in trace_calls(trace_spans(store.get_trace(trace_id))):
            out[
                (
                    c.start_ns,
                    c.duration_ns,
                    c.service,
                    c.operation,
                    c.kind,
                    c.error,
                    c.entry,
                    c.parent_service,
                )
            ] += 1
    return out


@st.composite
def traces(draw: st.DrawFn) -> list[list[SpanSpec]]:
    """A few traces over three services: random trees, kinds, orphans, errors."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        trace_id = new_trace_id()
        specs: list[SpanSpec] = []
        for _i in range(draw(st.integers(1, 12))):
            choice = draw(st.integers(-2, len(specs) - 1)) if specs else -1
            parent = (
                b"" if choice == -1 else bytes([9] * 8) if choice == -2 else specs[choice].span_id
            )
            specs.append(
                SpanSpec(
                    f"op{draw(st.integers(0, 3))}",
                    trace_id,
                    parent_span_id=parent,
                    start_ns=T0_NS + draw(st.integers(0, 10**9)),
                    duration_ns=draw(st.integers(0, 10**8)),
                    service=draw(st.sampled_from(["web", "api", "db"])),
                    kind=draw(st.sampled_from(KINDS)),
                    error=draw(st.booleans()),
                )
            )
        out.append(specs)
    return out


@settings(max_examples=120, deadline=None)
@given(traces(), st.integers(1, 6), st.randoms(use_true_random=False), st.booleans())
def test_rows_match_the_definition_however_the_spans_arrive(
    specs: list[list[SpanSpec]], pieces: int, rng: random.Random, resend: bool
) -> None:
    every = [s for trace in specs for s in trace]
    rng.shuffle(every)  # children before parents, services interleaved
    requests = [every[i::pieces] for i in range(pieces)]
    if resend:  # a span sent again is stored once, and counted once
        requests.append(every[: len(every) // 2])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spans.sqlite3"
        with SpanStore(path, max_spans=0) as store:
            for request in requests:
                if request:
                    store.write_request(make_request(request))
            assert stored_rows(path) == expected_rows(store, [t[0].trace_id for t in specs])


def test_pending_rows_wait_for_their_parent_and_are_settled(store: SpanStore) -> None:
    trace_id = new_trace_id()
    root = SpanSpec("GET /", trace_id, service="web", kind=Span.SPAN_KIND_SERVER, duration_ns=10**7)
    client = SpanSpec(
        "GET /api", trace_id, parent_span_id=root.span_id, service="web", kind=Span.SPAN_KIND_CLIENT
    )
    server = SpanSpec(
        "GET /api",
        trace_id,
        parent_span_id=client.span_id,
        service="api",
        kind=Span.SPAN_KIND_SERVER,
        error=True,
    )
    query = SpanSpec(
        "SELECT", trace_id, parent_span_id=server.span_id, service="db", kind=Span.SPAN_KIND_CLIENT
    )
    store.write_request(make_request([query]))  # the deepest first: its parent unknown
    store.write_request(make_request([server]))
    assert store.dependencies(0, 2**62) == [("api", "db", 1, 0)]
    store.write_request(make_request([root, client]))
    assert sorted(store.dependencies(0, 2**62)) == [("api", "db", 1, 0), ("web", "api", 1, 1)]
    conn = sqlite3.connect(store.path)
    assert conn.execute("SELECT count(*) FROM pending_calls").fetchone()[0] == 0
    conn.close()
    assert store.call_traces("web", "api", 0, 2**62) == [trace_id]
    assert store.call_traces("api", "web", 0, 2**62) == []


def test_entry_calls_in_a_window(store: SpanStore) -> None:
    trace_id = new_trace_id()
    root = SpanSpec(
        "GET /",
        trace_id,
        service="web",
        kind=Span.SPAN_KIND_SERVER,
        start_ns=T0_NS + 100,
        duration_ns=5,
    )
    store.write_request(make_request([root, SpanSpec("other", new_trace_id(), service="api")]))
    rows, operations = store.entry_calls(T0_NS, T0_NS + 100, ["web"])
    assert [(r[0], r[1], operations[r[2]], r[3] >> 3, r[3] & 1) for r in rows] == [
        (T0_NS + 100, 5, ("web", "GET /"), Span.SPAN_KIND_SERVER, 0)
    ]
    assert store.entry_calls(T0_NS + 100, T0_NS + 200, ["web"])[0] == []  # (after, until]
    assert store.entry_calls(T0_NS, T0_NS + 200, ["nobody"]) == ([], {})


def test_migration_fills_the_rows_of_stored_traces(tmp_path: Path) -> None:
    path = tmp_path / "v4.sqlite3"
    ids = []
    with SpanStore(path, max_spans=0) as store:
        for i in range(5):
            trace_id = new_trace_id()
            root = SpanSpec(
                "GET /",
                trace_id,
                service="web",
                kind=Span.SPAN_KIND_SERVER,
                start_ns=T0_NS + i,
                duration_ns=10**6,
            )
            call = SpanSpec("POST", trace_id, parent_span_id=root.span_id, service="web")
            server = SpanSpec(
                "POST /render",
                trace_id,
                parent_span_id=call.span_id,
                service="preview",
                kind=Span.SPAN_KIND_SERVER,
            )
            store.write_request(make_request([root, call, server]))
            ids.append(trace_id)
        expected = expected_rows(store, ids)
    assert sum(expected.values()) == 10
    conn = sqlite3.connect(path)  # back to schema 4, as an older cvtrace left it
    conn.executescript("DROP TABLE calls; DROP TABLE pending_calls; PRAGMA user_version = 4;")
    conn.close()
    with SpanStore(path, max_spans=0) as store:
        assert stored_rows(path) == expected
        assert store.dependencies(0, 2**62) == [("web", "preview", 5, 0)]


def test_retention_deletes_the_rows_with_their_traces(tmp_path: Path) -> None:
    with SpanStore(tmp_path / "spans.sqlite3", max_spans=10) as store:
        for i in range(8):
            trace_id = new_trace_id()
            root = SpanSpec(
                "GET /", trace_id, service="web", kind=Span.SPAN_KIND_SERVER, start_ns=T0_NS + i
            )
            orphan = SpanSpec("late", trace_id, parent_span_id=bytes([7] * 8), service="web")
            store.write_request(make_request([root, orphan]))
        kept = [bytes(t) for t in store.iter_trace_ids()]
        assert len(kept) < 8
        assert stored_rows(store.path) == expected_rows(store, kept)
        conn = sqlite3.connect(store.path)
        pending = conn.execute("SELECT count(*) FROM pending_calls").fetchone()[0]
        conn.close()
        assert pending == len(kept)  # each kept trace's orphan still waits for its parent
