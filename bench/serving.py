"""Benchmark 9: the viewer's UI served by waitress vs Werkzeug's development server.

Both servers run the same app on the same store (the big store of the search
benchmark: ``BENCH_STORE_SPANS`` spans, 1,000,000 by default) side by side, each in
its own process (:mod:`bench.serve_ui`), idle while the other is loaded. Each round
loads every page on each server in turn (order rotating) with ``wrk`` for a few
seconds, one thread, 4 connections: the search page (a service's newest 20 traces
and their scatter), a trace page, and that trace's ``waterfall.json`` (the data
the page draws, from the viewer's trace cache once warm). Server CPU = the serving
process's CPU time per request, steadier than throughput on a shared machine.
"""

from __future__ import annotations

import subprocess
from operator import itemgetter
from typing import Any

from bench.common import (
    PYTHON,
    REPO,
    clean_env,
    cpu_seconds,
    log,
    paired_ratios,
    spread,
    stop_process,
    table,
)
from bench.http import wrk
from bench.spandata import million_span_store, store_spans

SERVERS = ("werkzeug", "waitress")


def _start(server: str, db: Any) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [PYTHON, "-m", "bench.serve_ui", server, str(db)],
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd=REPO,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("port "):
        stop_process(proc)
        msg = f"{server} did not start: {line!r}"
        raise RuntimeError(msg)
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


def _pages(db: Any) -> dict[str, str]:
    from cvtrace.store import SpanStore, TraceQuery

    with SpanStore(db, max_spans=0) as store:
        (summary,) = store.search(TraceQuery(service="circuits", limit=1))
    trace = summary.trace_id.hex()
    return {
        "search page": "/?service=circuits&lookback=",
        "trace page": f"/trace/{trace}",
        "waterfall.json": f"/trace/{trace}/waterfall.json",
    }


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Measure; return the results and their Markdown."""
    rounds, seconds = (1, 1.0) if quick else (6, 3.0)
    db = million_span_store(quick)
    pages = _pages(db)
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {
        page: {server: [] for server in SERVERS} for page in pages
    }
    started = {server: _start(server, db) for server in SERVERS}
    try:
        for _, url in started.values():  # warm-up: page cache, trace cache
            for path in pages.values():
                wrk(url + path, 1)
        log(f"serving: {rounds} rounds of {seconds:.0f} s per page and server")
        for r in range(rounds):
            order = SERVERS[r % 2 :] + SERVERS[: r % 2]
            for page, path in pages.items():
                for server in order:
                    proc, url = started[server]
                    cpu0 = cpu_seconds(proc.pid)
                    result = wrk(url + path, seconds)
                    cpu = cpu_seconds(proc.pid) - cpu0
                    samples[page][server].append(
                        {**result.__dict__, "cpu_ms_per_request": 1000 * cpu / result.requests}
                    )
            log(f"serving: round {r + 1} done")
    finally:
        for proc, _ in started.values():
            stop_process(proc)
    report = {
        "config": {"rounds": rounds, "seconds": seconds, "store_spans": store_spans(quick)},
        "samples": samples,
    }
    return report, markdown(report)


def markdown(result: dict[str, Any]) -> str:
    """The table of BENCHMARKS.md section 9."""
    cfg = result["config"]
    rows = []
    for page, by_server in result["samples"].items():
        base = by_server["werkzeug"]
        for server, items in by_server.items():
            rows.append(
                (
                    page,
                    server,
                    spread(s["requests_per_s"] for s in items).fmt(0),
                    paired_ratios(items, base, itemgetter("requests_per_s")).fmt(2),
                    spread(s["cpu_ms_per_request"] for s in items).fmt(2),
                    spread(s["p50_ms"] for s in items).fmt(1),
                    spread(s["p99_ms"] for s in items).fmt(1),
                    sum(s["errors"] for s in items),
                )
            )
    return "\n".join(
        [
            f"### 9. Serving the UI: waitress vs Werkzeug's development server "
            f"({cfg['rounds']} interleaved rounds of {cfg['seconds']:.0f} s per page and "
            f"server, wrk 1 thread, 4 connections, store of {cfg['store_spans']:,} spans)",
            "",
            table(
                [
                    "page",
                    "server",
                    "requests/s",
                    "x werkzeug (per round)",
                    "server CPU ms/request",
                    "p50 ms",
                    "p99 ms",
                    "errors",
                ],
                rows,
            ),
        ]
    )
