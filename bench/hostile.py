"""Benchmark 8: the viewer under hostile or outsized requests (issue 11, items 1, 7 and 8).

Each part runs ``cvtrace view`` as a subprocess and samples its RSS (``/proc``)
every 10 ms while the requests run; "RSS growth" is the highest sample minus the
RSS just before.

- **gzip members**: bodies of empty gzip members (``gzip.compress(b'') * n``) of
  1, 2, 4 and 20 MB posted to ``/v1/traces`` with ``Content-Encoding: gzip``; the
  time to the answer and the viewer's CPU time for it (client timeout 60 s; a
  fresh viewer per size, so a request still burning CPU after a timeout does not
  slow the next).
- **big trace responses**: a store holding one trace of 200,000 spans
  (``bench.spandata.big_trace``); ``GET /api/traces/{id}``, the trace's OTLP JSON
  download and ``/api/traces?service=jobs``, one at a time, then two of
  ``/api/traces/{id}`` at once; meanwhile another client asks ``/api/services``
  every 100 ms: its slowest answer says whether the viewer stayed responsive.
- **concurrent large OTLP requests**: 1 and then 8 simultaneous requests of one
  span with a 60 MB attribute (protobuf, under the 64 MiB limit): peak RSS growth
  and the answers' status codes.
"""

from __future__ import annotations

import gzip
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from bench.common import Viewer, cpu_seconds, log, table
from bench.spandata import big_trace_store

GZIP_SIZES_MB = (1, 2, 4, 20)
GZIP_TIMEOUT_S = 60.0
BIG_TRACE_SPANS = 200_000
ATTRIBUTE_MB = 60
PB = {"Content-Type": "application/x-protobuf"}


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident set size of process ``pid`` (or another ``/proc/PID/status`` field), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


class RssPeak:
    """Samples a process's RSS every 10 ms in a thread, while in a ``with``.

    Also its anonymous part (``RssAnon``: the heap, not the store file's pages that
    SQLite maps into memory, which the kernel may drop at will).
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = rss_kib(pid)
        self.peak = self.before
        self.anon_before = rss_kib(pid, "RssAnon")
        self.anon_peak = self.anon_before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_kib(self.pid))
            self.anon_peak = max(self.anon_peak, rss_kib(self.pid, "RssAnon"))

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kib(self.pid))

    @property
    def growth_mb(self) -> float:
        """Highest RSS seen minus the RSS at the start, MB."""
        return (self.peak - self.before) / 1024

    @property
    def anon_growth_mb(self) -> float:
        """The same for the anonymous part of the RSS, MB."""
        return (self.anon_peak - self.anon_before) / 1024


def _gzip_bodies(quick: bool) -> list[tuple[str, int, bytes]]:
    """(label, members, body): empty members, then 1,000 members of 20 KB of data."""
    member = gzip.compress(b"")
    bodies = []
    for size_mb in GZIP_SIZES_MB[:2] if quick else GZIP_SIZES_MB:
        count = size_mb * 1_000_000 // len(member)
        bodies.append((f"{size_mb} MB of empty members", count, member * count))
    # 1,000 copies of one request (a span with 20 KB of random, so incompressible, text):
    # concatenated protobuf messages are one message, the span stored once
    data = _request(os.urandom(10_000).hex())
    bodies.append(("20 MB in 1,000 members of 20 KB", 1000, gzip.compress(data) * 1000))
    return bodies


def _gzip_members(quick: bool) -> list[dict[str, Any]]:
    out = []
    for label, members, body in _gzip_bodies(quick):
        with Viewer(_empty_db()) as viewer:
            pid = viewer.proc.pid
            cpu0 = cpu_seconds(pid)
            t0 = time.perf_counter()
            try:
                response = requests.post(
                    viewer.otlp_url,
                    data=body,
                    headers={**PB, "Content-Encoding": "gzip"},
                    timeout=GZIP_TIMEOUT_S,
                )
                status: int | str = response.status_code
            except requests.Timeout:
                status = "timeout"
            elapsed = time.perf_counter() - t0
            cpu = cpu_seconds(pid) - cpu0
        out.append(
            {"body": label, "members": members, "status": status, "s": elapsed}
            | {"viewer_cpu_s": cpu}
        )
        log(f"hostile: {label}: {status} in {elapsed:.2f} s")
    return out


_DB_DIR: list[Path] = []


def _empty_db() -> Path:
    import tempfile

    if not _DB_DIR:
        _DB_DIR.append(Path(tempfile.mkdtemp(prefix="bench-hostile-")))
    path = _DB_DIR[0] / f"empty-{time.monotonic_ns()}.sqlite3"
    return path


def _while_polling(viewer: Viewer, work: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``work`` while polling /api/services; return its result, seconds, slowest poll."""
    stop = threading.Event()
    slowest = [0.0]

    def poll() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                t = time.perf_counter()
                session.get(viewer.url + "/api/services", timeout=120).raise_for_status()
                slowest[0] = max(slowest[0], time.perf_counter() - t)
                stop.wait(0.1)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    t0 = time.perf_counter()
    try:
        result = work()
    finally:
        elapsed = time.perf_counter() - t0
        stop.set()
        poller.join()
    return result, elapsed, slowest[0]


def _fetch(url: str) -> tuple[int, int]:
    """GET ``url``, reading the body in pieces; return the status and the body's size."""
    with requests.get(url, stream=True, timeout=600) as response:
        size = sum(len(chunk) for chunk in response.iter_content(1 << 16))
        return response.status_code, size


def _big_responses(quick: bool) -> list[dict[str, Any]]:
    spans = 20_000 if quick else BIG_TRACE_SPANS
    os.environ["BENCH_BIG_TRACE_SIZES"] = str(spans)
    try:
        db, ids = big_trace_store()
    finally:
        del os.environ["BENCH_BIG_TRACE_SIZES"]
    trace_id = ids[spans]
    out = []
    with Viewer(db) as viewer:
        requests.get(viewer.url + "/api/services", timeout=30).raise_for_status()
        cases: list[tuple[str, list[str]]] = [
            ("GET /api/traces/{id}", [f"{viewer.url}/api/traces/{trace_id}"]),
            ("GET /trace/{id}/otlp.json", [f"{viewer.url}/trace/{trace_id}/otlp.json"]),
            ("GET /api/traces?service=jobs", [f"{viewer.url}/api/traces?service=jobs"]),
            ("2 x GET /api/traces/{id} at once", [f"{viewer.url}/api/traces/{trace_id}"] * 2),
        ]
        for label, urls in cases:
            time.sleep(2)  # let the allocator give back what the last case freed
            cpu0 = cpu_seconds(viewer.proc.pid)
            with RssPeak(viewer.proc.pid) as rss, ThreadPoolExecutor(len(urls)) as pool:

                def fetch_all(urls: list[str] = urls) -> list[tuple[int, int]]:
                    return list(pool.map(_fetch, urls))

                answers, elapsed, slowest = _while_polling(viewer, fetch_all)
            cpu = cpu_seconds(viewer.proc.pid) - cpu0
            out.append(
                {
                    "case": label,
                    "spans": spans,
                    "status": [a[0] for a in answers],
                    "mb": answers[0][1] / 1e6,
                    "s": elapsed,
                    "viewer_cpu_s": cpu,
                    "rss_before_mb": rss.before / 1024,
                    "rss_growth_mb": rss.growth_mb,
                    "anon_growth_mb": rss.anon_growth_mb,
                    "slowest_services_s": slowest,
                }
            )
            log(f"hostile: {label}: {elapsed:.1f} s, RSS +{rss.growth_mb:.0f} MB")
    return out


def _request(blob: str) -> bytes:
    """A request of one span whose attribute ``blob`` is ``blob``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = b"\x01" * 16
    span.span_id = b"\x02" * 8
    span.name = "big"
    span.start_time_unix_nano = time.time_ns()
    span.end_time_unix_nano = span.start_time_unix_nano + 1000
    attribute = span.attributes.add()
    attribute.key = "blob"
    attribute.value.string_value = blob
    return request.SerializeToString()


def _concurrent_requests(quick: bool) -> list[dict[str, Any]]:
    body = _request("x" * (ATTRIBUTE_MB * 1_000_000))
    out = []
    for clients in (1, 2) if quick else (1, 8):
        with Viewer(_empty_db()) as viewer:
            requests.get(viewer.url + "/api/services", timeout=30).raise_for_status()
            time.sleep(1)

            def post(_: int, url: str = viewer.otlp_url) -> int:
                return requests.post(url, data=body, headers=PB, timeout=600).status_code

            with RssPeak(viewer.proc.pid) as rss, ThreadPoolExecutor(clients) as pool:
                t0 = time.perf_counter()
                statuses = list(pool.map(post, range(clients)))
                elapsed = time.perf_counter() - t0
        out.append(
            {
                "clients": clients,
                "statuses": sorted(statuses),
                "s": elapsed,
                "rss_before_mb": rss.before / 1024,
                "rss_growth_mb": rss.growth_mb,
                "anon_growth_mb": rss.anon_growth_mb,
            }
        )
        log(f"hostile: {clients} x {ATTRIBUTE_MB} MB: {statuses}, RSS +{rss.growth_mb:.0f} MB")
    return out


PARTS = {
    "gzip_members": _gzip_members,
    "big_responses": _big_responses,
    "concurrent_requests": _concurrent_requests,
}


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Measure (the parts in ``$BENCH_HOSTILE_PARTS``, default all); return results, Markdown."""
    wanted = os.environ.get("BENCH_HOSTILE_PARTS", ",".join(PARTS)).split(",")
    result = {name: part(quick) if name in wanted else [] for name, part in PARTS.items()}
    return result, markdown(result)


def markdown(result: dict[str, Any]) -> str:
    """The tables of BENCHMARKS.md section 8."""
    gzip_rows = [
        (
            f"{g['body']} ({g['members']:,})",
            g["status"],
            f"{g['s']:.2f}",
            f"{g['viewer_cpu_s']:.2f}",
        )
        for g in result["gzip_members"]
    ]
    big_rows = [
        (
            f"{b['case']} ({b['spans']:,} spans)",
            ", ".join(map(str, b["status"])),
            f"{b['mb']:.0f}",
            f"{b['s']:.1f}",
            f"{b['viewer_cpu_s']:.1f}",
            f"{b['rss_before_mb']:.0f}",
            f"{b['rss_growth_mb']:.0f}",
            f"{b.get('anon_growth_mb', float('nan')):.0f}",
            f"{b['slowest_services_s'] * 1000:.0f}",
        )
        for b in result["big_responses"]
    ]
    concurrent_rows = [
        (
            c["clients"],
            ", ".join(map(str, c["statuses"])),
            f"{c['s']:.1f}",
            f"{c['rss_before_mb']:.0f}",
            f"{c['rss_growth_mb']:.0f}",
            f"{c.get('anon_growth_mb', float('nan')):.0f}",
        )
        for c in result["concurrent_requests"]
    ]
    return "\n".join(
        [
            "### 8. Hostile and outsized requests (one run each)",
            "",
            f"Concatenated empty gzip members to `/v1/traces` (client timeout "
            f"{GZIP_TIMEOUT_S:.0f} s; viewer CPU = its CPU time while the client waited):",
            "",
            table(["body", "answer", "seconds", "viewer CPU s"], gzip_rows),
            "",
            "Big responses, read by the client in 64 KiB pieces, while another client asks "
            "`/api/services` every 100 ms (its slowest answer in the last column):",
            "",
            table(
                [
                    "request",
                    "status",
                    "MB",
                    "seconds",
                    "viewer CPU s",
                    "RSS before MB",
                    "RSS growth MB",
                    "of it anonymous MB",
                    "slowest /api/services ms",
                ],
                big_rows,
            ),
            "",
            f"Simultaneous OTLP/HTTP requests of one span with a {ATTRIBUTE_MB} MB attribute:",
            "",
            table(
                [
                    "clients",
                    "answers",
                    "seconds",
                    "RSS before MB",
                    "RSS growth MB",
                    "of it anonymous MB",
                ],
                concurrent_rows,
            ),
        ]
    )
