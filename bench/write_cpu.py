"""CPU time per span of the store's write path, for comparing two checkouts.

``python -m bench.write_cpu [--batches N]`` writes fresh demo-like requests of 512
spans into a store in a temporary directory (filled with ``--fill`` spans first)
through both write paths, the OTLP receiver's (``SpanStore.write_request`` of a
decoded request with its bytes) and the ``local`` exporter's
(``LocalSpanExporter.export`` of SDK spans, encoding included), and prints the CPU
time of this thread per span, median [min..max] over the batches, as one JSON line.

CPU time, not spans/s: on a shared machine the elapsed time of a write swings with
the other load several-fold, its CPU time much less. Run it from two checkouts in
turn (the tree it runs from is the code measured), e.g. before and after a change
to the write path::

    for i in 1 2 3; do
      (cd ../before && python -m bench.write_cpu); (cd ../after && python -m bench.write_cpu)
    done
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.common import spread
from bench.spandata import demo_batches, to_readable, to_request


def measure(batches: int, fill: int) -> dict[str, object]:
    """Write ``batches`` requests through each path; return CPU µs per span."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from cvtrace.exporters.local import LocalSpanExporter
    from cvtrace.store import SpanStore

    now = time.time_ns()
    with tempfile.TemporaryDirectory(prefix="bench-write-cpu-") as tmp:
        otlp_path, local_path = Path(tmp) / "otlp.sqlite3", Path(tmp) / "local.sqlite3"
        store = SpanStore(otlp_path, max_spans=0)
        exporter = LocalSpanExporter(local_path)
        try:
            for batch in demo_batches(1, fill, now - 3600 * 10**9, 3600 * 10**9):
                store.write_request(to_request(batch))
                exporter.export(to_readable(batch))
            requests = []
            for batch in demo_batches(2, batches * 512, now - 60 * 10**9, 60 * 10**9):
                body = to_request(batch).SerializeToString()
                requests.append((len(batch), body, to_readable(batch)))
            otlp_us: list[float] = []
            local_us: list[float] = []
            for count, body, readable in requests:  # the two paths take turns
                request = ExportTraceServiceRequest.FromString(body)
                c0 = time.thread_time()
                store.write_request(request, body)
                otlp_us.append((time.thread_time() - c0) * 1e6 / count)
                c0 = time.thread_time()
                exporter.export(readable)
                local_us.append((time.thread_time() - c0) * 1e6 / count)
        finally:
            exporter.shutdown()
            store.close()
    return {
        "batches": len(otlp_us),
        "otlp_us_per_span": spread(otlp_us).fmt(2),
        "local_us_per_span": spread(local_us).fmt(2),
        "otlp_median": spread(otlp_us).median,
        "local_median": spread(local_us).median,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure and print one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.write_cpu", description=__doc__)
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--fill", type=int, default=50_000)
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(measure(args.batches, args.fill)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
