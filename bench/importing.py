"""Benchmark 8: ``cvtrace import`` rate of big files, in spans per second.

Three files of the same demo-like traces (``bench.spandata.demo_batches``: whole
traces, about five spans each):

- **OTLP JSON lines**: a request of ~512 spans per line, as the collector's ``file``
  exporter writes its batches (``cvtrace.otlp.json_form.otlp_json_bytes`` of each);
- **Jaeger JSON**: one ``{"data": [...]}`` document of every trace, as the viewer's
  ``/api/traces`` writes them (``cvtrace.viewer.jaeger.jaeger_trace_json`` of the traces
  read back from a store);
- **OTLP protobuf, length-prefixed**: the same requests in the file exporter's
  ``format: proto`` framing (for comparison: no JSON to parse).

Each round runs the real command (``python -m cvtrace.cli import FILE --db NEW``, a
subprocess, stderr not a terminal: no progress bar) into a new, empty store with
retention off, the formats taking turns; spans/s = spans in the file / wall time of
the whole command (start-up included, ~0.4 s), and the command's CPU time (user +
system) per span, which a busy machine disturbs less. Reported as median [min..max]
over the rounds.
"""

from __future__ import annotations

import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import PYTHON, clean_env, log, spread, table
from bench.spandata import demo_batches, to_request

ROUNDS = 3
SPANS = 100_000
QUICK_SPANS = 5_000
JSON_LINES = "OTLP JSON lines"
JAEGER = "Jaeger JSON"
PROTOBUF = "OTLP protobuf, length-prefixed"


def write_files(directory: Path, spans: int) -> tuple[dict[str, Path], int]:
    """Write the three files of ``spans`` demo spans; return them and the span count."""
    from cvtrace.otlp.json_form import otlp_json_bytes
    from cvtrace.store import SpanStore
    from cvtrace.viewer.jaeger import jaeger_trace_json

    now = time.time_ns()
    requests = [to_request(b) for b in demo_batches(8, spans, now - 3600 * 10**9, 3600 * 10**9)]
    total = sum(len(ss.spans) for r in requests for rs in r.resource_spans for ss in rs.scope_spans)
    paths = {
        JSON_LINES: directory / "traces.jsonl",
        JAEGER: directory / "traces.jaeger.json",
        PROTOBUF: directory / "traces.pb",
    }
    with paths[JSON_LINES].open("wb") as out:
        for request in requests:
            out.write(otlp_json_bytes(request) + b"\n")
    with paths[PROTOBUF].open("wb") as out:
        for request in requests:
            body = request.SerializeToString()
            out.write(len(body).to_bytes(4, "big") + body)
    store = SpanStore(directory / "source.sqlite3", max_spans=0)
    try:
        for request in requests:
            store.write_request(request)
        with paths[JAEGER].open("w") as out:
            out.write('{"data":[')
            ids = list(store.iter_trace_ids())
            for i in range(0, len(ids), 1000):
                traces = store.get_traces(ids[i : i + 1000])
                chunk = ",".join(
                    "".join(jaeger_trace_json([traces[t]]))
                    for t in ids[i : i + 1000]
                    if traces.get(t)
                )
                out.write(("," if i else "") + chunk)
            out.write("]}")
    finally:
        store.close()
    return paths, total


def _import(path: Path, db: Path) -> tuple[float, float]:
    """Run ``cvtrace import``; return its wall time and CPU time (user + system), in s."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(
        [PYTHON, "-m", "cvtrace.cli", "import", str(path), "--db", str(db)],
        capture_output=True,
        text=True,
        env=clean_env({"CVTRACE_VIEWER_MAX_SPANS": "0"}),
        check=False,
    )
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        msg = f"cvtrace import {path.name} failed ({done.returncode}): {done.stderr[-500:]}"
        raise RuntimeError(msg)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return elapsed, cpu


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Measure; return the results and their Markdown."""
    spans, rounds = (QUICK_SPANS, 2) if quick else (SPANS, ROUNDS)
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        directory = Path(tmp)
        log(f"importing: writing the files of {spans:,} spans")
        paths, total = write_files(directory, spans)
        sizes = {label: path.stat().st_size for label, path in paths.items()}
        rates: dict[str, list[float]] = {label: [] for label in paths}
        cpu_us: dict[str, list[float]] = {label: [] for label in paths}
        labels = list(paths)
        for r in range(rounds):
            for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
                db = directory / f"r{r}-{labels.index(label)}.sqlite3"
                seconds, cpu = _import(paths[label], db)
                rates[label].append(total / seconds)
                cpu_us[label].append(cpu / total * 1e6)
                log(f"importing: round {r + 1} {label}: {total / seconds:,.0f} spans/s")
                for leftover in directory.glob(f"{db.name}*"):
                    leftover.unlink()
    result = {
        "spans": total,
        "rounds": rounds,
        "formats": {
            label: {
                "bytes": sizes[label],
                "spans_per_s": spread(rates[label]),
                "cpu_us_per_span": spread(cpu_us[label]),
            }
            for label in labels
        },
    }
    rows = [
        (
            label,
            f"{sizes[label] / 2**20:,.1f} MiB",
            spread(rates[label]).fmt(0),
            spread(cpu_us[label]).fmt(1),
        )
        for label in labels
    ]
    text = "\n".join(
        [
            "### 8. `cvtrace import` rate",
            "",
            f"{total:,} demo-like spans per file, the command run {rounds} times per "
            "format into a new store (formats taking turns); spans/s of the whole command, "
            "median [min..max].",
            "",
            table(["format", "file", "spans/s", "CPU µs per span"], rows),
        ]
    )
    return result, text
