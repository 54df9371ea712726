"""The stores of the cost curve: 100k, 1M, 3M and 10M demo-like spans, built once and cached.

One pass writes the largest store, straight through the store's writer
(``SpanStore.write_request`` with the request's bytes, as the OTLP receiver calls it; no
HTTP), and copies the file when it reaches each smaller size, so the smaller stores
are the first spans of the largest one. The requests are made (``demo_batches``,
``to_request``, serialized) in a second process while this one writes.

The files live in ``$BENCH_DATA_DIR/scale/LARGEST-DIGEST/`` (ignored by git), named by
a digest of the builder's inputs: the sizes, the seed, the time range and the source
of the code that makes the spans. A folder whose name matches is reused as is (a
newer schema migrates its stores when they are opened); ``build.json`` there records
how long the build took and the sizes.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import multiprocessing
import shutil
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import spandata
from bench.common import data_dir, log

SCALE_SIZES = (100_000, 1_000_000, 3_000_000, 10_000_000)
SEED = 16
DAYS = 7
"""The largest store's traces start over the last week (a staging environment's week)."""
_CHUNK = 16
"""Requests per message from the making process."""


def builder_digest(sizes: tuple[int, ...] = SCALE_SIZES) -> str:
    """A digest of everything the stores' contents depend on, except the store's code."""
    parts = [
        repr((sizes, SEED, DAYS, spandata.BATCH_SPANS)),
        *(_code(f) for f in (spandata.demo_trace, spandata.demo_batches, spandata.to_request)),
        repr(spandata._RESOURCES),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def scale_dir() -> Path:
    """The folder of the cached stores, one folder per build."""
    path = data_dir() / "scale"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _code(function: Any) -> str:
    """A function's code as Python reads it: without its comments.

    An edited comment or ``type: ignore`` must not throw away a 14-minute build.
    """
    return ast.dump(ast.parse(textwrap.dedent(inspect.getsource(function))))


def build_dir(sizes: tuple[int, ...]) -> Path:
    """The folder of one build: its largest size and the digest of its inputs."""
    return scale_dir() / f"{max(sizes)}-{builder_digest(sizes)}"


def scale_stores(sizes: tuple[int, ...] = SCALE_SIZES) -> tuple[dict[int, Path], dict[str, Any]]:
    """Return the cached store of each size (building them if needed) and the build record.

    A build deletes the older builds of the same largest size first (their inputs
    changed), and keeps the others (a ``--quick`` run's small stores are another build).
    """
    folder = build_dir(sizes)
    paths = {size: folder / f"store-{size}.sqlite3" for size in sizes}
    record_path = folder / "build.json"
    if all(p.exists() for p in paths.values()) and record_path.exists():
        return paths, json.loads(record_path.read_text())
    for old in scale_dir().glob(f"{max(sizes)}-*"):
        shutil.rmtree(old)
    folder.mkdir()
    record = _build(paths, folder / "building.sqlite3")
    record_path.write_text(json.dumps(record, indent=2))
    return paths, record


def _make_requests(queue: Any, seed: int, total: int, start_ns: int, span_ns: int) -> None:
    """In the second process: put lists of (spans, request bytes) on ``queue``; None last."""
    chunk: list[tuple[int, bytes]] = []
    for batch in spandata.demo_batches(seed, total, start_ns, span_ns):
        chunk.append((len(batch), spandata.to_request(batch).SerializeToString()))
        if len(chunk) >= _CHUNK:
            queue.put(chunk)
            chunk = []
    queue.put(chunk)
    queue.put(None)


def demo_requests(
    seed: int, total: int, start_ns: int, span_ns: int
) -> Iterator[tuple[int, bytes]]:
    """(spans, serialized request) of ``demo_batches(seed, ...)``, made in a second process."""
    ctx = multiprocessing.get_context("fork")
    queue: Any = ctx.Queue(maxsize=8)
    maker = ctx.Process(target=_make_requests, args=(queue, seed, total, start_ns, span_ns))
    maker.start()
    try:
        while (chunk := queue.get()) is not None:
            yield from chunk
    finally:
        maker.terminate()
        maker.join()


def _build(paths: dict[int, Path], building: Path) -> dict[str, Any]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from cvtrace.store import SpanStore

    sizes = sorted(paths)
    largest = sizes[-1]
    log(
        f"scale: building stores of {', '.join(f'{s:,}' for s in sizes)} spans in {building.parent}"
    )
    now = time.time_ns()
    span_ns = DAYS * 86_400 * 10**9
    t0 = time.monotonic()
    store = SpanStore(building, max_spans=0)
    written = 0
    pending = list(sizes)
    built: dict[str, Any] = {}
    try:
        for count, body in demo_requests(SEED, largest, now - span_ns, span_ns):
            store.write_request(ExportTraceServiceRequest.FromString(body), body)
            written += count
            if written >= pending[0]:
                size = pending.pop(0)
                store.close()
                _checkpoint(building)
                seconds = time.monotonic() - t0
                if size == largest:
                    building.rename(paths[size])
                else:
                    shutil.copyfile(building, paths[size])
                    store = SpanStore(building, max_spans=0)
                built[str(size)] = {
                    "spans": written,
                    "bytes": paths[size].stat().st_size,
                    "seconds_into_build": round(seconds, 1),
                }
                log(f"scale: {written:,} spans after {seconds:.0f} s -> {paths[size].name}")
                if not pending:
                    break
    finally:
        store.close()
    return {"build_seconds": round(time.monotonic() - t0, 1), "stores": built}


def _checkpoint(path: Path) -> None:
    """Fold the WAL into the main file, so the store is one file to copy."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    print(json.dumps(scale_stores()[1], indent=2))
