"""Benchmark 12: the real collector on otel-collector.yaml: spans per second per core, RSS.

cvtrace's collector distribution (``make collector``) runs the shipped config on
127.0.0.1 (its addresses from its ``CVTRACE_COLLECTOR_*`` variables), in front of a
counting receiver (:mod:`bench.receiver`) standing in for Jaeger (OTLP/gRPC), the viewer
and New Relic (OTLP/HTTP). Two sender threads in this process post pre-encoded OTLP/HTTP
requests of about 512 demo-like spans (the SDK's batch) back to back.

Variants, each its own collector, taking turns for ``ROUNDS`` interleaved rounds of
``ROUND_S`` seconds:

- **New Relic off**: no license key; the key guard drops the New Relic pipeline's spans,
  so the work is one pipeline's (filter, redaction, batch, two exporters);
- **New Relic on**: a key; the second pipeline also transforms, batches, gzips and
  sends every span.

Per round: spans sent / the collector's CPU seconds (user + system, from /proc) is
the spans a core handles per second, whatever the sender manages (one Python process
on a shared 2-core machine cannot saturate the collector: the wall rate is the
sender's); RSS after each round, and the peak (VmHWM). Every span must reach each
destination (checked after the rounds), or the figures are not reported.

Then ``memory_limiter``: bursts of 8 MiB requests (256 spans of 32 KiB) at a collector
whose back ends never answer (every batch stays queued), once with
``CVTRACE_COLLECTOR_MEMORY_LIMIT_MIB=64`` and once with the shipped percentages, which
outside a container are 80 % of the whole machine: requests refused, peak RSS.
"""

from __future__ import annotations

import http.client
import itertools
import os
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.common import REPO, Receiver, cpu_seconds, log, spread, table
from bench.spandata import demo_batches, to_request
from cvtrace.demo.cli import Child, stop_child
from cvtrace.demo.pipeline import CollectorAddresses, start_collector
from cvtrace.demo.ports import free_port

ROUNDS = 5
ROUND_S = 4.0
WARM_UP_S = 2.0
SENDERS = 2
BODIES = 40
"""Distinct request bodies, sent over and over (the receiver counts, it keeps nothing)."""
LICENSE_KEY = "0123456789abcdef0123456789abcdef0123NRAL"
VARIANTS = {"New Relic off": "off", "New Relic on": "on"}
BURST_REQUESTS = 40
BURST_SPANS = 256
BURST_SPAN_BYTES = 32 * 1024
BURST_LIMIT_MIB = 64


def binaries() -> tuple[Path, Path]:
    """The collector and Jaeger, built or found up to date by deploy/build.sh."""
    result = subprocess.run(
        [str(REPO / "deploy" / "build.sh")], capture_output=True, text=True, check=True
    )
    collector, jaeger = result.stdout.split()
    return Path(collector), Path(jaeger)


def _status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _bodies(count: int) -> list[tuple[int, bytes]]:
    now = time.time_ns()
    bodies = []
    for batch in itertools.islice(
        demo_batches(10, count * 512, now - 60 * 10**9, 60 * 10**9), count
    ):
        bodies.append((len(batch), to_request(batch).SerializeToString()))
    return bodies


def _post(connection: http.client.HTTPConnection, body: bytes) -> int:
    connection.request(
        "POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"}
    )
    response = connection.getresponse()
    response.read()
    return response.status


def send_for(port: int, bodies: Sequence[tuple[int, bytes]], seconds: float) -> int:
    """Post ``bodies`` in turn from :data:`SENDERS` threads for ``seconds``; return spans sent."""
    sent = [0] * SENDERS
    deadline = time.perf_counter() + seconds

    def sender(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for count, body in itertools.cycle(bodies[index::SENDERS]):
            if time.perf_counter() > deadline:
                break
            status = _post(connection, body)
            if status != 200:
                msg = f"the collector answered {status}"
                raise RuntimeError(msg)
            sent[index] += count
        connection.close()

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(sent)


def _collector(
    binary: Path,
    workdir: Path,
    name: str,
    started: list[Child],
    environment: dict[str, str],
    jaeger: str,
    viewer: str,
) -> tuple[Child, CollectorAddresses]:
    addresses = CollectorAddresses.on_free_ports()
    child = start_collector(
        binary,
        REPO / "otel-collector.yaml",
        addresses,
        workdir / f"{name}.log",
        started=started,
        jaeger_otlp_grpc=jaeger,
        viewer_otlp_http=viewer,
        environment=environment,
        name=name,
    )
    return child, addresses


def throughput(binary: Path, workdir: Path, quick: bool) -> dict[str, Any]:
    """The interleaved rounds of the two variants."""
    rounds, round_s = (1, 1.0) if quick else (ROUNDS, ROUND_S)
    bodies = _bodies(8 if quick else BODIES)
    per_span_bytes = sum(len(body) for _count, body in bodies) / sum(c for c, _b in bodies)
    started: list[Child] = []
    with Receiver(grpc=True) as receiver:
        try:
            collectors = {}
            for label, name in VARIANTS.items():
                environment = {"NEW_RELIC_OTLP_ENDPOINT": f"{receiver.url}/{name}-newrelic"}
                if name == "on":
                    environment["NEW_RELIC_LICENSE_KEY"] = LICENSE_KEY
                collectors[label] = _collector(
                    binary,
                    workdir,
                    f"collector-{name}",
                    started,
                    environment,
                    f"127.0.0.1:{receiver.grpc_port}",
                    f"{receiver.url}/{name}-viewer",
                )
            sent: Counter[str] = Counter()
            for label, (_child, addresses) in collectors.items():
                port = int(addresses.otlp_http.rsplit(":", 1)[1])
                sent[label] += send_for(port, bodies, 0.3 if quick else WARM_UP_S)
            samples: dict[str, list[dict[str, float]]] = {label: [] for label in collectors}
            for number in range(rounds):
                for label, (child, addresses) in collectors.items():
                    port = int(addresses.otlp_http.rsplit(":", 1)[1])
                    pid = child.process.pid
                    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
                    spans = send_for(port, bodies, round_s)
                    elapsed, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
                    sent[label] += spans
                    samples[label].append(
                        {
                            "spans_per_s": spans / elapsed,
                            "cpu_share": cpu / elapsed,
                            "spans_per_cpu_s": spans / cpu if cpu else float("nan"),
                            "rss_mib": _status_mib(pid, "VmRSS"),
                        }
                    )
                log(f"collector: round {number + 1}/{rounds} done")
            # Every span reaches every destination (the batches leave within 2 s).
            expected = {f"{name}-viewer": sent[label] for label, name in VARIANTS.items()}
            expected["on-newrelic"] = sent["New Relic on"]
            expected["grpc"] = sum(sent.values())
            deadline = time.monotonic() + 60
            while any(receiver.spans(k) < v for k, v in expected.items()):
                if time.monotonic() > deadline:
                    got = {k: receiver.spans(k) for k in expected}
                    msg = f"spans missing at the receiver: sent {expected}, received {got}"
                    raise RuntimeError(msg)
                time.sleep(0.5)
            delivered = {k: receiver.spans(k) for k in expected}
            delivered["off-newrelic"] = receiver.spans("off-newrelic")
            if delivered["off-newrelic"]:
                msg = "without a key, spans reached New Relic's stand-in"
                raise RuntimeError(msg)
            peaks = {
                label: _status_mib(c.process.pid, "VmHWM") for label, (c, _a) in collectors.items()
            }
        finally:
            for child in reversed(started):
                stop_child(child)
    return {
        "rounds": rounds,
        "round_s": round_s,
        "bytes_per_span": per_span_bytes,
        "spans_per_request": sum(c for c, _b in bodies) / len(bodies),
        "variants": {
            label: {
                "spans_per_s": spread(s["spans_per_s"] for s in samples[label]),
                "cpu_share": spread(s["cpu_share"] for s in samples[label]),
                "spans_per_cpu_s": spread(s["spans_per_cpu_s"] for s in samples[label]),
                "rss_mib": spread(s["rss_mib"] for s in samples[label]),
                "peak_rss_mib": peaks[label],
                "sent": sent[label],
            }
            for label in collectors
        },
        "delivered": delivered,
    }


def _burst_bodies() -> Iterator[bytes]:
    payload = os.urandom(BURST_SPAN_BYTES // 2).hex()
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    for number in range(BURST_REQUESTS):
        request = ExportTraceServiceRequest()
        spans = request.resource_spans.add().scope_spans.add().spans
        now = time.time_ns()
        for index in range(BURST_SPANS):
            span = spans.add(
                trace_id=os.urandom(16),
                span_id=os.urandom(8),
                name="burst",
                start_time_unix_nano=now,
                end_time_unix_nano=now + 1000,
            )
            span.attributes.add(key="payload").value.string_value = payload
            span.attributes.add(key="n").value.int_value = number * BURST_SPANS + index
        yield request.SerializeToString()


def burst(binary: Path, workdir: Path, quick: bool) -> list[dict[str, Any]]:
    """The same burst at a collector with a small memory limit, and with the shipped one."""
    rows = []
    requests_sent = 6 if quick else BURST_REQUESTS
    bodies = list(itertools.islice(_burst_bodies(), requests_sent))
    for label, limit in (
        (f"{BURST_LIMIT_MIB} MiB (CVTRACE_COLLECTOR_MEMORY_LIMIT_MIB)", str(BURST_LIMIT_MIB)),
        ("80 % of this machine (the shipped default outside a container)", "0"),
    ):
        started: list[Child] = []
        try:
            child, addresses = _collector(
                binary,
                workdir,
                f"burst-{limit}",
                started,
                {"CVTRACE_COLLECTOR_MEMORY_LIMIT_MIB": limit},
                f"127.0.0.1:{free_port()}",  # nothing listens: every batch stays queued
                f"http://127.0.0.1:{free_port()}",
            )
            port = int(addresses.otlp_http.rsplit(":", 1)[1])
            statuses: Counter[int] = Counter()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            t0 = time.perf_counter()
            for body in bodies:
                statuses[_post(connection, body)] += 1
            elapsed = time.perf_counter() - t0
            connection.close()
            time.sleep(2)  # the limiter checks once a second
            rows.append(
                {
                    "limit": label,
                    "requests": len(bodies),
                    "mib_sent": sum(len(b) for b in bodies) / 2**20,
                    "accepted": statuses[200],
                    "refused": sum(n for status, n in statuses.items() if status != 200),
                    "statuses": dict(statuses),
                    "seconds": elapsed,
                    "peak_rss_mib": _status_mib(child.process.pid, "VmHWM"),
                    "rss_after_mib": _status_mib(child.process.pid, "VmRSS"),
                }
            )
            log(f"collector: burst with {label}: {dict(statuses)}")
        finally:
            for started_child in reversed(started):
                stop_child(started_child)
    return rows


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Run the benchmark; return its results and its Markdown section."""
    collector_binary, _jaeger = binaries()
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp:
        workdir = Path(tmp)
        result = throughput(collector_binary, workdir, quick)
        result["burst"] = burst(collector_binary, workdir, quick)
    return result, report(result)


def report(result: dict[str, Any]) -> str:
    """The Markdown section of BENCHMARKS.md."""
    rows = [
        (
            label,
            v["spans_per_cpu_s"].fmt(),
            v["cpu_share"].fmt(2),
            v["spans_per_s"].fmt(),
            v["rss_mib"].fmt(),
            f"{v['peak_rss_mib']:.0f}",
        )
        for label, v in result["variants"].items()
    ]
    burst_rows = [
        (
            b["limit"],
            f"{b['requests']} ({b['mib_sent']:.0f} MiB)",
            b["accepted"],
            b["refused"],
            f"{b['peak_rss_mib']:.0f}",
        )
        for b in result["burst"]
    ]
    delivered = ", ".join(f"{k} {v:,}" for k, v in sorted(result["delivered"].items()))
    return "\n".join(
        [
            f"### 12. The collector on otel-collector.yaml ({result['rounds']} interleaved "
            f"rounds of {result['round_s']:.0f} s per variant, {SENDERS} senders, "
            f"{result['spans_per_request']:.0f} spans per request, "
            f"{result['bytes_per_span']:.0f} bytes per span encoded)",
            "",
            table(
                [
                    "variant",
                    "spans per CPU-second (one core)",
                    "collector CPU (cores)",
                    "spans/s sent",
                    "RSS MiB after a round",
                    "peak RSS MiB",
                ],
                rows,
            ),
            "",
            f"Delivered (every span sent, to every destination): {delivered}.",
            "",
            "The same burst of 8 MiB requests at a collector whose back ends never answer:",
            "",
            table(["memory limit", "requests", "accepted", "refused", "peak RSS MiB"], burst_rows),
        ]
    )
