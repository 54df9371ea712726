"""One end-to-end run of the real pipeline, shared by the tests that read its results.

The demo's two services (on PostgreSQL, with cvtrace's ``otlp`` exporter) and the probe sender
(tests/ops/probe.py) send to the collector built here, running the shipped
``otel-collector.yaml`` on 127.0.0.1 ports, which fans out to Jaeger (built here, on
``deploy/jaeger-local.yaml``), ``cvtrace view`` and a New Relic stand-in (a real
OTLP/HTTP receiver at ``NEW_RELIC_OTLP_ENDPOINT``, with a license key set). Then the
services stop (flushing their spans) and the collector stops (flushing its batches and
queues), so that Jaeger, the viewer and the stand-in hold everything there is; Jaeger
and the viewer keep running for the tests to query.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from cvtrace.demo.cli import Child, start_services, stop_child
from cvtrace.demo.db import make_engine
from cvtrace.demo.pipeline import (
    CollectorAddresses,
    JaegerAddresses,
    start_collector,
    start_jaeger,
    start_viewer,
)
from cvtrace.demo.seed import seed
from cvtrace.demo.traffic import TrafficResult, drive
from tests.ops.binaries import ROOT, Binaries
from tests.ops.probe import CANARY, Probe, probe_request, send
from tests.otlp_receiver import HttpOtlpReceiver

COLLECTOR_CONFIG = ROOT / "otel-collector.yaml"
JAEGER_CONFIG = ROOT / "deploy" / "jaeger-local.yaml"
LICENSE_KEY = "0123456789abcdef0123456789abcdef0123NRAL"
REQUESTS = 80
_SAMPLE = re.compile(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$")


@dataclass
class PipelineRun:
    """What one run left for the tests: running Jaeger and viewer, and what was sent."""

    jaeger: JaegerAddresses
    viewer_url: str
    viewer_token: str
    viewer_db: Path
    new_relic: HttpOtlpReceiver
    traffic: TrafficResult
    probe: Probe
    metrics: str
    """The collector's own metrics once every sender had finished (Prometheus text)."""
    collector_log: str
    collector_exit_code: int | None

    def from_jaeger(self, path: str, **params: str | int) -> Any:
        """GET a path of Jaeger's query API (``/api/...``); return its JSON."""
        response = requests.get(f"{self.jaeger.query_url}{path}", params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def from_viewer(self, path: str, **params: str | int) -> Any:
        """GET the same path of the viewer's Jaeger API; return its JSON."""
        response = requests.get(
            f"{self.viewer_url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.viewer_token}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()


def metric(text: str, name: str, **labels: str) -> float:
    """Sum the samples of a Prometheus metric whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(have.get(key) == value for key, value in labels.items()):
            total += float(match.group(3))
    return total


def _spans_in_jaeger(jaeger: JaegerAddresses) -> int:
    services = requests.get(f"{jaeger.query_url}/api/services", timeout=30).json()["data"]
    total = 0
    for service in services or []:
        answer = requests.get(
            f"{jaeger.query_url}/api/traces",
            params={"service": service, "limit": 1000},
            timeout=30,
        ).json()
        total += sum(len(trace["spans"]) for trace in answer["data"])
    return total


def _settle(jaeger: JaegerAddresses, timeout_s: float = 30) -> None:
    """Wait until Jaeger has stored what the collector flushed into it.

    Jaeger batches what it receives (its own batch processor, 200 ms) before storing
    it, so its answers can lag the collector's exit a little: wait for two equal
    counts a second apart.
    """
    deadline = time.monotonic() + timeout_s
    last = _spans_in_jaeger(jaeger)
    while time.monotonic() < deadline:
        time.sleep(1)
        now = _spans_in_jaeger(jaeger)
        if now == last:
            return
        last = now
    msg = f"Jaeger's span count kept changing for {timeout_s:.0f} s"
    raise AssertionError(msg)


@contextlib.contextmanager
def pipeline_run(binaries: Binaries, workdir: Path, database_url: str) -> Iterator[PipelineRun]:
    """Run the pipeline once (see the module's docstring); stop every process after."""
    token = secrets.token_hex(16)
    started: list[Child] = []
    with HttpOtlpReceiver() as new_relic:
        try:
            viewer, viewer_otlp = start_viewer(
                workdir / "viewer.sqlite3", workdir / "viewer.log", started=started, token=token
            )
            jaeger = JaegerAddresses.on_free_ports()
            start_jaeger(
                binaries.jaeger, JAEGER_CONFIG, jaeger, workdir / "jaeger.log", started=started
            )
            addresses = CollectorAddresses.on_free_ports()
            collector = start_collector(
                binaries.collector,
                COLLECTOR_CONFIG,
                addresses,
                workdir / "collector.log",
                started=started,
                jaeger_otlp_grpc=jaeger.otlp_grpc,
                viewer_otlp_http=viewer_otlp,
                environment={
                    "CVTRACE_VIEWER_TOKEN": token,
                    "NEW_RELIC_LICENSE_KEY": LICENSE_KEY,
                    "NEW_RELIC_OTLP_ENDPOINT": new_relic.base_url,
                },
            )
            engine = make_engine(database_url)
            seed(engine, circuits=30)
            engine.dispose()
            tracing = {
                "CVTRACE_EXPORTERS": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": addresses.otlp_http_url,
                "OTEL_BSP_SCHEDULE_DELAY": "500",
            }
            site, preview = start_services(workdir, database_url, tracing, started=started)
            traffic = drive(site.url, REQUESTS)
            for service in (site, preview):  # health checks, which make no span
                for _ in range(3):
                    assert requests.get(f"{service.url}/up", timeout=30).status_code == 200
            # A secret in a query string: cvtrace itself scrubs this one, in the app.
            canary = requests.get(
                f"{site.url}/circuits", params={"q": "adder", "api_key": CANARY}, timeout=30
            )
            assert canary.status_code == 200
            request, probe = probe_request()
            send(addresses.otlp_http_url, request)
            for service in (site, preview):  # a clean stop flushes their spans
                assert stop_child(service) == 0, service.log_tail()
                started.remove(service)
            metrics = requests.get(addresses.metrics_url, timeout=10).text
            exit_code = stop_child(collector, timeout_s=30)
            started.remove(collector)
            _settle(jaeger)
            yield PipelineRun(
                jaeger=jaeger,
                viewer_url=viewer.url.rstrip("/"),
                viewer_token=token,
                viewer_db=workdir / "viewer.sqlite3",
                new_relic=new_relic,
                traffic=traffic,
                probe=probe,
                metrics=metrics,
                collector_log=collector.log_path.read_text(encoding="utf-8"),
                collector_exit_code=exit_code,
            )
        finally:
            for child in reversed(started):
                stop_child(child)
