"""Benchmark 15: a trace read from a remote Jaeger (``cvtrace view --jaeger-url``).

The real Jaeger (``.cache/bin/jaeger``, ``make collector``; deploy/jaeger-local.yaml, in
memory, ports from the OS) is sent traces of 100, 1,000 and 10,000 spans over OTLP/HTTP
(a root and its children, each with five attributes and an event). Each round reads
every trace once through each path, the paths taking turns, with a new
:class:`~cvtrace.viewer.remote.JaegerSource` each time (no cache):

- **API v3**: ``/api/v3/traces/{id}``, OTLP JSON, parsed and split into stored spans
  with their summary (what a remote trace page costs the viewer on its first request);
- **/api/traces**: the same through the older API (Jaeger JSON), as a Jaeger before
  v2 or another ``cvtrace view`` answers;
- **local store**: ``SpanStore.get_trace`` of the same trace saved locally, for scale.

Wall time includes Jaeger's own work; the viewer's CPU time (``time.process_time``,
this process only) is the part a busy machine disturbs less. Median [min..max].
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from bench.common import log, spread, table

ROOT = Path(__file__).resolve().parents[1]
SIZES = (100, 1_000, 10_000)
QUICK_SIZES = (100, 1_000)
ROUNDS = 7
PATHS = ("API v3", "/api/traces", "local store")


def _trace(spans: int, start_ns: int) -> tuple[bytes, ExportTraceServiceRequest]:
    """A root and ``spans - 1`` children, each with five attributes and an event."""
    import os

    trace_id = os.urandom(16)
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "bench"
    ss = rs.scope_spans.add()
    ss.scope.name = "bench"
    root_id = os.urandom(8)
    for i in range(spans):
        span = ss.spans.add()
        span.trace_id = trace_id
        span.span_id = root_id if i == 0 else os.urandom(8)
        if i:
            span.parent_span_id = root_id
        span.name = "GET /" if i == 0 else f"SELECT {i % 20}"
        span.kind = Span.SPAN_KIND_SERVER if i == 0 else Span.SPAN_KIND_CLIENT
        span.start_time_unix_nano = start_ns + i * 1000
        span.end_time_unix_nano = start_ns + i * 1000 + (spans * 1000 if i == 0 else 500)
        for k in range(5):
            attr = span.attributes.add()
            attr.key = f"attr.{k}"
            attr.value.string_value = f"value {i} {k}"
        event = span.events.add()
        event.name = "done"
        event.time_unix_nano = span.end_time_unix_nano
    return trace_id, request


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Measure; return the results and their Markdown."""
    from cvtrace.demo.cli import Child, stop_child
    from cvtrace.demo.pipeline import JaegerAddresses, start_jaeger
    from cvtrace.store import SpanStore
    from cvtrace.viewer.remote import JaegerSource, RemoteOptions

    sizes, rounds = (QUICK_SIZES, 2) if quick else (SIZES, ROUNDS)
    binary = ROOT / ".cache" / "bin" / "jaeger"
    if not binary.exists():
        msg = f"{binary} is missing: run `make collector` first"
        raise RuntimeError(msg)
    started: list[Child] = []
    wall: dict[tuple[str, int], list[float]] = {(p, n): [] for p in PATHS for n in sizes}
    cpu: dict[tuple[str, int], list[float]] = {(p, n): [] for p in PATHS for n in sizes}
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
        addresses = JaegerAddresses.on_free_ports()
        start_jaeger(
            binary,
            ROOT / "deploy" / "jaeger-local.yaml",
            addresses,
            Path(tmp) / "jaeger.log",
            started=started,
        )
        try:
            store = SpanStore(Path(tmp) / "local.sqlite3", max_spans=0)
            ids = {}
            now = time.time_ns() - 60 * 10**9
            for n in sizes:
                trace_id, request = _trace(n, now)
                ids[n] = trace_id
                store.write_request(request)
                answer = requests.post(
                    f"http://{addresses.otlp_http}/v1/traces",
                    data=request.SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf"},
                    timeout=60,
                )
                answer.raise_for_status()
            time.sleep(2)  # Jaeger's batch processor
            options = RemoteOptions(addresses.query_url, {}, timeout_s=60)

            def read(path: str, n: int) -> int:
                if path == "local store":
                    return len(store.get_trace(ids[n]))
                source = JaegerSource(options)
                source._version = "v3" if path == "API v3" else "v1"
                found = source.trace(ids[n])
                return len(found.spans) if found is not None else 0

            for r in range(rounds):
                order = PATHS[r % 3 :] + PATHS[: r % 3]
                for n in sizes:
                    for path in order:
                        t0, c0 = time.perf_counter(), time.process_time()
                        got = read(path, n)
                        wall[path, n].append((time.perf_counter() - t0) * 1000)
                        cpu[path, n].append((time.process_time() - c0) * 1000)
                        assert got == n, (path, n, got)
                log(f"remote: round {r + 1} of {rounds}")
            store.close()
        finally:
            for child in started:
                stop_child(child)
    result = {
        "rounds": rounds,
        "reads": {
            f"{path} {n}": {"wall_ms": spread(wall[path, n]), "cpu_ms": spread(cpu[path, n])}
            for path in PATHS
            for n in sizes
        },
    }
    rows = [
        (f"{n:,}", path, spread(wall[path, n]).fmt(1), spread(cpu[path, n]).fmt(1))
        for n in sizes
        for path in PATHS
    ]
    text = (
        "### 15. A trace from a remote Jaeger\n\n"
        + table(["spans", "read through", "wall ms", "viewer CPU ms"], rows)
        + f"\n\nMedian [min..max] of {rounds} rounds, paths interleaved; a new source each "
        "read (no cache). Wall time includes Jaeger 2.12's own work (in-memory storage)."
    )
    return result, text
