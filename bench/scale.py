"""Benchmark 13 (``python -m bench --scale``): the cost curve from 100,000 to 10,000,000 spans.

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
- **trace fetch**: ``/api/traces/{id}`` of a 1,000-span trace sent to each store
  before the ingest rounds (so indexed by then, among the rest).
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
from bench.search import QUERIES
from bench.spandata import big_trace, to_request

QUICK_SIZES = (20_000, 60_000)
ROUNDS = 3
ROUND_S = 3.0
WARM_UP_S = 1.0
RETENTION_S = 6.0
STARTS = 3
SEARCH_REPEATS = 150
FETCHES = 40
MAX_SPANS_PER_S = 90_000
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
    rounds, seconds = (2, 1.0) if quick else (ROUNDS, ROUND_S)
    retention_s = 2.0 if quick else RETENTION_S
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
        result["start"] = _starts(copies, 1 if quick else STARTS)
        with contextlib.ExitStack() as stack:
            viewers = {
                size: stack.enter_context(Viewer(db, {"CVTRACE_VIEWER_MAX_SPANS": "0"}))
                for size, db in copies.items()
            }
            result["search"] = _search(viewers, 3 if quick else SEARCH_REPEATS)
            big_ids = _send_big_traces(viewers)
            result["ingest"] = _ingest(viewers, bodies, rounds, seconds)
            result["fetch_1k_ms"] = _fetch(viewers, big_ids, 5 if quick else FETCHES)
            rest = iter(bodies[result["ingest"]["requests_used"] :])
            stack.pop_all().close()
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


def _send_big_traces(viewers: dict[int, Viewer]) -> dict[int, str]:
    spans = big_trace(random.Random(5), 1_000, time.time_ns() - 3_600 * 10**9)
    body = to_request(spans).SerializeToString()
    for viewer in viewers.values():
        response = requests.post(
            viewer.otlp_url,
            data=body,
            headers={"Content-Type": "application/x-protobuf"},
            timeout=60,
        )
        response.raise_for_status()
    return {size: spans[0].trace_id.hex() for size in viewers}


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


def _fetch(viewers: dict[int, Viewer], ids: dict[int, str], repeats: int) -> dict[int, list[float]]:
    ms: dict[int, list[float]] = {size: [] for size in viewers}
    session = requests.Session()
    for r in range(repeats + 1):
        for size in _rotated(list(viewers), r):
            t0 = time.perf_counter()
            response = session.get(f"{viewers[size].url}/api/traces/{ids[size]}", timeout=60)
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
        }
    return out


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
    for key, name in (
        ("search_p50", "search p50, all queries"),
        ("search_p99_all", "search p99, all queries"),
        ("search_p99_worst", "search p99, worst query"),
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
    fig.update_yaxes(rangemode="tozero")
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

    from bench.bigtrace import CHROMIUM, CHROMIUM_ARGS

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
            f"{s['search_p50']:.1f}",
            f"{s['search_p99_all']:.1f}",
            f"{s['search_p99_worst']:.1f}",
            f"{s['fetch_p50']:.1f} / {s['fetch_p99']:.1f}",
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
                f"{percentile(result['search'][size][name], 99):.1f}"
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
    base_ms = [ms for c in result["ingest"]["cells"][largest] for ms in c["request_ms"]]
    build = result["build"]
    verdicts = [
        (
            f"ingest >= {TARGETS['ingest_spans_per_s']:,} spans/s at {largest:,}",
            f"{top['ingest']:,.0f} (worst round {top['ingest_low']:,.0f})",
            verdict(top["ingest"] >= TARGETS["ingest_spans_per_s"]),
        ),
        (
            f"search p99 <= {TARGETS['search_p99_ms']:.0f} ms at {largest:,} (worst query)",
            f"{top['search_p99_worst']:.1f} ms",
            verdict(top["search_p99_worst"] <= TARGETS["search_p99_ms"]),
        ),
        (
            f"fetch of a 1,000-span trace <= {TARGETS['fetch_1k_ms']:.0f} ms at {largest:,} (p99)",
            f"{top['fetch_p99']:.1f} ms (p50 {top['fetch_p50']:.1f})",
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
            f"p99 {ret_p99:.1f} ms, median {ret_p50:.1f} ms: {ret_p99 / ret_p50:.1f}x",
            verdict(ret_p99 <= TARGETS["retention_p99_over_median"] * ret_p50),
        ),
    ]
    return "\n".join(
        [
            f"### 13. The cost curve: {', '.join(f'{s:,}' for s in cfg['sizes'])} stored spans",
            "",
            f"Ingest: OTLP/HTTP protobuf, 512 spans per request, one client, retention off, "
            f"{cfg['rounds']} interleaved rounds of {cfg['round_s']:.0f} s per store, median "
            f"[min..max] over rounds. Search: the {len(QUERIES)} queries of section 5 over "
            f"HTTP, {cfg['search_repeats']} interleaved rounds per store; p50 and p99 over all "
            "queries, and the p99 of the worst query. Fetch: `/api/traces/{id}` of a "
            "1,000-span trace, p50 / p99. Start: process start to the first answer, median of "
            f"{cfg['starts']}, with the process's CPU time. Load average (1/5/15 min) "
            f"before {' '.join(f'{x:.1f}' for x in cfg['load_before'])}, after "
            f"{' '.join(f'{x:.1f}' for x in cfg['load_after'])}.",
            "",
            table(
                [
                    "stored spans",
                    "ingest spans/s",
                    "search p50 ms",
                    "search p99 ms",
                    "worst query p99 ms",
                    "1k-span fetch ms",
                    "start s",
                    "disk MB",
                    "bytes/span",
                ],
                rows,
            ),
            "",
            "Search per query, p50 / p99 ms:",
            "",
            table(["query", *(f"{s:,}" for s in cfg["sizes"])], per_query),
            "",
            f"Retention at the limit ({largest:,}-span store with "
            f"{ret['before']:,} spans, `CVTRACE_VIEWER_MAX_SPANS={ret['limit']:,}`: every write "
            f"deletes a step): {ret['spans_per_s']:,.0f} spans/s, request p50 {ret_p50:.1f} ms, "
            f"p99 {ret_p99:.1f} ms, max {max(ret_ms):.1f} ms, {ret['after']:,} spans after "
            f"{ret['seconds']:.0f} s; the same store's ingest rounds without retention: p50 "
            f"{percentile(base_ms, 50):.1f} ms, p99 {percentile(base_ms, 99):.1f} ms.",
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


if __name__ == "__main__":
    res, text = run()
    print(text)
    print(json.dumps(_summary(res), indent=2))
