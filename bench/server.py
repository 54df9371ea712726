"""Benchmark 2: the demo under gunicorn (2 workers) driven by ``wrk``, bare vs cvtrace vs vanilla.

The three servers run side by side on 127.0.0.1 (idle while another is loaded);
each round loads each one in turn for a fixed time (order rotating), one ``wrk``
thread, 4 connections, on the circuit view with a returning visitor's cookie.
Ratios to bare are per round. At the end the servers get SIGTERM (the workers flush)
and the receiver's span count is compared with the requests served.
"""

from __future__ import annotations

import tempfile
import time
from operator import itemgetter
from pathlib import Path
from typing import Any

from bench.common import Receiver, cpu_seconds, log, paired_ratios, spread, table
from bench.http import Gunicorn, wrk
from bench.variants import CIRCUIT_ID, private_db_copy, variant_env

VARIANTS = ("bare", "cvtrace-otlp", "vanilla")
VIEW = f"/circuits/{CIRCUIT_ID}"


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Measure; return the results and their Markdown."""
    rounds, seconds = (1, 1.0) if quick else (10, 3.0)
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    served: dict[str, int] = dict.fromkeys(VARIANTS, 0)
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp, Receiver() as receiver:
        servers = {
            v: Gunicorn(
                v, private_db_copy(Path(tmp), v), variant_env(v, receiver.endpoint(v), None)
            )
            for v in VARIANTS
        }
        try:
            for server in servers.values():
                server.wait_ready()
            cookies = {v: s.session_cookie(VIEW) for v, s in servers.items()}
            for v, s in servers.items():  # warm-up, not kept (but its spans are counted)
                served[v] += wrk(s.url + VIEW, 1, cookie=cookies[v]).requests + 1
            log(f"server: {rounds} rounds of {seconds:.0f} s per variant")
            for r in range(rounds):
                order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
                for variant in order:
                    pids = servers[variant].worker_pids()
                    cpu0 = sum(cpu_seconds(pid) for pid in pids)
                    result = wrk(servers[variant].url + VIEW, seconds, cookie=cookies[variant])
                    cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0
                    samples[variant].append(
                        {**result.__dict__, "cpu_ms_per_request": 1000 * cpu / result.requests}
                    )
                    served[variant] += result.requests
            spans_before_stop = {v: receiver.spans(v) for v in VARIANTS}
        finally:
            for server in servers.values():
                server.stop()
        time.sleep(0.5)
        arrived = {v: receiver.spans(v) for v in VARIANTS}
    report = {
        "config": {"rounds": rounds, "seconds": seconds, "connections": 4},
        "samples": samples,
        "arrived": arrived,
        "arrived_before_stop": spans_before_stop,
        "served": served,
    }
    return report, markdown(report)


def markdown(result: dict[str, Any]) -> str:
    """The table of BENCHMARKS.md section 2."""
    cfg = result["config"]
    samples = result["samples"]
    base = samples["bare"]
    rows = []
    for variant, items in samples.items():
        served = result["served"][variant]
        rows.append(
            (
                variant,
                spread(s["requests_per_s"] for s in items).fmt(0),
                paired_ratios(items, base, itemgetter("requests_per_s")).fmt(2),
                spread(s["cpu_ms_per_request"] for s in items).fmt(2),
                paired_ratios(items, base, itemgetter("cpu_ms_per_request")).fmt(2),
                spread(s["p50_ms"] for s in items).fmt(1),
                spread(s["p99_ms"] for s in items).fmt(1),
                sum(s["errors"] for s in items),
                f"{result['arrived'][variant] / served:.2f}" if served else "-",
            )
        )
    return "\n".join(
        [
            f"### 2. Real server: gunicorn 2 workers + wrk ({cfg['rounds']} interleaved rounds "
            f"of {cfg['seconds']:.0f} s, 1 thread, {cfg['connections']} connections)",
            "",
            "Circuit view, returning visitor. Throughput ratio to bare per round; worker CPU = "
            "CPU time of the 2 workers (all threads, export included) per request served, "
            "far steadier than throughput on a shared machine; latencies in ms; "
            "spans/request = spans the receiver got (after SIGTERM flushed the workers) "
            "over views served, warm-up included (cvtrace makes 4 per view, vanilla 5; vanilla "
            "also traces the ~20 health checks of the start-up).",
            "",
            table(
                [
                    "variant",
                    "requests/s",
                    "x bare",
                    "worker CPU ms/request",
                    "CPU x bare",
                    "p50 ms",
                    "p99 ms",
                    "errors",
                    "spans arrived/request",
                ],
                rows,
            ),
        ]
    )
