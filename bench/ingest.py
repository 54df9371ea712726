"""Benchmark 4: viewer ingest into a store that already holds 1,000,000 spans.

- **OTLP/HTTP protobuf**: ``cvtrace view`` on a copy of the cached 1M-span store; one
  client posts pre-encoded requests of 512 fresh demo-like spans (the SDK's batch)
  back to back with ``requests``, as one exporter would. With retention off
  (``CVTRACE_VIEWER_MAX_SPANS=0``), and with the default 1M cap, where each write
  that crosses it deletes the oldest traces down to 900,000.
- **local exporter**: ``LocalSpanExporter.export`` of SDK spans in batches of 512 into
  another copy, in this process (encoding included), with retention off.

- **two senders** (issue 16): two clients posting at once to one viewer (threads of
  this process, each with its own connection), retention off.

Each path has its own store copy (and viewer) for the whole run; after a warm-up
second each, the paths take turns for ``ROUNDS`` interleaved rounds of a few seconds,
each round sending spans never sent before, so the stores grow from 1,000,000
spans. Spans/s = spans accepted / elapsed time, per round; reported as median
[min..max] over the rounds, with the writing process's CPU time per span beside it
(on this shared machine the figure to compare: rates swing with the other load,
which each round records as the 1-minute load average).

``BENCH_INGEST_BASELINE=/path/to/another/checkout`` adds the two OTLP/HTTP
retention-off paths served by that checkout's viewer (same store copy source, same
request bodies, rounds interleaved with this checkout's): a before/after comparison.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path
from typing import Any

import requests

from bench.common import (
    REPO,
    Viewer,
    copy_store,
    cpu_seconds,
    log,
    paired_ratios,
    spread,
    table,
    verdict,
)
from bench.spandata import (
    demo_batches,
    million_span_store,
    store_spans,
    to_readable,
    to_request,
)

TARGET_SPANS_PER_S = 50_000
TARGET_SCALE_SPANS_PER_S = 100_000
"""Issue 16: one sender, 1M stored spans."""
TARGET_TWO_SENDERS_SPANS_PER_S = 80_000
"""Issue 16: two senders at once."""
ROUNDS = 5
WARM_UP_S = 1.0
MAX_SPANS_PER_S = 100_000
"""Spans are encoded ahead for a viewer this fast (a faster one runs out: an error)."""
OTLP_RETENTION_OFF = "OTLP/HTTP protobuf, retention off"
OTLP_DEFAULT_RETENTION = "OTLP/HTTP protobuf, default retention (1M cap)"
LOCAL = "local exporter, retention off"
OTLP_TWO_SENDERS = "OTLP/HTTP protobuf, two senders, retention off"
BASELINE = " (baseline checkout)"


def _bodies(seed: int, spans: int) -> list[tuple[int, bytes]]:
    now = time.time_ns()
    return [
        (len(batch), to_request(batch).SerializeToString())
        for batch in demo_batches(seed, spans, now - 60 * 10**9, 60 * 10**9)
    ]


def _post_all(
    url: str,
    bodies: Iterator[tuple[int, bytes]],
    seconds: float,
    pid: int | None = None,
    session: requests.Session | None = None,
) -> dict[str, Any]:
    """Post ``bodies`` back to back for ``seconds``; return spans/s and latencies."""
    own_session = session is None
    session = session or requests.Session()
    headers = {"Content-Type": "application/x-protobuf"}
    latencies = []
    sent = 0
    cpu0 = cpu_seconds(pid) if pid else 0.0
    t0 = time.perf_counter()
    for count, body in bodies:
        t = time.perf_counter()
        response = session.post(url, data=body, headers=headers, timeout=60)
        latencies.append(time.perf_counter() - t)
        if response.status_code != 200:
            msg = f"the viewer answered {response.status_code}: {response.text[:200]}"
            raise RuntimeError(msg)
        sent += count
        if time.perf_counter() - t0 > seconds:
            break
    else:
        msg = "the benchmark ran out of spans to send; encode more"
        raise RuntimeError(msg)
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(pid) - cpu0 if pid else float("nan")
    if own_session:
        session.close()
    return {
        "spans": sent,
        "seconds": elapsed,
        "spans_per_s": sent / elapsed,
        "request_ms": [1000 * x for x in latencies],
        "cpu_per_wall": cpu / elapsed,
        "cpu_us_per_span": cpu / sent * 1e6,
        "load": os.getloadavg()[0],
    }


class _Shared:
    """One stream of request bodies taken by several senders (each body sent once)."""

    def __init__(self, bodies: Iterator[tuple[int, bytes]]) -> None:
        self._bodies = bodies
        self._lock = threading.Lock()

    def __iter__(self) -> _Shared:
        return self

    def __next__(self) -> tuple[int, bytes]:
        with self._lock:
            return next(self._bodies)


def _post_concurrently(
    url: str,
    bodies: _Shared,
    seconds: float,
    pid: int,
    sessions: list[requests.Session],
) -> dict[str, Any]:
    """Post from one thread per session at once for ``seconds``; return the totals."""
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(sessions) + 1)

    def send(session: requests.Session) -> None:
        start.wait()
        try:
            results.append(_post_all(url, bodies, seconds, None, session))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(pid) - cpu0
    if errors:
        raise errors[0]
    sent = sum(r["spans"] for r in results)
    return {
        "spans": sent,
        "seconds": elapsed,
        "spans_per_s": sent / elapsed,
        "request_ms": [ms for r in results for ms in r["request_ms"]],
        "cpu_per_wall": cpu / elapsed,
        "cpu_us_per_span": cpu / sent * 1e6,
        "load": os.getloadavg()[0],
    }


class _LocalRun:
    """The local exporter on its store copy, exporting fresh SDK spans round by round."""

    def __init__(self, db: Path, spans_per_round: int) -> None:
        from cvtrace.exporters.local import LocalSpanExporter

        self.exporter = LocalSpanExporter(db, max_spans=0)
        self.spans_per_round = spans_per_round
        self.seed = 100

    def round(self, seconds: float) -> dict[str, Any]:
        from opentelemetry.sdk.trace.export import SpanExportResult

        now = time.time_ns()
        self.seed += 1
        batches = [
            to_readable(b)
            for b in demo_batches(self.seed, self.spans_per_round, now - 60 * 10**9, 60 * 10**9)
        ]
        exported = 0
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for batch in batches:
            if self.exporter.export(batch) is not SpanExportResult.SUCCESS:
                msg = f"the local exporter failed: {self.exporter.last_error}"
                raise RuntimeError(msg)
            exported += len(batch)
            if time.perf_counter() - t0 > seconds:
                break
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        encode_us = _encode_time(batches[:50]) / sum(len(b) for b in batches[:50]) * 1e6
        return {
            "spans": exported,
            "seconds": elapsed,
            "spans_per_s": exported / elapsed,
            "encode_us_per_span": encode_us,
            "cpu_per_wall": cpu / elapsed,
            "cpu_us_per_span": cpu / exported * 1e6,
            "load": os.getloadavg()[0],
        }


def _encode_time(batches: list[list[Any]]) -> float:
    """Seconds to encode ``batches`` alone: how much of the local path is encoding."""
    from cvtrace.otlp.encoding import SpanEncoder

    encoder = SpanEncoder()
    t0 = time.perf_counter()
    for batch in batches:
        encoder.encode_grouped(batch)
    return time.perf_counter() - t0


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Measure; return the results and their Markdown."""
    rounds, seconds = (2, 1.0) if quick else (ROUNDS, 3.5)
    spans = int((rounds * seconds + WARM_UP_S) * MAX_SPANS_PER_S)  # per viewer, sent once
    source = million_span_store(quick)
    baseline = os.environ.get("BENCH_INGEST_BASELINE")
    viewers: list[tuple[str, dict[str, str], Path, int]] = [
        (OTLP_RETENTION_OFF, {"CVTRACE_VIEWER_MAX_SPANS": "0"}, REPO, 1),
        (OTLP_TWO_SENDERS, {"CVTRACE_VIEWER_MAX_SPANS": "0"}, REPO, 2),
        (OTLP_DEFAULT_RETENTION, {}, REPO, 1),
    ]
    if baseline:
        viewers += [
            (label + BASELINE, env, Path(baseline), n)
            for label, env, _checkout, n in viewers
            if label != OTLP_DEFAULT_RETENTION
        ]
    rounds_of: dict[str, list[dict[str, Any]]] = {label: [] for label, *_ in viewers}
    rounds_of[LOCAL] = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ingest-"))
        log(f"ingest: encoding {spans:,} spans")
        bodies = _bodies(2, spans)
        senders: dict[str, tuple[Viewer, _Shared, list[requests.Session]]] = {}
        for label, env, checkout, n in viewers:
            db = copy_store(source, Path(tmp) / f"{len(senders)}.sqlite3")
            viewer = stack.enter_context(Viewer(db, env, checkout))
            sessions = [stack.enter_context(requests.Session()) for _ in range(n)]
            sessions[0].get(viewer.url + "/api/services", timeout=30)
            senders[label] = (viewer, _Shared(iter(bodies)), sessions)
        local = _LocalRun(
            copy_store(source, Path(tmp) / "local.sqlite3"), int(seconds * MAX_SPANS_PER_S)
        )

        def measure(label: str, seconds: float) -> dict[str, Any]:
            if label == LOCAL:
                return local.round(seconds)
            viewer, stream, sessions = senders[label]
            if len(sessions) == 1:
                return _post_all(viewer.otlp_url, stream, seconds, viewer.proc.pid, sessions[0])
            return _post_concurrently(viewer.otlp_url, stream, seconds, viewer.proc.pid, sessions)

        # the copies' dirty pages written out now, not during the first rounds; then one
        # short round per path, not counted: the viewers' and the store's caches warm up
        os.sync()
        labels = list(rounds_of)
        for label in labels:
            measure(label, WARM_UP_S)
        for r in range(rounds):
            for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
                cell = measure(label, seconds)
                rounds_of[label].append(cell)
                log(
                    f"ingest: round {r + 1}, {label}: {cell['spans_per_s']:,.0f} spans/s, "
                    f"{cell['cpu_us_per_span']:.1f} CPU-µs/span, load {cell['load']:.1f}"
                )
        local.exporter.shutdown()
    cells = {
        label: {
            "spans_per_s": spread(c["spans_per_s"] for c in cells),
            "spans": sum(c["spans"] for c in cells),
            "seconds": sum(c["seconds"] for c in cells),
            "cpu_per_wall": spread(c["cpu_per_wall"] for c in cells),
            "cpu_us_per_span": spread(c["cpu_us_per_span"] for c in cells),
            "load": spread(c["load"] for c in cells),
            **(
                {"request_ms": spread(ms for c in cells for ms in c["request_ms"])}
                if "request_ms" in cells[0]
                else {"encode_us_per_span": spread(c["encode_us_per_span"] for c in cells)}
            ),
        }
        for label, cells in rounds_of.items()
    }
    paired = {
        label: {
            key: paired_ratios(rounds_of[label], rounds_of[label + BASELINE], itemgetter(key))
            for key in ("cpu_us_per_span", "spans_per_s")
        }
        for label in (OTLP_RETENTION_OFF, OTLP_TWO_SENDERS)
        if label + BASELINE in rounds_of
    }
    result = {
        "paired": paired,
        "config": {
            "rounds": rounds,
            "seconds": seconds,
            "batch_spans": 512,
            "store_spans": store_spans(quick),
            "baseline": baseline or "",
        },
        "cells": cells,
    }
    return result, markdown(result)


def markdown(result: dict[str, Any]) -> str:
    """The table of BENCHMARKS.md section 4."""
    cfg = result["config"]
    cells = result["cells"]
    rows = [
        (
            label,
            c["spans_per_s"].fmt(),
            c["cpu_us_per_span"].fmt(1),
            f"{c['spans']:,}",
            f"{100 * c['cpu_per_wall'].median:.0f}%",
            c["load"].fmt(1),
            f"{c['request_ms'].fmt(1)} ms per request"
            if "request_ms" in c
            else f"encoding {c['encode_us_per_span'].median:.1f} µs/span",
        )
        for label, c in cells.items()
    ]
    verdicts = [
        (
            f"ingest >= {TARGET_SPANS_PER_S:,} spans/s ({label})",
            f"{cells[label]['spans_per_s'].median:,.0f} (worst round "
            f"{cells[label]['spans_per_s'].low:,.0f})",
            verdict(cells[label]["spans_per_s"].median >= TARGET_SPANS_PER_S),
        )
        for label in (OTLP_RETENTION_OFF, LOCAL)
    ] + [
        (
            f"issue 16: ingest >= {target:,} spans/s ({label})",
            f"{cells[label]['spans_per_s'].median:,.0f} (worst round "
            f"{cells[label]['spans_per_s'].low:,.0f})",
            verdict(cells[label]["spans_per_s"].median >= target),
        )
        for label, target in (
            (OTLP_RETENTION_OFF, TARGET_SCALE_SPANS_PER_S),
            (OTLP_TWO_SENDERS, TARGET_TWO_SENDERS_SPANS_PER_S),
        )
    ]
    paired = result.get("paired") or {}
    comparison = (
        [
            "",
            f"This checkout / the baseline checkout ({cfg['baseline']}), each ratio within "
            "a round (both viewers' cells run in every round), median [min..max] over "
            "the rounds:",
            "",
            table(
                ["path", "CPU µs per span, ratio", "spans/s, ratio"],
                [
                    (label, p["cpu_us_per_span"].fmt(3), p["spans_per_s"].fmt(3))
                    for label, p in paired.items()
                ],
            ),
        ]
        if paired
        else []
    )
    return "\n".join(
        [
            f"### 4. Viewer ingest into a store of {cfg['store_spans']:,} spans "
            f"({cfg['rounds']} interleaved rounds of {cfg['seconds']:.1f} s per path, "
            f"{cfg['batch_spans']} spans per request)",
            "",
            table(
                [
                    "path",
                    "spans/s, median [min..max] over rounds",
                    "CPU µs per span (writing process)",
                    "spans stored",
                    "CPU of the writing process",
                    "load average (1 min)",
                    "note",
                ],
                rows,
            ),
            "",
            "CPU of the writing process = its CPU time (all threads) over the elapsed time: "
            "the viewer for OTLP/HTTP, this process for the local exporter; well under 100% "
            "means waiting (disk, the client, or the CPU: other load), over 100% means "
            "threads in parallel.",
            *comparison,
            "",
            table(["target", "measured (median over rounds)", "verdict"], verdicts),
        ]
    )
