"""Benchmark 11: the analyses (issue 14) at the sizes it sets.

- **One trace**: critical path, statistics (self time included) and self time alone
  (``stats`` answers both: self time is computed once per trace and kept with it; the
  ``self time`` row is the pure function) of a 100,000-span trace, and the comparison
  of two 10,000-span traces. Three ways: the pure functions on a trace already read
  into columns (in this process); over HTTP from ``cvtrace view`` with the trace in
  the viewer's analysis cache (warm: what the page's second and later requests cost);
  and cold, the first request for the trace in a freshly started viewer (reading the
  spans from the store and into columns, once per trace for all its analyses).
- **The store**: ``/api/dependencies`` and ``/api/metrics/*`` over the 1,000,000-span
  store (spans spread over a day), for the last hour of its data (Jaeger's defaults:
  step 5 s, ratePer 10 min) and, to show how they grow, for the whole store (24 h,
  step 60 s): at the store's default limit (1,000,000 spans) that is the most any
  window holds.

Each round asks every query once, in an order rotating round by round; the cells are
median [min..max] over the rounds.
"""

from __future__ import annotations

import gc
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from bench.common import Viewer, cpu_seconds, data_dir, log, spread, table, verdict
from bench.spandata import SpanSpec, big_trace, million_span_store, store_spans, to_request

TARGET_TRACE_MS = 300.0
TARGET_COMPARE_MS = 500.0
TARGET_STORE_MS = 500.0
BIG = 100_000
PAIR = 10_000
HOUR_MS = 3_600_000


def _trace_sizes(quick: bool) -> tuple[int, int]:
    return (10_000, 1_000) if quick else (BIG, PAIR)


def wide_trace(rng: random.Random, size: int, start_ns: int) -> list[SpanSpec]:
    """An N+1 of ``size - 1`` queries back to back under one request.

    The critical path's worst case: it enters every span (the random traces of
    :func:`bench.spandata.big_trace` have paths of a few spans).
    """
    trace_id = rng.getrandbits(128).to_bytes(16, "big")
    root = SpanSpec(
        "circuits",
        trace_id,
        rng.getrandbits(64).to_bytes(8, "big"),
        b"",
        "GET /circuits",
        "server",
        start_ns,
        start_ns + size * 10_000 + 10_000,
    )
    spans = [root]
    for i in range(size - 1):
        t = start_ns + 5_000 + i * 10_000
        spans.append(
            SpanSpec(
                "circuits",
                trace_id,
                rng.getrandbits(64).to_bytes(8, "big"),
                root.span_id,
                "SELECT circuits.sqlite3",
                "client",
                t,
                t + 10_000,
            )
        )
    return spans


def analysis_store(quick: bool) -> tuple[Path, dict[str, str]]:
    """A store with two big traces (random, wide) and two to compare (built once, cached)."""
    from cvtrace.store import SCHEMA_VERSION, SpanStore

    big, pair = _trace_sizes(quick)
    path = data_dir() / f"store-analyses2-{big}-{pair}-schema{SCHEMA_VERSION}.sqlite3"
    ids_path = path.with_suffix(".ids")
    if path.exists() and ids_path.exists():
        return path, dict(line.split() for line in ids_path.read_text().splitlines())
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    log(f"analyses: building a store with a {big:,}-span trace and two of {pair:,}")
    rng = random.Random(14)
    ids: dict[str, str] = {}
    start = time.time_ns() - 3600 * 10**9
    with SpanStore(path, max_spans=0) as store:
        for name, spans in (
            ("big", big_trace(rng, big, start)),
            ("wide", wide_trace(rng, big, start)),
            ("a", big_trace(rng, pair, start)),
            ("b", big_trace(rng, pair, start)),
        ):
            ids[name] = spans[0].trace_id.hex()
            for i in range(0, len(spans), 5000):
                store.write_request(to_request(spans[i : i + 5000]))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ids_path.write_text("".join(f"{k} {v}\n" for k, v in ids.items()))
    return path, ids


def _pure(path: Path, ids: dict[str, str], rounds: int) -> dict[str, Any]:
    """The pure functions on traces already read into columns: wall and CPU ms per call."""
    from cvtrace.store import SpanStore
    from cvtrace.viewer.analyses.compare import compare_traces
    from cvtrace.viewer.analyses.critical_path import critical_path
    from cvtrace.viewer.analyses.self_time import self_times
    from cvtrace.viewer.analyses.spans import trace_spans
    from cvtrace.viewer.analyses.stats import trace_stats

    with SpanStore(path, max_spans=0) as store:
        stored = {k: store.get_trace(bytes.fromhex(v)) for k, v in ids.items()}
    columns_ms: list[float] = []
    traces = {}
    for name, spans in stored.items():
        t0 = time.perf_counter()
        traces[name] = trace_spans(spans)
        traces[name].children  # noqa: B018 - built once per trace, as the viewer does
        if name == "big":
            columns_ms.append((time.perf_counter() - t0) * 1000)
    # as the viewer's cache: the columns only (the span objects would make the garbage
    # collector's full passes, and so some of the timings below, hundreds of ms longer)
    del stored, spans
    gc.collect()
    big, wide = traces["big"], traces["wide"]
    work: dict[str, Callable[[], object]] = {
        "critical path": lambda: critical_path(big),
        "critical path (wide)": lambda: critical_path(wide),
        "statistics (with self time)": lambda: trace_stats(big),
        "statistics (wide)": lambda: trace_stats(wide),
        "self time": lambda: self_times(big),
        "compare": lambda: compare_traces(traces["a"], traces["b"]),
    }
    wall: dict[str, list[float]] = {name: [] for name in work}
    cpu: dict[str, list[float]] = {name: [] for name in work}
    for r in range(rounds):
        names = list(work)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            c0 = time.thread_time()
            t0 = time.perf_counter()
            work[name]()
            wall[name].append((time.perf_counter() - t0) * 1000)
            cpu[name].append((time.thread_time() - c0) * 1000)
    return {"wall_ms": wall, "cpu_ms": cpu, "columns_ms": columns_ms}


def _http_queries(ids: dict[str, str]) -> dict[str, str]:
    return {
        "critical path": f"/api/traces/{ids['big']}/critical-path",
        "critical path (wide)": f"/api/traces/{ids['wide']}/critical-path",
        "statistics (with self time)": f"/api/traces/{ids['big']}/stats",
        "statistics (wide)": f"/api/traces/{ids['wide']}/stats",
        "flame graph": f"/api/traces/{ids['big']}/flamegraph",
        "compare": f"/api/compare?a={ids['a']}&b={ids['b']}",
    }


def _trace_http(path: Path, ids: dict[str, str], rounds: int) -> dict[str, Any]:
    """Over HTTP: cold (first request in a fresh viewer) and warm, ms per request."""
    queries = _http_queries(ids)
    warm: dict[str, list[float]] = {name: [] for name in queries}
    warm_cpu: dict[str, list[float]] = {name: [] for name in queries}
    cold: dict[str, list[float]] = {
        "100k trace": [],
        "wide 100k trace": [],
        "two 10k traces (compare)": [],
    }
    sizes: dict[str, int] = {}
    session = requests.Session()
    try:
        for r in range(rounds):
            with Viewer(path) as viewer:
                session.get(viewer.url + "/api/services", timeout=60).raise_for_status()
                for label, name in (
                    ("100k trace", "critical path"),
                    ("wide 100k trace", "critical path (wide)"),
                    ("two 10k traces (compare)", "compare"),
                ):
                    t0 = time.perf_counter()
                    session.get(viewer.url + queries[name], timeout=300).raise_for_status()
                    cold[label].append((time.perf_counter() - t0) * 1000)
                names = list(queries)
                pid = viewer.proc.pid
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    c0 = cpu_seconds(pid)
                    t0 = time.perf_counter()
                    response = session.get(viewer.url + queries[name], timeout=300)
                    warm[name].append((time.perf_counter() - t0) * 1000)
                    warm_cpu[name].append((cpu_seconds(pid) - c0) * 1000)
                    response.raise_for_status()
                    sizes[name] = len(response.content)
            log(f"analyses: trace round {r + 1}: cold {cold['100k trace'][-1]:.0f} ms")
    finally:
        session.close()
    return {"warm_ms": warm, "warm_cpu_ms": warm_cpu, "cold_ms": cold, "bytes": sizes}


def _store_window(db: Path) -> dict[str, int]:
    """Return the newest span start (ms, the window's end) and what its last hour holds."""
    conn = sqlite3.connect(db)
    try:
        end_ns = int(conn.execute("SELECT max(start_ns) FROM traces").fetchone()[0])
        since = end_ns - HOUR_MS * 10**6
        spans = conn.execute(
            "SELECT coalesce(sum(span_count), 0) FROM traces WHERE start_ns > ?", (since,)
        ).fetchone()[0]
        calls = conn.execute("SELECT count(*) FROM calls WHERE start_ns > ?", (since,)).fetchone()
        total = conn.execute("SELECT count(*) FROM calls").fetchone()
    finally:
        conn.close()
    return {
        "end_ms": end_ns // 10**6 + 1,
        "spans_in_last_hour": int(spans),
        "calls_rows_in_last_hour": int(calls[0]),
        "calls_rows_in_store": int(total[0]),
    }


def _store_queries(end_ms: int) -> dict[str, tuple[str, dict[str, Any]]]:
    hour = {"endTs": end_ms, "lookback": HOUR_MS}
    day = {"endTs": end_ms, "lookback": 25 * HOUR_MS, "step": 60_000}
    red = {"service": "circuits"}
    return {
        "dependencies, 1 h": ("/api/dependencies", hour),
        "calls, 1 h": ("/api/metrics/calls", {**red, **hour}),
        "errors, 1 h, by operation": (
            "/api/metrics/errors",
            {**red, **hour, "groupByOperation": "true"},
        ),
        "latencies p95, 1 h": ("/api/metrics/latencies", {**red, **hour, "quantile": "0.95"}),
        "latencies p95, 1 h, by operation": (
            "/api/metrics/latencies",
            {**red, **hour, "quantile": "0.95", "groupByOperation": "true"},
        ),
        "dependencies, whole store": ("/api/dependencies", day),
        "latencies p95, whole store, by operation": (
            "/api/metrics/latencies",
            {**red, **day, "quantile": "0.95", "groupByOperation": "true"},
        ),
    }


def _store_http(db: Path, end_ms: int, rounds: int) -> dict[str, Any]:
    queries = _store_queries(end_ms)
    samples: dict[str, list[float]] = {name: [] for name in queries}
    cpu: dict[str, list[float]] = {name: [] for name in queries}
    series: dict[str, int] = {}
    session = requests.Session()
    try:
        with Viewer(db) as viewer:
            for path, params in queries.values():  # warm-up: page cache, connections
                session.get(viewer.url + path, params=params, timeout=120).raise_for_status()
            names = list(queries)
            for r in range(rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    path, params = queries[name]
                    c0 = cpu_seconds(viewer.proc.pid)
                    t0 = time.perf_counter()
                    response = session.get(viewer.url + path, params=params, timeout=120)
                    samples[name].append((time.perf_counter() - t0) * 1000)
                    cpu[name].append((cpu_seconds(viewer.proc.pid) - c0) * 1000)
                    response.raise_for_status()
                    body = response.json()
                    series[name] = len(body["data"] if "data" in body else body["metrics"])
    finally:
        session.close()
    return {"ms": samples, "cpu_ms": cpu, "series": series, "queries": queries}


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Measure; return the results and their Markdown."""
    trace_rounds, store_rounds = (2, 3) if quick else (5, 15)
    path, ids = analysis_store(quick)
    log("analyses: pure functions")
    pure = _pure(path, ids, 3 if quick else 11)
    log("analyses: over HTTP, cold and warm")
    trace = _trace_http(path, ids, trace_rounds)
    db = million_span_store(quick)
    window = _store_window(db)
    log(f"analyses: the store, {store_rounds} rounds")
    store = _store_http(db, window["end_ms"], store_rounds)
    big, pair = _trace_sizes(quick)
    result = {
        "config": {
            "big_trace_spans": big,
            "compared_trace_spans": pair,
            "store_spans": store_spans(quick),
            **window,
            "trace_rounds": trace_rounds,
            "store_rounds": store_rounds,
        },
        "pure_ms": pure,
        "trace": trace,
        "store": store,
    }
    return result, markdown(result)


def markdown(result: dict[str, Any]) -> str:
    """The tables of BENCHMARKS.md section 11."""
    cfg = result["config"]
    pure = result["pure_ms"]
    trace = result["trace"]
    store = result["store"]
    big, pair = f"{cfg['big_trace_spans']:,}", f"{cfg['compared_trace_spans']:,}"
    labels = {
        "critical path": f"critical path, {big} spans (random tree)",
        "critical path (wide)": f"critical path, {big} spans (wide: an N+1 of {big})",
        "statistics (with self time)": f"statistics with self time, {big} spans (random)",
        "statistics (wide)": f"statistics with self time, {big} spans (wide)",
        "self time": f"self time alone, {big} spans (random)",
        "flame graph": f"flame graph, {big} spans (random)",
        "compare": f"compare two traces of {pair} spans",
    }

    def cell(group: dict[str, list[float]], name: str) -> str:
        return spread(group[name]).fmt(0) if name in group else "-"

    trace_rows = [
        (
            label,
            cell(pure["cpu_ms"], name),
            cell(pure["wall_ms"], name),
            cell(trace["warm_cpu_ms"], name),
            cell(trace["warm_ms"], name),
            f"{trace['bytes'][name] / 1e6:.2f}" if name in trace["bytes"] else "-",
        )
        for name, label in labels.items()
    ]
    store_rows = [
        (
            name,
            f"{store['series'].get(name, 0)}",
            spread(store["cpu_ms"][name]).fmt(0),
            spread(samples).fmt(0),
        )
        for name, samples in store["ms"].items()
    ]
    cpu = trace["warm_cpu_ms"]
    trace_names: tuple[str, ...] = (
        "critical path",
        "critical path (wide)",
        "statistics (with self time)",
    )
    trace_names += ("statistics (wide)",)
    worst_cpu = max(spread(cpu[n]).median for n in trace_names)
    worst_wall = max(spread(trace["warm_ms"][n]).median for n in trace_names)
    self_cpu = spread(pure["cpu_ms"]["self time"]).median
    hour = [k for k in store["ms"] if ", 1 h" in k]
    hour_cpu = max(spread(store["cpu_ms"][k]).median for k in hour)
    hour_wall = max(spread(store["ms"][k]).median for k in hour)
    compare_cpu = spread(cpu["compare"]).median
    cold = trace["cold_ms"]
    targets = [
        (
            f"critical path, stats, self time of a {big}-span trace <= "
            f"{TARGET_TRACE_MS:.0f} ms server side each",
            f"warm, server CPU {worst_cpu:.0f} ms (the slowest of the four; elapsed "
            f"{worst_wall:.0f} ms on this machine); self time alone {self_cpu:.0f} ms CPU",
            verdict(max(worst_cpu, self_cpu) <= TARGET_TRACE_MS),
        ),
        (
            f"compare two {pair}-span traces <= {TARGET_COMPARE_MS:.0f} ms",
            f"warm, server CPU {compare_cpu:.0f} ms (elapsed "
            f"{spread(trace['warm_ms']['compare']).median:.0f} ms)",
            verdict(compare_cpu <= TARGET_COMPARE_MS),
        ),
        (
            f"dependencies and RED over {cfg['store_spans']:,} stored spans, 1 h window "
            f"<= {TARGET_STORE_MS:.0f} ms",
            f"server CPU {hour_cpu:.0f} ms, elapsed {hour_wall:.0f} ms (the slowest query)",
            verdict(max(hour_cpu, hour_wall) <= TARGET_STORE_MS),
        ),
        (
            "the first request for a trace (cold: read from the store into columns)",
            f"{spread(cold['100k trace']).median:.0f} ms ({big} random), "
            f"{spread(cold['wide 100k trace']).median:.0f} ms ({big} wide), "
            f"{spread(cold['two 10k traces (compare)']).median:.0f} ms (two of {pair}) elapsed",
            "no target (reported)",
        ),
    ]
    return "\n".join(
        [
            f"### 11. Analyses ({cfg['trace_rounds']} rounds per trace query, a fresh viewer "
            f"each; {cfg['store_rounds']} interleaved rounds per store query)",
            "",
            "One trace, ms, median [min..max]: the pure function on the trace already read "
            "into columns (this process: CPU time of the thread, and elapsed), and the request "
            "over HTTP to `cvtrace view` with the trace in its analysis cache (warm: CPU time "
            "of the viewer process, and elapsed at the client). Reading a trace into columns "
            f"(once per trace, for all its analyses): {spread(pure['columns_ms']).fmt(0)} ms "
            f"for the {big}-span one.",
            "",
            table(
                [
                    "analysis",
                    "pure, CPU",
                    "pure, elapsed",
                    "HTTP warm, server CPU",
                    "HTTP warm, elapsed",
                    "answer MB",
                ],
                trace_rows,
            ),
            "",
            f"The store: {cfg['store_spans']:,} demo-like spans over a day; its last hour holds "
            f"{cfg['spans_in_last_hour']:,} spans and {cfg['calls_rows_in_last_hour']:,} call "
            f"rows (of {cfg['calls_rows_in_store']:,} in all). RED for service `circuits`; "
            "1 h: step 5 s, ratePer 10 min (721 points, Jaeger's defaults); whole store: 25 h, "
            "step 60 s (1,501 points). ms over HTTP, median [min..max].",
            "",
            table(["query", "series or edges", "server CPU", "elapsed"], store_rows),
            "",
            table(["target", "measured (median)", "verdict"], targets),
        ]
    )
