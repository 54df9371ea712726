"""Benchmark 14 (``python -m bench --scale``): the cost curve from 100,000 to 10,000,000 spans.

The stores (:mod:`bench.scalestores`: demo-like spans, the smaller stores the first
spans of the largest; built once and cached) are migrated in place to this schema,
then each is copied to a scratch file and served by its own ``cvtrace view``:

- **viewer start**: process start to the first answer (``/api/services``), three
  starts per store, the stores in turn; with the CPU time the process used so far.
- **search**: the queries of :mod:`bench.search` over HTTP, round robin over the
  queries and the stores; p50/p99 per query and store.
- **ingest**: OTLP/HTTP protobuf, requests of 512 fresh demo-like spans from one
  client, retention off, ``ROUNDS`` interleaved rounds over the stores (each store
  grows by what it took).
- **trace fetch**: ``/api/traces/{id}`` of a 1,000-span trace sent to each viewer
  after the searches (a search answers with the newest traces by arrival: sent
  before, it was among five queries' 20) and before the ingest rounds (so indexed by
  then, among the rest); in this process too, once the viewers have stopped.
- **retention at the limit** (largest store only): the viewer restarted with
  ``CVTRACE_VIEWER_MAX_SPANS`` at the store's size, so that every write deletes; the
  request latencies while it deletes, beside the ingest rounds' at that size.
- **disk**: the cached store's bytes, per span.

The chart (plotly) is written as HTML and PNG (Chromium renders the HTML) beside the
results, ``scale.html`` and ``scale.png``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.common import (
    PYTHON,
    REPO,
    Viewer,
    clean_env,
    cpu_seconds,
    data_dir,
    log,
    percentile,
    spread,
    stop_process,
    table,
    verdict,
)
from bench.ingest import _post_all
from bench.scalestores import SCALE_SIZES, demo_requests, scale_stores
from bench.search import QUERIES, _answer, _store_query
from bench.spandata import big_trace, to_request

QUICK_SIZES = (6_000, 15_000)
ROUNDS = 3
ROUND_S = 3.0
WARM_UP_S = 1.0
RETENTION_S = 6.0
STARTS = 3
SEARCH_REPEATS = 100
IN_PROCESS_REPEATS = 60
FETCHES = 40
MAX_SPANS_PER_S = 70_000
"""Requests are made ahead for a viewer this fast."""
VIEW_ARGS = ("--port", "0", "--otlp-port", "0", "--otlp-grpc-port", "-1")
TARGETS = {
    "ingest_spans_per_s": 50_000,
    "search_p99_ms": 20.0,
    "fetch_1k_ms": 50.0,
    "start_s": 2.0,
    "retention_p99_over_median": 3.0,
}


def _migrate(path: Path) -> float:
    """Bring a cached store to this schema in place; return the seconds it took."""
    import sqlite3

    from cvtrace.store import SpanStore

    t0 = time.perf_counter()
    SpanStore(path, max_spans=0).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - t0


def _start(db: Path) -> tuple[float, float]:
    """Start ``cvtrace view`` on ``db``; return seconds to its first answer and its CPU."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [PYTHON, "-m", "cvtrace.cli", "view", "--db", str(db), *VIEW_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env({"CVTRACE_VIEWER_MAX_SPANS": "0"}),
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        url = ""
        while not url:
            line = proc.stdout.readline()
            if not line:
                msg = "cvtrace view exited before printing its URL"
                raise RuntimeError(msg)
            if line.startswith("cvtrace viewer on "):
                url = line.split(" on ", 1)[1].strip().rstrip("/")
        response = requests.get(url + "/api/services", timeout=60)
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid)
        response.raise_for_status()
        return elapsed, cpu
    finally:
        stop_process(proc, 30)


def _rotated(items: list[Any], r: int) -> list[Any]:
    return items[r % len(items) :] + items[: r % len(items)]


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Measure; return the results and their Markdown."""
    sizes = QUICK_SIZES if quick else SCALE_SIZES
    rounds, seconds = (2, 0.5) if quick else (ROUNDS, ROUND_S)
    retention_s = 1.0 if quick else RETENTION_S
    paths, build = scale_stores(sizes)
    migrate_s = {size: _migrate(path) for size, path in paths.items()}
    disk = {size: path.stat().st_size for size, path in paths.items()}
    largest = max(sizes)
    spans_needed = int((rounds * seconds + WARM_UP_S + retention_s) * MAX_SPANS_PER_S)
    log(f"scale: making {spans_needed:,} spans of requests")
    now = time.time_ns()
    bodies = list(demo_requests(2, spans_needed, now - 60 * 10**9, 60 * 10**9))
    result: dict[str, Any] = {
        "config": {
            "sizes": sizes,
            "rounds": rounds,
            "round_s": seconds,
            "starts": 1 if quick else STARTS,
            "search_repeats": 3 if quick else SEARCH_REPEATS,
            "in_process_repeats": 3 if quick else IN_PROCESS_REPEATS,
            "load_before": os.getloadavg(),
        },
        "build": build,
        "migrate_s": migrate_s,
        "disk_bytes": disk,
    }
    scratch = Path(tempfile.mkdtemp(prefix="scale-", dir=data_dir()))
    try:
        copies = {}
        for size, path in paths.items():
            copies[size] = scratch / f"{size}.sqlite3"
            shutil.copyfile(path, copies[size])
        os.sync()
        in_process_repeats = 3 if quick else IN_PROCESS_REPEATS
        result["start"] = _starts(copies, 1 if quick else STARTS)
        result["in_process"] = _in_process_search(copies, in_process_repeats)
        big_id, big_body = _big_trace()
        with contextlib.ExitStack() as stack:
            viewers = {
                size: stack.enter_context(Viewer(db, {"CVTRACE_VIEWER_MAX_SPANS": "0"}))
                for size, db in copies.items()
            }
            result["search"] = _search(viewers, 3 if quick else SEARCH_REPEATS)
            _send_big_trace(viewers, big_body)
            result["ingest"] = _ingest(viewers, bodies, rounds, seconds)
            result["fetch_1k_ms"] = _fetch(viewers, big_id, 5 if quick else FETCHES)
            rest = iter(bodies[result["ingest"]["requests_used"] :])
            stack.pop_all().close()
        _in_process_fetch(copies, big_id, in_process_repeats, result["in_process"])
        result["retention"] = _retention(copies[largest], rest, retention_s)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result["config"]["load_after"] = os.getloadavg()
    _chart(result, quick)
    return result, markdown(result)


def _starts(copies: dict[int, Path], starts: int) -> dict[int, dict[str, Any]]:
    log(f"scale: {starts} viewer starts per store")
    seconds: dict[int, list[float]] = {size: [] for size in copies}
    cpu: dict[int, list[float]] = {size: [] for size in copies}
    for r in range(starts):
        for size in _rotated(list(copies), r):
            elapsed, used = _start(copies[size])
            seconds[size].append(elapsed)
            cpu[size].append(used)
    return {size: {"seconds": seconds[size], "cpu_s": cpu[size]} for size in copies}


def _search(viewers: dict[int, Viewer], repeats: int) -> dict[int, dict[str, list[float]]]:
    log(f"scale: search, {repeats} rounds of {len(QUERIES)} queries per store")
    sessions = {size: requests.Session() for size in viewers}
    ms: dict[int, dict[str, list[float]]] = {size: {q: [] for q in QUERIES} for size in viewers}
    for size, viewer in viewers.items():  # warm-up
        for params in QUERIES.values():
            sessions[size].get(viewer.url + "/api/traces", params=params, timeout=60)
    for r in range(repeats):
        for size in _rotated(list(viewers), r):
            url = viewers[size].url + "/api/traces"
            for name, params in QUERIES.items():
                t0 = time.perf_counter()
                response = sessions[size].get(url, params=params, timeout=60)
                ms[size][name].append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
    for session in sessions.values():
        session.close()
    return ms


def _big_trace() -> tuple[str, bytes]:
    """Return the id and the OTLP request of the 1,000-span trace fetched below."""
    spans = big_trace(random.Random(5), 1_000, time.time_ns() - 30 * 86_400 * 10**9)
    return spans[0].trace_id.hex(), to_request(spans).SerializeToString()


def _send_big_trace(viewers: dict[int, Viewer], body: bytes) -> None:
    """Send the 1,000-span trace to each viewer, after the searches, before the ingest rounds.

    After the searches: the store answers a search with its newest traces by arrival,
    so a trace written before them was among the 20 of five of the ten queries, which
    then timed its 1,000 spans of JSON rather than the store's traces. Before the ingest
    rounds: the fetch then finds it indexed, among the rest.
    """
    headers = {"Content-Type": "application/x-protobuf"}
    for viewer in viewers.values():
        response = requests.post(viewer.otlp_url, data=body, headers=headers, timeout=60)
        response.raise_for_status()


def _in_process_search(copies: dict[int, Path], repeats: int) -> dict[int, Any]:
    """CPU time (of this thread) of the store's search and of the API, in this process.

    On a shared machine the elapsed times over HTTP swing with the other load; the
    CPU time of the work itself much less.
    """
    from cvtrace.store import SpanStore
    from cvtrace.viewer import create_app

    log(f"scale: in-process search CPU, {repeats} rounds per store")
    stores = {size: SpanStore(db, max_spans=0, read_only=True) for size, db in copies.items()}
    out: dict[int, Any] = {
        size: {"store_cpu_ms": {q: [] for q in QUERIES}, "api_cpu_ms": {q: [] for q in QUERIES}}
        for size in copies
    }
    clients = {size: create_app({"STORE": store}).test_client() for size, store in stores.items()}
    try:
        for r in range(repeats + 1):  # the first round warms up
            for size in _rotated(list(copies), r):
                store, client, cell = stores[size], clients[size], out[size]
                for name, params in QUERIES.items():
                    query = _store_query(params)
                    c0 = time.thread_time()
                    store.search(query)
                    c1 = time.thread_time()
                    _answer(client, params)
                    c2 = time.thread_time()
                    if r:
                        cell["store_cpu_ms"][name].append((c1 - c0) * 1000)
                        cell["api_cpu_ms"][name].append((c2 - c1) * 1000)
    finally:
        for store in stores.values():
            store.close()
    return out


def _in_process_fetch(
    copies: dict[int, Path], big_id: str, repeats: int, out: dict[int, Any]
) -> None:
    """CPU time (of this thread) of ``/api/traces/{id}`` in this process, into ``out``."""
    from cvtrace.store import SpanStore
    from cvtrace.viewer import create_app

    log(f"scale: in-process fetch CPU, {repeats} rounds per store")
    stores = {size: SpanStore(db, max_spans=0, read_only=True) for size, db in copies.items()}
    clients = {size: create_app({"STORE": store}).test_client() for size, store in stores.items()}
    for size in copies:
        out[size]["fetch_cpu_ms"] = []
    try:
        for r in range(repeats + 1):  # the first round warms up
            for size in _rotated(list(copies), r):
                c0 = time.thread_time()
                response = clients[size].get(f"/api/traces/{big_id}")
                spans = len(response.get_json()["data"][0]["spans"])
                if r:
                    out[size]["fetch_cpu_ms"].append((time.thread_time() - c0) * 1000)
                if spans != 1_000:
                    msg = f"the 1,000-span trace came back with {spans} spans"
                    raise RuntimeError(msg)
    finally:
        for store in stores.values():
            store.close()


def _ingest(
    viewers: dict[int, Viewer], bodies: list[tuple[int, bytes]], rounds: int, seconds: float
) -> dict[str, Any]:
    streams = {size: iter(bodies) for size in viewers}
    sessions = {size: requests.Session() for size in viewers}
    cells: dict[int, list[dict[str, Any]]] = {size: [] for size in viewers}
    for size, viewer in viewers.items():
        _post_all(viewer.otlp_url, streams[size], WARM_UP_S, viewer.proc.pid, sessions[size])
    for r in range(rounds):
        for size in _rotated(list(viewers), r):
            viewer = viewers[size]
            cell = _post_all(
                viewer.otlp_url, streams[size], seconds, viewer.proc.pid, sessions[size]
            )
            cells[size].append(cell)
            log(f"scale: ingest round {r + 1}, {size:,} spans: {cell['spans_per_s']:,.0f} spans/s")
    for session in sessions.values():
        session.close()
    used = max(len(bodies) - sum(1 for _ in stream) for stream in streams.values())
    return {"cells": cells, "requests_used": used}


def _fetch(viewers: dict[int, Viewer], big_id: str, repeats: int) -> dict[int, list[float]]:
    ms: dict[int, list[float]] = {size: [] for size in viewers}
    session = requests.Session()
    for r in range(repeats + 1):
        for size in _rotated(list(viewers), r):
            t0 = time.perf_counter()
            response = session.get(f"{viewers[size].url}/api/traces/{big_id}", timeout=60)
            elapsed = (time.perf_counter() - t0) * 1000
            response.raise_for_status()
            spans = len(response.json()["data"][0]["spans"])
            if spans != 1_000:
                msg = f"the 1,000-span trace came back with {spans} spans"
                raise RuntimeError(msg)
            if r:  # the first fetch of each warms up
                ms[size].append(elapsed)
    session.close()
    return ms


def _retention(db: Path, bodies: Any, seconds: float) -> dict[str, Any]:
    from cvtrace.store import SpanStore

    with SpanStore(db, max_spans=0, read_only=True) as store:
        before = store.span_count()
    limit = before - 20_000  # every write from the first deletes
    log(f"scale: retention at the limit, {before:,} spans, limit {limit:,}")
    with Viewer(db, {"CVTRACE_VIEWER_MAX_SPANS": str(limit)}) as viewer:
        cell = _post_all(viewer.otlp_url, bodies, seconds, viewer.proc.pid)
    with SpanStore(db, max_spans=0, read_only=True) as store:
        after = store.span_count()
    return {"before": before, "limit": limit, "after": after, **cell}


def _summary(result: dict[str, Any]) -> dict[int, dict[str, float]]:
    """Per size: the figures of the table and the chart."""
    out = {}
    for size in result["config"]["sizes"]:
        search = result["search"][size]
        ingest = spread(c["spans_per_s"] for c in result["ingest"]["cells"][size])
        fetch = result["fetch_1k_ms"][size]
        out[size] = {
            "ingest": ingest.median,
            "ingest_low": ingest.low,
            "ingest_high": ingest.high,
            "search_p50": percentile([ms for q in search.values() for ms in q], 50),
            "search_p99_worst": max(percentile(q, 99) for q in search.values()),
            "search_p99_all": percentile([ms for q in search.values() for ms in q], 99),
            "fetch_p50": percentile(fetch, 50),
            "fetch_p99": percentile(fetch, 99),
            "start_s": spread(result["start"][size]["seconds"]).median,
            "start_cpu_s": spread(result["start"][size]["cpu_s"]).median,
            "disk_mb": result["disk_bytes"][size] / 1e6,
            "bytes_per_span": result["disk_bytes"][size]
            / result["build"]["stores"][str(size)]["spans"],
            "ingest_cpu_us": spread(
                _cpu_us_per_span(c) for c in result["ingest"]["cells"][size]
            ).median,
            **_cpu_summary(result["in_process"][size]),
        }
    return out


def _cpu_us_per_span(cell: dict[str, Any]) -> float:
    """The viewer's CPU time per span taken in a round (all its threads), µs."""
    return float(cell["cpu_per_wall"] * cell["seconds"] / cell["spans"] * 1e6)


def _cpu_summary(cell: dict[str, Any]) -> dict[str, float]:
    store = [ms for q in cell["store_cpu_ms"].values() for ms in q]
    api = [ms for q in cell["api_cpu_ms"].values() for ms in q]
    return {
        "store_cpu_p50": percentile(store, 50),
        "store_cpu_p99": percentile(store, 99),
        "api_cpu_p50": percentile(api, 50),
        "api_cpu_p99": percentile(api, 99),
        "api_cpu_p99_worst": max(percentile(q, 99) for q in cell["api_cpu_ms"].values()),
        "fetch_cpu_p50": percentile(cell["fetch_cpu_ms"], 50),
        "fetch_cpu_p99": percentile(cell["fetch_cpu_ms"], 99),
    }


def _chart(result: dict[str, Any], quick: bool) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    summary = _summary(result)
    sizes = list(summary)
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=("ingest, spans/s (OTLP/HTTP)", "search, ms (/api/traces)", "disk, MB"),
    )
    fig.add_trace(
        go.Scatter(
            x=sizes,
            y=[summary[s]["ingest"] for s in sizes],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [summary[s]["ingest_high"] - summary[s]["ingest"] for s in sizes],
                "arrayminus": [summary[s]["ingest"] - summary[s]["ingest_low"] for s in sizes],
            },
            name="ingest (median, min..max of rounds)",
            mode="lines+markers",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=sizes,
            y=[1e6 / summary[s]["ingest_cpu_us"] for s in sizes],
            name="ingest per CPU-second of the viewer",
            mode="lines+markers",
        ),
        row=1,
        col=1,
    )
    for key, name in (
        ("search_p50", "search p50 over HTTP, all queries"),
        ("search_p99_all", "search p99 over HTTP, all queries"),
        ("api_cpu_p50", "search CPU p50 in-process, all queries"),
        ("api_cpu_p99", "search CPU p99 in-process, all queries"),
    ):
        fig.add_trace(
            go.Scatter(
                x=sizes, y=[summary[s][key] for s in sizes], name=name, mode="lines+markers"
            ),
            row=1,
            col=2,
        )
    fig.add_trace(
        go.Scatter(
            x=sizes, y=[summary[s]["disk_mb"] for s in sizes], name="disk", mode="lines+markers"
        ),
        row=1,
        col=3,
    )
    fig.update_xaxes(type="log", title_text="stored spans")
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)  # CPU in-process and elapsed under load
    fig.update_yaxes(type="log", row=1, col=3)
    fig.update_layout(
        title="cvtrace viewer: cost by stored spans",
        width=1300,
        height=450,
        template="plotly_white",
    )
    out = data_dir() / ("results-quick" if quick else "results")
    out.mkdir(exist_ok=True)
    fig.write_html(out / "scale.html", include_plotlyjs="cdn")
    inline = out / "scale-inline.html"
    fig.write_html(inline, include_plotlyjs=True)
    _screenshot(inline, out / "scale.png")
    inline.unlink()


def _screenshot(html: Path, png: Path) -> None:
    from playwright.sync_api import sync_playwright

    from bench.common import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1320, "height": 470})
        page.goto(html.as_uri())
        page.wait_for_selector(".main-svg")
        page.screenshot(path=str(png), full_page=True)
        browser.close()


def markdown(result: dict[str, Any]) -> str:
    """The section of BENCHMARKS.md."""
    cfg = result["config"]
    summary = _summary(result)
    rows = [
        (
            f"{size:,}",
            f"{s['ingest']:,.0f} [{s['ingest_low']:,.0f}..{s['ingest_high']:,.0f}]",
            f"{s['ingest_cpu_us']:.1f} ({1e6 / s['ingest_cpu_us']:,.0f}/s)",
            f"{s['search_p50']:.1f} / {s['search_p99_all']:.1f} / {s['search_p99_worst']:.1f}",
            f"{s['api_cpu_p50']:.1f} / {s['api_cpu_p99']:.1f} / {s['api_cpu_p99_worst']:.1f}",
            f"{s['store_cpu_p50']:.2f} / {s['store_cpu_p99']:.2f}",
            f"{s['fetch_p50']:.0f} / {s['fetch_p99']:.0f} ({s['fetch_cpu_p50']:.0f} / "
            f"{s['fetch_cpu_p99']:.0f} CPU)",
            f"{s['start_s']:.2f} ({s['start_cpu_s']:.2f} CPU)",
            f"{s['disk_mb']:,.0f}",
            f"{s['bytes_per_span']:.0f}",
        )
        for size, s in summary.items()
    ]
    per_query = [
        (
            name,
            *(
                f"{percentile(result['search'][size][name], 50):.1f} / "
                f"{percentile(result['search'][size][name], 99):.1f} "
                f"({percentile(result['in_process'][size]['api_cpu_ms'][name], 50):.1f} / "
                f"{percentile(result['in_process'][size]['api_cpu_ms'][name], 99):.1f})"
                for size in cfg["sizes"]
            ),
        )
        for name in QUERIES
    ]
    largest = max(cfg["sizes"])
    top = summary[largest]
    ret = result["retention"]
    ret_ms = ret["request_ms"]
    ret_p50, ret_p99 = percentile(ret_ms, 50), percentile(ret_ms, 99)
    base = result["ingest"]["cells"][largest]
    base_ms = [ms for c in base for ms in c["request_ms"]]
    base_p50, base_p99 = percentile(base_ms, 50), percentile(base_ms, 99)
    build = result["build"]
    verdicts = [
        (
            f"ingest >= {TARGETS['ingest_spans_per_s']:,} spans/s at {largest:,}",
            f"{top['ingest']:,.0f} (worst round {top['ingest_low']:,.0f}); viewer CPU "
            f"{top['ingest_cpu_us']:.1f} µs/span = {1e6 / top['ingest_cpu_us']:,.0f} spans "
            "per CPU-second",
            verdict(top["ingest"] >= TARGETS["ingest_spans_per_s"]),
        ),
        (
            f"search p99 <= {TARGETS['search_p99_ms']:.0f} ms at {largest:,} (worst query)",
            f"{top['search_p99_worst']:.1f} ms over HTTP; CPU in-process "
            f"{top['api_cpu_p99_worst']:.1f} ms",
            verdict(top["search_p99_worst"] <= TARGETS["search_p99_ms"]),
        ),
        (
            f"fetch of a 1,000-span trace <= {TARGETS['fetch_1k_ms']:.0f} ms at {largest:,} (p99)",
            f"{top['fetch_p99']:.1f} ms (p50 {top['fetch_p50']:.1f}); CPU in-process p50 "
            f"{top['fetch_cpu_p50']:.1f}, p99 {top['fetch_cpu_p99']:.1f} ms",
            verdict(top["fetch_p99"] <= TARGETS["fetch_1k_ms"]),
        ),
        (
            f"viewer start <= {TARGETS['start_s']:.0f} s at {largest:,} "
            f"(median of {cfg['starts']})",
            f"{top['start_s']:.2f} s ({top['start_cpu_s']:.2f} s CPU)",
            verdict(top["start_s"] <= TARGETS["start_s"]),
        ),
        (
            "ingest request p99 <= 3x its median while retention deletes",
            f"p99 {ret_p99:.1f} ms, median {ret_p50:.1f} ms: {ret_p99 / ret_p50:.1f}x "
            f"(without retention, same store: {base_p99 / base_p50:.1f}x)",
            verdict(ret_p99 <= TARGETS["retention_p99_over_median"] * ret_p50),
        ),
    ]
    return "\n".join(
        [
            f"### 14. The cost curve: {', '.join(f'{s:,}' for s in cfg['sizes'])} stored spans",
            "",
            f"Ingest: OTLP/HTTP protobuf, 512 spans per request, one client, retention off, "
            f"{cfg['rounds']} interleaved rounds of {cfg['round_s']:.0f} s per store, median "
            "[min..max] over rounds, and the viewer's CPU time per span (all threads; in "
            "brackets the spans per CPU-second that makes). Search: the "
            f"{len(QUERIES)} queries of section 5, {cfg['search_repeats']} interleaved rounds "
            "per store over HTTP (p50 / p99 over all queries / p99 of the worst query, "
            f"elapsed), and {cfg['in_process_repeats']} in this process: the API through "
            "Flask's test client and the store's `search()` alone, CPU time of the thread. "
            "Fetch: `/api/traces/{id}` of a 1,000-span trace, p50 / p99 over HTTP and CPU "
            "in-process. Start: process start to the first answer, median of "
            f"{cfg['starts']}, with the process's CPU time. Load average (1/5/15 min) "
            f"before {' '.join(f'{x:.1f}' for x in cfg['load_before'])}, after "
            f"{' '.join(f'{x:.1f}' for x in cfg['load_after'])} (2 cores).",
            "",
            table(
                [
                    "stored spans",
                    "ingest spans/s",
                    "ingest CPU µs/span",
                    "search ms over HTTP",
                    "search CPU ms in-process",
                    "store search() CPU ms p50 / p99",
                    "1k-span fetch ms",
                    "start s",
                    "disk MB",
                    "bytes/span",
                ],
                rows,
            ),
            "",
            "Search per query, p50 / p99 ms over HTTP (in brackets: CPU in-process, p50 / p99):",
            "",
            table(["query", *(f"{s:,}" for s in cfg["sizes"])], per_query),
            "",
            f"Retention at the limit ({largest:,}-span store holding {ret['before']:,} spans "
            f"after the ingest rounds, restarted with `CVTRACE_VIEWER_MAX_SPANS={ret['limit']:,}`:"
            f" every write deletes a step): {ret['spans_per_s']:,.0f} spans/s, viewer CPU "
            f"{_cpu_us_per_span(ret):.1f} µs per span taken, request p50 {ret_p50:.1f} ms, p99 "
            f"{ret_p99:.1f} ms, max {max(ret_ms):.1f} ms; {ret['after']:,} spans after "
            f"{ret['seconds']:.0f} s. The same store's ingest rounds without retention: p50 "
            f"{base_p50:.1f} ms, p99 {base_p99:.1f} ms, viewer CPU {top['ingest_cpu_us']:.1f} µs "
            "per span.",
            "",
            f"The stores: built once in {build['build_seconds']:.0f} s ("
            + ", ".join(
                f"{int(k):,} after {v['seconds_into_build']:.0f} s"
                for k, v in build["stores"].items()
            )
            + "), migrated to this schema in "
            + ", ".join(f"{result['migrate_s'][s]:.1f}" for s in cfg["sizes"])
            + " s.",
            "",
            table(["target", "measured", "verdict"], verdicts),
        ]
    )


def _with_int_keys(value: Any) -> Any:
    """A result read back from JSON, with the store sizes as ints again."""
    if isinstance(value, dict):
        return {
            (int(k) if isinstance(k, str) and k.isdigit() else k): _with_int_keys(v)
            for k, v in value.items()
        }
    return value


def redraw(quick: bool = False) -> str:
    """Draw the chart and write the table again from the last saved results."""
    path = data_dir() / ("results-quick" if quick else "results") / "scale.json"
    result = _with_int_keys(json.loads(path.read_text()))
    result["build"]["stores"] = {str(k): v for k, v in result["build"]["stores"].items()}
    _chart(result, quick)
    return markdown(result)


if __name__ == "__main__":
    # python -m bench.scale: the chart and table again from the last run's results
    print(redraw())
