"""Synthetic spans shaped like the demo's traces, and the cached stores built from them.

A demo-like trace: a ``circuits`` SERVER span for a route, two to five SQLite query
spans under it, and sometimes a CLIENT call to the ``preview`` service with that
service's SERVER span and a render span; about 1% fail with a 500. Spans come out
as OTLP ``ExportTraceServiceRequest`` messages (for the receiver and the store) or
as SDK ``ReadableSpan`` objects (for the ``local`` exporter).

``million_span_store()`` builds the 1,000,000-span store once and caches it under the
bench data directory; ``big_trace_store()`` does the same for single traces of 1,000,
10,000 and 50,000 spans.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from bench.common import data_dir, log

MILLION = 1_000_000
BIG_TRACE_SIZES = (10, 1_000, 10_000, 50_000, 100_000)
BATCH_SPANS = 512
"""Spans per request: the SDK's default export batch."""

_ROUTES = (
    ("GET", "/circuits/<int:circuit_id>", 0.55),
    ("GET", "/circuits", 0.2),
    ("GET", "/", 0.1),
    ("POST", "/circuits", 0.05),
    ("POST", "/circuits/<int:circuit_id>/star", 0.05),
    ("GET", "/users/<username>", 0.05),
)
_TABLES = ("circuits", "stars", "comments", "users")
_KIND = {"server": Span.SPAN_KIND_SERVER, "client": Span.SPAN_KIND_CLIENT, "internal": 1}


@dataclass
class SpanSpec:
    """One span, independent of its encoding."""

    service: str
    trace_id: bytes
    span_id: bytes
    parent_id: bytes
    name: str
    kind: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    error: bool = False


def _id(rng: random.Random, size: int) -> bytes:
    return rng.getrandbits(size * 8).to_bytes(size, "big") or b"\x01" * size


def demo_trace(rng: random.Random, start_ns: int) -> list[SpanSpec]:
    """One demo-like trace starting at ``start_ns``."""
    trace_id = _id(rng, 16)
    method, route, _ = rng.choices(_ROUTES, [r[2] for r in _ROUTES])[0]
    circuit = rng.randint(1, 300)
    path = route.replace("<int:circuit_id>", str(circuit)).replace("<username>", "ada")
    error = rng.random() < 0.01
    duration = int(rng.lognormvariate(15.2, 0.7))  # median ~4 ms, p99 ~20 ms
    root = SpanSpec(
        "circuits",
        trace_id,
        _id(rng, 8),
        b"",
        f"{method} {route}",
        "server",
        start_ns,
        start_ns + duration,
        {
            "http.request.method": method,
            "http.route": route,
            "url.path": path,
            "url.scheme": "http",
            "server.address": "127.0.0.1",
            "http.response.status_code": 500 if error else 200,
            "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) bench",
        },
        error,
    )
    spans = [root]
    t = start_ns + duration // 20
    for _ in range(rng.randint(2, 5)):
        table = rng.choice(_TABLES)
        q = int(rng.lognormvariate(12, 0.6))
        spans.append(
            SpanSpec(
                "circuits",
                trace_id,
                _id(rng, 8),
                root.span_id,
                "SELECT circuits.sqlite3",
                "client",
                t,
                min(t + q, root.end_ns),
                {
                    "db.system.name": "sqlite",
                    "db.namespace": "circuits.sqlite3",
                    "db.operation.name": "SELECT",
                    "db.query.text": f"SELECT {table}.id, {table}.name FROM {table} "
                    f"WHERE {table}.id = ?",
                },
            )
        )
        t += q + 20_000
    if method == "POST" and route == "/circuits":
        c0 = t
        c1 = min(root.end_ns, c0 + duration // 3)
        client = SpanSpec(
            "circuits",
            trace_id,
            _id(rng, 8),
            root.span_id,
            "POST",
            "client",
            c0,
            c1,
            {"http.request.method": "POST", "server.address": "127.0.0.1", "server.port": 8001},
        )
        server = SpanSpec(
            "preview",
            trace_id,
            _id(rng, 8),
            client.span_id,
            "POST /render",
            "server",
            c0 + 50_000,
            c1 - 50_000,
            {
                "http.request.method": "POST",
                "http.route": "/render",
                "url.path": "/render",
                "http.response.status_code": 200,
            },
        )
        render = SpanSpec(
            "preview",
            trace_id,
            _id(rng, 8),
            server.span_id,
            "render svg",
            "internal",
            c0 + 80_000,
            c1 - 80_000,
            {"circuit.gates": rng.randint(3, 320)},
        )
        spans += [client, server, render]
    return spans


def big_trace(rng: random.Random, size: int, start_ns: int) -> list[SpanSpec]:
    """One trace of ``size`` spans: a batch job fanning out over three services."""
    trace_id = _id(rng, 16)
    services = ("circuits", "preview", "jobs")
    root = SpanSpec(
        "jobs",
        trace_id,
        _id(rng, 8),
        b"",
        "nightly rebuild",
        "server",
        start_ns,
        start_ns + size * 200_000,
        {"job.name": "rebuild", "job.items": size},
    )
    spans = [root]
    frontier = [root]
    i = 0
    while len(spans) < size:
        parent = frontier[i % len(frontier)]
        i += 1
        width = parent.end_ns - parent.start_ns
        s0 = parent.start_ns + rng.randint(0, max(1, width // 2))
        s1 = min(parent.end_ns, s0 + max(1000, int(width * rng.uniform(0.01, 0.5))))
        kind = rng.choice(("internal", "client", "server"))
        span = SpanSpec(
            rng.choice(services),
            trace_id,
            _id(rng, 8),
            parent.span_id,
            rng.choice(("SELECT circuits.sqlite3", "render svg", "POST /render", "simulate")),
            kind,
            s0,
            s1,
            {"item": len(spans), "db.system.name": "sqlite"},
            rng.random() < 0.002,
        )
        spans.append(span)
        if len(frontier) < size // 4 and rng.random() < 0.6:
            frontier.append(span)
    return spans


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    return AnyValue(string_value=str(value))


_RESOURCES: dict[str, list[KeyValue]] = {
    service: [
        KeyValue(key="service.name", value=AnyValue(string_value=service)),
        KeyValue(key="service.version", value=AnyValue(string_value="0.1.0")),
        KeyValue(key="host.name", value=AnyValue(string_value="bench-host")),
        KeyValue(key="telemetry.sdk.language", value=AnyValue(string_value="python")),
    ]
    for service in ("circuits", "preview", "jobs")
}


def to_request(spans: Sequence[SpanSpec]) -> ExportTraceServiceRequest:
    """An OTLP request holding ``spans``, one ResourceSpans per service."""
    request = ExportTraceServiceRequest()
    by_service: dict[str, Any] = {}
    for spec in spans:
        scope_spans = by_service.get(spec.service)
        if scope_spans is None:
            resource_spans = request.resource_spans.add()
            resource_spans.resource.attributes.extend(_RESOURCES[spec.service])
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = "opentelemetry.instrumentation.flask"
            by_service[spec.service] = scope_spans
        span = scope_spans.spans.add()
        span.trace_id = spec.trace_id
        span.span_id = spec.span_id
        if spec.parent_id:
            span.parent_span_id = spec.parent_id
        span.name = spec.name
        span.kind = _KIND[spec.kind]
        span.start_time_unix_nano = spec.start_ns
        span.end_time_unix_nano = spec.end_ns
        span.attributes.extend(KeyValue(key=k, value=_value(v)) for k, v in spec.attributes.items())
        if spec.error:
            span.status.code = Status.STATUS_CODE_ERROR
    return request


def to_readable(spans: Sequence[SpanSpec]) -> list[Any]:
    """The same spans as SDK ``ReadableSpan`` objects (what an exporter receives)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
    from opentelemetry.trace.status import Status as SdkStatus
    from opentelemetry.trace.status import StatusCode

    kinds = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT, "internal": SpanKind.INTERNAL}
    resources = {
        service: Resource({kv.key: kv.value.string_value for kv in attrs})
        for service, attrs in _RESOURCES.items()
    }
    scope = InstrumentationScope("opentelemetry.instrumentation.flask", "0.66b1")
    flags = TraceFlags(TraceFlags.SAMPLED)
    out = []
    for spec in spans:
        trace_id = int.from_bytes(spec.trace_id, "big")
        parent = (
            SpanContext(trace_id, int.from_bytes(spec.parent_id, "big"), False, flags)
            if spec.parent_id
            else None
        )
        out.append(
            ReadableSpan(
                name=spec.name,
                context=SpanContext(trace_id, int.from_bytes(spec.span_id, "big"), False, flags),
                parent=parent,
                resource=resources[spec.service],
                attributes=spec.attributes,
                kind=kinds[spec.kind],
                status=SdkStatus(StatusCode.ERROR) if spec.error else SdkStatus(StatusCode.UNSET),
                start_time=spec.start_ns,
                end_time=spec.end_ns,
                instrumentation_scope=scope,
            )
        )
    return out


def demo_batches(
    seed: int, total_spans: int, start_ns: int, span_ns: int
) -> Iterator[list[SpanSpec]]:
    """Batches of about :data:`BATCH_SPANS` spans of whole demo-like traces.

    Trace start times spread evenly from ``start_ns`` over ``span_ns``.
    """
    rng = random.Random(seed)
    made = 0
    batch: list[SpanSpec] = []
    approx_traces = max(1, total_spans // 5)
    step = max(1, span_ns // approx_traces)
    t = start_ns
    while made < total_spans:
        trace = demo_trace(rng, t)
        t += step
        batch += trace
        made += len(trace)
        if len(batch) >= BATCH_SPANS:
            yield batch
            batch = []
    if batch:
        yield batch


QUICK_STORE_SPANS = 50_000
"""Spans in the big store of a ``--quick`` run (unless the 1M store is built already)."""


def store_spans(quick: bool = False) -> int:
    """Spans in the big store: ``BENCH_STORE_SPANS`` if set, else 1,000,000.

    A quick run uses the 1M store if it is built, else a store of
    :data:`QUICK_STORE_SPANS` (seconds to build instead of minutes).
    """
    raw = os.environ.get("BENCH_STORE_SPANS")
    if raw:
        return int(raw)
    if quick and not _store_path(MILLION).exists():
        return QUICK_STORE_SPANS
    return MILLION


def _store_path(total: int) -> Path:
    from cvtrace.store import SCHEMA_VERSION

    name = "1m" if total == MILLION else str(total)
    return data_dir() / f"store-{name}-schema{SCHEMA_VERSION}.sqlite3"


def big_trace_sizes() -> tuple[int, ...]:
    """Sizes of the big traces, or ``BENCH_BIG_TRACE_SIZES`` (comma separated)."""
    raw = os.environ.get("BENCH_BIG_TRACE_SIZES")
    return tuple(int(x) for x in raw.split(",")) if raw else BIG_TRACE_SIZES


def million_span_store(quick: bool = False) -> Path:
    """The store with 1,000,000 demo-like spans over the last day (built once, cached).

    See :func:`store_spans` for the smaller stores of quick runs and the smoke test.
    """
    from cvtrace.store import SpanStore

    total = store_spans(quick)
    path = _store_path(total)
    if path.exists():
        return path
    tmp = path.with_name(path.name.replace(".sqlite3", ".building.sqlite3"))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    log(f"building the {total}-span store {path} (once; a few minutes for 1M)")
    t0 = time.monotonic()
    now = time.time_ns()
    day = 86_400 * 10**9
    store = SpanStore(tmp, max_spans=0)
    try:
        for batch in demo_batches(1, total, now - day, day):
            store.write_request(to_request(batch))
        count = store.span_count()
    finally:
        store.close()
    _checkpoint(tmp)
    tmp.rename(path)
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    log(f"built {count} spans in {time.monotonic() - t0:.0f} s")
    return path


def big_trace_store() -> tuple[Path, dict[int, str]]:
    """A store with one trace of each size in :data:`BIG_TRACE_SIZES` (built once)."""
    from cvtrace.store import SCHEMA_VERSION, SpanStore

    sizes = big_trace_sizes()
    path = (
        data_dir() / f"store-bigtraces-{'-'.join(map(str, sizes))}-schema{SCHEMA_VERSION}.sqlite3"
    )
    ids_path = path.with_suffix(".ids")
    if path.exists() and ids_path.exists():
        stored = dict(line.split() for line in ids_path.read_text().splitlines())
        return path, {int(k): v for k, v in stored.items()}
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    rng = random.Random(7)
    store = SpanStore(path, max_spans=0)
    ids: dict[int, str] = {}
    try:
        for size in sizes:
            spans = big_trace(rng, size, time.time_ns() - 3_600 * 10**9)
            ids[size] = spans[0].trace_id.hex()
            for i in range(0, len(spans), 5000):
                store.write_request(to_request(spans[i : i + 5000]))
    finally:
        store.close()
    _checkpoint(path)
    ids_path.write_text("".join(f"{k} {v}\n" for k, v in ids.items()))
    return path, ids


def _checkpoint(path: Path) -> None:
    """Fold the WAL into the main file, so the store is one file to copy."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
