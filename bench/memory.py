"""Benchmark 7: the demo's resident memory under load, with and without jemalloc.

gunicorn (2 workers, outside Docker) serves the demo with cvtrace tracing to the
discarding receiver (as deployed) and bare, each with glibc's malloc and with
``LD_PRELOAD`` of Debian's jemalloc. Each server in turn takes ``wrk`` load for a fixed
time on a mix of the circuit view and the circuit list; RSS of every worker is
sampled every 0.25 s from ``/proc``. Reported per worker: after warm-up, peak under
load, and at the end of the load.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from bench.common import Receiver, log, spread, table
from bench.http import JEMALLOC, Gunicorn, rss_kib, wrk
from bench.variants import CIRCUIT_ID, private_db_copy, variant_env

CELLS = (
    ("cvtrace-otlp", False),
    ("cvtrace-otlp", True),
    ("bare", False),
    ("bare", True),
)
VIEW = f"/circuits/{CIRCUIT_ID}"


def _label(variant: str, jemalloc: bool) -> str:
    return f"{variant} + {'jemalloc' if jemalloc else 'glibc malloc'}"


def _sample(server: Gunicorn, stop: threading.Event, out: list[list[int]]) -> None:
    pids = server.worker_pids()
    while not stop.wait(0.25):
        out.append([rss_kib(pid) for pid in pids])


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Measure; return the results and their Markdown."""
    seconds = 2.0 if quick else 15.0
    if not Path(JEMALLOC).exists():
        msg = f"{JEMALLOC} is missing: run make system-deps (Debian package libjemalloc2)"
        raise RuntimeError(msg)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp, Receiver() as receiver:
        for variant, jemalloc in CELLS[:2] if quick else CELLS:
            label = _label(variant, jemalloc)
            name = f"{variant}-{'je' if jemalloc else 'glibc'}"
            server = Gunicorn(
                variant,
                private_db_copy(Path(tmp), name),
                variant_env(variant, receiver.endpoint(name), None),
                jemalloc=jemalloc,
            )
            try:
                server.wait_ready()
                cookie = server.session_cookie(VIEW)
                wrk(server.url + VIEW, 1, cookie=cookie)
                pids = server.worker_pids()
                idle = [rss_kib(pid) for pid in pids]
                samples: list[list[int]] = []
                stop = threading.Event()
                sampler = threading.Thread(target=_sample, args=(server, stop, samples))
                sampler.start()
                try:
                    # half on the circuit view, half on the list (different queries, templates)
                    load = wrk(server.url + VIEW, seconds / 2, cookie=cookie)
                    load2 = wrk(server.url + "/circuits", seconds / 2, cookie=cookie)
                finally:
                    stop.set()
                    sampler.join()
                end = [rss_kib(pid) for pid in pids]
                preloaded = (
                    all(JEMALLOC in Path(f"/proc/{pid}/maps").read_text() for pid in pids)
                    if jemalloc
                    else False
                )
            finally:
                server.stop()
            peaks = [max(column) for column in zip(*samples, strict=True)] if samples else end
            results[label] = {
                "idle_mib": [kib / 1024 for kib in idle],
                "peak_mib": [kib / 1024 for kib in peaks],
                "end_mib": [kib / 1024 for kib in end],
                "requests": load.requests + load2.requests,
                "jemalloc_mapped": preloaded,
            }
            log(f"memory: {label}: peak {max(peaks) / 1024:.1f} MiB per worker")
    result = {"config": {"seconds": seconds}, "cells": results}
    return result, markdown(result)


def markdown(result: dict[str, Any]) -> str:
    """The table of BENCHMARKS.md section 7."""
    cfg = result["config"]
    rows = [
        (
            label,
            spread(c["idle_mib"]).fmt(1),
            spread(c["peak_mib"]).fmt(1),
            spread(c["end_mib"]).fmt(1),
            c["requests"],
            "yes" if c["jemalloc_mapped"] else "no",
        )
        for label, c in result["cells"].items()
    ]
    return "\n".join(
        [
            f"### 7. Memory: RSS per gunicorn worker under load ({cfg['seconds']:.0f} s of wrk "
            "per server: half circuit view, half circuit list)",
            "",
            "MiB per worker, median [min..max] over the 2 workers.",
            "",
            table(
                [
                    "server",
                    "after warm-up",
                    "peak under load",
                    "end of load",
                    "requests",
                    "jemalloc mapped",
                ],
                rows,
            ),
        ]
    )
