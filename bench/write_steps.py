"""CPU time per span of each step of the viewer's write path, in process (issue 16).

``python -m bench.write_steps`` writes 100 fresh demo-like requests of 512 spans (after
20 of warm-up) into a copy of the cached 1M-span store, as the viewer does (bytes
decoded, ``SpanStore.write_request`` with the bytes, background checkpoints), and
prints the CPU time of this thread per span spent in each step: the decoding, the
request's preparation (``prepare_request``), each table's ``INSERT``s, the ``COMMIT``,
and the rest of the write (Python). The steps are timed by wrapping the store's
functions, so the same script measures another checkout of the same layout: run it
from each in turn (``PYTHONPATH=<checkout>``), as for :mod:`bench.write_cpu`.
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import data_dir
from bench.spandata import demo_batches, million_span_store, to_request

WARM_UP = 20
REQUESTS = 100


def measure() -> dict[str, float]:
    """Return µs of CPU per span by step."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from cvtrace.store import SpanStore, spanstore, writing

    cost: collections.defaultdict[str, float] = collections.defaultdict(float)
    insert_rows = writing._insert_rows
    prepare_request = spanstore.prepare_request  # type: ignore[attr-defined]

    def timed_insert(conn: sqlite3.Connection, insert: str, width: int, values: Any) -> None:
        t = time.thread_time()
        insert_rows(conn, insert, width, values)
        table = insert.split("(")[0].split("INTO")[1].strip()
        cost[f"INSERT {table}"] += time.thread_time() - t

    @contextlib.contextmanager
    def timed_transaction(conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        t = time.thread_time()
        conn.execute("COMMIT")
        cost["COMMIT"] += time.thread_time() - t

    def timed_prepare(*args: Any) -> Any:
        t = time.thread_time()
        prepared = prepare_request(*args)
        cost["prepare_request"] += time.thread_time() - t
        return prepared

    # the store's own names, replaced in this process only
    setattr(writing, "_insert_rows", timed_insert)  # noqa: B010
    setattr(writing, "write_transaction", timed_transaction)  # noqa: B010
    setattr(spanstore, "prepare_request", timed_prepare)  # noqa: B010
    now = time.time_ns()
    with tempfile.TemporaryDirectory(dir=data_dir()) as tmp:
        db = Path(tmp) / "store.sqlite3"
        shutil.copy(million_span_store(), db)
        store = SpanStore(db, max_spans=0, checkpoint_interval_s=0.5)
        bodies = [
            to_request(batch).SerializeToString()
            for batch in demo_batches(7, (WARM_UP + REQUESTS) * 512, now - 60 * 10**9, 60 * 10**9)
        ]
        try:
            for body in bodies[:WARM_UP]:
                store.write_request(ExportTraceServiceRequest.FromString(body), body)
            cost.clear()
            total = 0.0
            for body in bodies[WARM_UP:]:
                c0 = time.thread_time()
                request = ExportTraceServiceRequest.FromString(body)
                c1 = time.thread_time()
                store.write_request(request, body)
                total += time.thread_time() - c0
                cost["decode"] += c1 - c0
        finally:
            store.close()
    cost["the rest of the write (Python)"] = total - sum(cost.values())
    spans = REQUESTS * 512
    ordered = sorted(cost.items(), key=lambda item: -item[1])
    steps = {step: seconds / spans * 1e6 for step, seconds in ordered}
    return {"total": total / spans * 1e6, **steps}


def main() -> None:
    """Print the steps, µs of CPU per span."""
    for step, us in measure().items():
        print(f"{us:6.2f}  {step}")


if __name__ == "__main__":
    main()
