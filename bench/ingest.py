"""Benchmark 4: viewer ingest into a store that already holds 1,000,000 spans.

- **OTLP/HTTP protobuf**: ``cvtrace view`` on a copy of the cached 1M-span store; one
  client posts pre-encoded requests of 512 fresh demo-like spans (the SDK's batch)
  back to back, as one exporter would, for a fixed time. With retention off
  (``CVTRACE_VIEWER_MAX_SPANS=0``), and with the default 1M cap, where each write
  that crosses it deletes the oldest traces down to 900,000.
- **local exporter**: ``LocalSpanExporter.export`` of SDK spans in batches of 512 into
  another copy, in this process (encoding included), with the time split into OTLP
  encoding and the store write.

Spans/s = spans accepted / elapsed time.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.common import Viewer, copy_store, cpu_seconds, log, spread, table, verdict
from bench.spandata import (
    demo_batches,
    million_span_store,
    store_spans,
    to_readable,
    to_request,
)

TARGET_SPANS_PER_S = 50_000


def _bodies(seed: int, spans: int) -> list[tuple[int, bytes]]:
    now = time.time_ns()
    return [
        (len(batch), to_request(batch).SerializeToString())
        for batch in demo_batches(seed, spans, now - 60 * 10**9, 60 * 10**9)
    ]


def _post_all(
    url: str, bodies: list[tuple[int, bytes]], seconds: float, pid: int | None = None
) -> dict[str, Any]:
    session = requests.Session()
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
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(pid) - cpu0 if pid else float("nan")
    session.close()
    return {
        "spans": sent,
        "seconds": elapsed,
        "spans_per_s": sent / elapsed,
        "request_ms": spread(1000 * x for x in latencies),
        "cpu_per_wall": cpu / elapsed,
    }


def _local(db: Path, seconds: float, spans: int) -> dict[str, Any]:
    from opentelemetry.sdk.trace.export import SpanExportResult

    from cvtrace.exporters.local import LocalSpanExporter

    now = time.time_ns()
    batches = [to_readable(b) for b in demo_batches(3, spans, now - 60 * 10**9, 60 * 10**9)]
    exporter = LocalSpanExporter(db)
    exported = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for batch in batches:
        if exporter.export(batch) is not SpanExportResult.SUCCESS:
            msg = f"the local exporter failed: {getattr(exporter, 'last_error', '')}"
            raise RuntimeError(msg)
        exported += len(batch)
        if time.perf_counter() - t0 > seconds:
            break
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    exporter.shutdown()
    # the same batches, encoded only: how much of the time is OTLP encoding
    encode_s = _encode_time(batches[: max(1, len(batches) // 4)])
    per_span_encode_us = encode_s / sum(len(b) for b in batches[: max(1, len(batches) // 4)]) * 1e6
    return {
        "spans": exported,
        "seconds": elapsed,
        "spans_per_s": exported / elapsed,
        "encode_us_per_span": per_span_encode_us,
        "cpu_per_wall": cpu / elapsed,
    }


def _encode_time(batches: list[list[Any]]) -> float:
    try:
        from cvtrace.otlp_encoding import SpanEncoder

        encoder = SpanEncoder()
        encode = encoder.encode if hasattr(encoder, "encode") else None
    except ImportError:
        encode = None
    if encode is None:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        def encode(spans: Any) -> Any:
            return encode_spans(spans).SerializeToString()

    t0 = time.perf_counter()
    for batch in batches:
        encode(batch)
    return time.perf_counter() - t0


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Measure; return the results and their Markdown."""
    seconds, spans = (2.0, 40_000) if quick else (10.0, 800_000)
    source = million_span_store(quick)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        log(f"ingest: encoding {spans} spans")
        bodies = _bodies(2, spans)
        for label, env in (
            ("OTLP/HTTP protobuf, retention off", {"CVTRACE_VIEWER_MAX_SPANS": "0"}),
            ("OTLP/HTTP protobuf, default retention (1M cap)", {}),
        ):
            db = copy_store(source, Path(tmp) / "store.sqlite3")
            with Viewer(db, env) as viewer:
                requests.get(viewer.url + "/api/services", timeout=30)
                results[label] = _post_all(viewer.otlp_url, bodies, seconds, viewer.proc.pid)
            log(f"ingest: {label}: {results[label]['spans_per_s']:.0f} spans/s")
        db = copy_store(source, Path(tmp) / "store.sqlite3")
        import os

        os.environ["CVTRACE_VIEWER_MAX_SPANS"] = "0"
        try:
            results["local exporter, retention off"] = _local(db, seconds, spans // 2)
        finally:
            del os.environ["CVTRACE_VIEWER_MAX_SPANS"]
        log(f"ingest: local: {results['local exporter, retention off']['spans_per_s']:.0f} spans/s")
    result = {
        "config": {"seconds": seconds, "batch_spans": 512, "store_spans": store_spans(quick)},
        "cells": results,
    }
    return result, markdown(result)


def markdown(result: dict[str, Any]) -> str:
    """The table of BENCHMARKS.md section 4."""
    cfg = result["config"]
    cells = result["cells"]
    rows = [
        (
            label,
            f"{c['spans_per_s']:,.0f}",
            c["spans"],
            f"{c['seconds']:.1f}",
            f"{100 * c['cpu_per_wall']:.0f}%",
            c["request_ms"].fmt(1)
            if "request_ms" in c
            else f"encode {c['encode_us_per_span']:.1f} µs/span",
        )
        for label, c in cells.items()
    ]
    otlp = cells["OTLP/HTTP protobuf, retention off"]["spans_per_s"]
    local = cells["local exporter, retention off"]["spans_per_s"]
    return "\n".join(
        [
            f"### 4. Viewer ingest into a store of {cfg['store_spans']:,} spans (up to "
            f"{cfg['seconds']:.0f} s "
            f"each, {cfg['batch_spans']} spans per request)",
            "",
            table(
                [
                    "path",
                    "spans/s",
                    "spans",
                    "seconds",
                    "CPU of the writing process",
                    "ms per request / note",
                ],
                rows,
            ),
            "",
            "CPU of the writing process = its CPU time (all threads) over the elapsed time: "
            "the viewer for OTLP/HTTP, this process for the local exporter; well under 100% "
            "means waiting (disk, the client), over 100% means threads in parallel.",
            "",
            table(
                ["target", "measured", "verdict"],
                [
                    (
                        f"ingest >= {TARGET_SPANS_PER_S:,} spans/s (OTLP/HTTP)",
                        f"{otlp:,.0f}",
                        verdict(otlp >= TARGET_SPANS_PER_S),
                    ),
                    (
                        f"ingest >= {TARGET_SPANS_PER_S:,} spans/s (local exporter)",
                        f"{local:,.0f}",
                        verdict(local >= TARGET_SPANS_PER_S),
                    ),
                ],
            ),
        ]
    )
