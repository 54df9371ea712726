"""Benchmark 5: viewer search latency, ``/api/traces``, on a store of 1,000,000 spans.

``cvtrace view`` serves the cached 1M-span store (read only here); each query is
asked in turn (round robin, so the queries interleave), over HTTP, with ``limit=20``
(the search page's default and Jaeger UI's; the API's own default is Jaeger's 100, so
the queries say it). The answer holds the 20 full traces, as Jaeger's does. The
store's own ``search()`` is timed too, in this process, to split the time between
finding traces and loading and rendering them.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import requests
from flask.testing import FlaskClient

from bench.common import Viewer, log, percentile, table, verdict
from bench.spandata import million_span_store, store_spans

TARGET_P99_MS = 50.0

LIMIT = 20
"""Traces a query asks for."""
_FILTERS: dict[str, dict[str, str]] = {
    "service": {"service": "circuits"},
    "service + operation": {"service": "circuits", "operation": "GET /circuits"},
    "tag http.route (common)": {"tags": '{"http.route":"/circuits/<int:circuit_id>"}'},
    "tag status 500 (1%)": {"tags": '{"http.response.status_code":"500"}'},
    "service + tag error=true": {"service": "circuits", "tags": '{"error":"true"}'},
    "service + min duration 30ms (rare)": {"service": "circuits", "minDuration": "30ms"},
    "min duration 30ms (rare)": {"minDuration": "30ms"},
    "preview service (3% of traces)": {"service": "preview"},
    "no match: min duration 10s": {"minDuration": "10s"},
    "preview + status 500 (rare pair)": {
        "service": "preview",
        "tags": '{"http.response.status_code":"500"}',
    },
}
QUERIES = {name: {**filters, "limit": str(LIMIT)} for name, filters in _FILTERS.items()}


def _answer(client: FlaskClient, params: dict[str, str]) -> int:
    """Ask ``/api/traces`` through Flask's test client and read the whole answer.

    The answer is streamed: closing it unread would time its first bytes only, not
    the 20 traces' JSON, which is most of the work. Returns the answer's length.
    """
    response = client.get("/api/traces", query_string=params)
    try:
        return len(response.get_data())
    finally:
        response.close()


def _store_query(params: dict[str, str]) -> Any:
    import json

    from cvtrace.store import TraceQuery
    from cvtrace.viewer.jaeger_api import parse_duration_ns

    query = TraceQuery(
        service=params.get("service"),
        operation=params.get("operation"),
        tags=json.loads(params["tags"]) if "tags" in params else {},
        limit=int(params.get("limit", LIMIT)),
    )
    if "minDuration" in params:
        query.min_duration_ns = parse_duration_ns(params["minDuration"], "minDuration")
    return query


REPEATS = 300
"""Rounds of the queries: a p99 needs a few hundred samples, or it is the one slowest."""


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Measure; return the results and their Markdown."""
    repeats = 3 if quick else REPEATS
    db = million_span_store(quick)
    api_ms: dict[str, list[float]] = {name: [] for name in QUERIES}
    found: dict[str, int] = {}
    with Viewer(db) as viewer:
        session = requests.Session()
        url = viewer.url + "/api/traces"
        for params in QUERIES.values():  # warm-up: page cache, connections
            session.get(url, params=params, timeout=60)
        log(f"search: {repeats} rounds of {len(QUERIES)} queries")
        for _ in range(repeats):
            for name, params in QUERIES.items():
                t0 = time.perf_counter()
                response = session.get(url, params=params, timeout=60)
                api_ms[name].append((time.perf_counter() - t0) * 1000)
                if response.status_code != 200:
                    msg = f"/api/traces?{params} answered {response.status_code}"
                    raise RuntimeError(msg)
                found[name] = len(response.json()["data"])
        session.close()
    from cvtrace.store import SpanStore
    from cvtrace.viewer import create_app

    store_ms: dict[str, list[float]] = {name: [] for name in QUERIES}
    app_ms: dict[str, list[float]] = {name: [] for name in QUERIES}
    app_cpu_ms: dict[str, list[float]] = {name: [] for name in QUERIES}
    store = SpanStore(db, max_spans=0)
    full_gcs: list[float] = []  # ms of CPU of the requests that ran a generation-2 collection
    gc_generations: list[int] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_generations.append(info["generation"])

    gc.callbacks.append(on_gc)
    # as `cvtrace view` does once started: what exists now (here, the earlier benchmarks'
    # leftovers too) is not walked by every full collection
    gc.collect()
    gc.freeze()
    try:
        client = create_app({"STORE": store}).test_client()
        for _ in range(repeats):
            for name, params in QUERIES.items():
                query = _store_query(params)
                t0 = time.perf_counter()
                store.search(query)
                store_ms[name].append((time.perf_counter() - t0) * 1000)
                gc_generations.clear()
                c0 = time.thread_time()
                t0 = time.perf_counter()
                _answer(client, params)
                app_ms[name].append((time.perf_counter() - t0) * 1000)
                app_cpu_ms[name].append((time.thread_time() - c0) * 1000)
                if 2 in gc_generations:
                    full_gcs.append(app_cpu_ms[name][-1])
    finally:
        gc.unfreeze()
        gc.callbacks.remove(on_gc)
        store.close()
    result = {
        "config": {"repeats": repeats, "limit": LIMIT, "store_spans": store_spans(quick)},
        "queries": QUERIES,
        "api_ms": api_ms,
        "store_ms": store_ms,
        "app_ms": app_ms,
        "app_cpu_ms": app_cpu_ms,
        "full_gc_request_cpu_ms": full_gcs,
        "found": found,
    }
    return result, markdown(result)


def _gc_line(result: dict[str, Any]) -> str:
    full = result["full_gc_request_cpu_ms"]
    others = sorted(ms for samples in result["app_cpu_ms"].values() for ms in samples)
    total = len(others)
    if not full:
        return f"In-process: no full (generation-2) garbage collection in {total} requests."
    return (
        f"In-process: {len(full)} of {total} requests ran a full (generation-2) garbage "
        f"collection; their CPU: {', '.join(f'{ms:.0f}' for ms in sorted(full))} ms "
        f"(median of all requests {percentile(others, 50):.1f} ms)."
    )


def markdown(result: dict[str, Any]) -> str:
    """The table of BENCHMARKS.md section 5."""
    rows = []
    worst = 0.0
    for name, samples in result["api_ms"].items():
        p99 = percentile(samples, 99)
        worst = max(worst, p99)
        store = result["store_ms"][name]
        rows.append(
            (
                name,
                result["found"][name],
                f"{percentile(samples, 50):.1f}",
                f"{percentile(samples, 95):.1f}",
                f"{p99:.1f}",
                f"{percentile(result['app_ms'][name], 50):.1f}",
                f"{percentile(result['app_ms'][name], 99):.1f}",
                f"{percentile(result['app_cpu_ms'][name], 99):.1f}",
                f"{percentile(store, 50):.1f}",
                f"{percentile(store, 99):.1f}",
            )
        )
    return "\n".join(
        [
            f"### 5. Viewer search at {result['config']['store_spans']:,} spans "
            f"({result['config']['repeats']} interleaved "
            "rounds per query, limit 20)",
            "",
            "`/api/traces` over HTTP (answer: the full traces, Jaeger JSON); the same through "
            "Flask's test client in this process (no server, no socket), elapsed and CPU time "
            "of the thread (a CPU p99 far below the elapsed p99 means the request waited for "
            "the CPU: other load on the machine); and the store's `search()` alone; ms.",
            "",
            table(
                [
                    "query",
                    "traces found",
                    "API p50",
                    "API p95",
                    "API p99",
                    "in-process API p50",
                    "in-process API p99",
                    "in-process API CPU p99",
                    "store p50",
                    "store p99",
                ],
                rows,
            ),
            "",
            _gc_line(result),
            "",
            table(
                ["target", "measured (worst query)", "verdict"],
                [
                    (
                        f"search p99 <= {TARGET_P99_MS:.0f} ms",
                        f"{worst:.1f} ms",
                        verdict(worst <= TARGET_P99_MS),
                    )
                ],
            ),
        ]
    )
