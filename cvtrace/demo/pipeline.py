"""The trace pipeline as local processes on 127.0.0.1: collector, Jaeger, viewer.

What compose runs in containers, started here as child processes of one machine: the
OpenTelemetry Collector on ``otel-collector.yaml``, Jaeger v2 on
``deploy/jaeger-local.yaml`` (both binaries built by ``make collector``) and ``cvtrace
view``. Every address comes from the ``${env:...}`` variables those configs read, so
the files stay as compose runs them. ``make stack`` (:mod:`cvtrace.demo.stack`), the
end-to-end tests (``tests/ops/``) and the collector's benchmark (``bench/collector.py``)
start the pipeline from here.

The Go binaries cannot report a port they picked, so their ports are chosen first
(:func:`cvtrace.demo.ports.free_port`, below the range outgoing connections use);
each address set is kept, so that a process restarted in a test comes back where its
senders expect it.

Each process runs in its own process group (:func:`cvtrace.demo.cli.start_child`), and
:func:`cvtrace.demo.cli.stop_child` ends the group: nothing outlives the caller.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvtrace.demo.cli import Child, DemoError, start_child
from cvtrace.demo.ports import LOOPBACK, free_port

READY = re.compile(r"(Everything is ready)")
"""The line both Go programs log once every pipeline runs."""
_VIEWER_READY = re.compile(r"cvtrace viewer on (http://\S+)")
_VIEWER_OTLP = re.compile(r"OTLP/HTTP: (http://\S+)/v1/traces")
QUERY_TIMEOUT_S = 30.0
"""Jaeger's query service starts after its pipelines: how long to wait for it."""
TRACING_PREFIXES = ("CVTRACE_", "NEW_RELIC_", "OTEL_")


def _address() -> str:
    return f"{LOOPBACK}:{free_port()}"


def clean_environment() -> dict[str, str]:
    """This process's environment without a variable the configs or an SDK would read.

    A ``CVTRACE_COLLECTOR_*`` or ``OTEL_*`` variable of the caller's shell must not
    move a port or send the pipeline's own spans anywhere.
    """
    return {k: v for k, v in os.environ.items() if not k.startswith(TRACING_PREFIXES)}


@dataclass(frozen=True)
class JaegerAddresses:
    """Where Jaeger listens (``host:port`` each), as deploy/jaeger-local.yaml reads them."""

    query_http: str
    query_grpc: str
    otlp_grpc: str
    otlp_http: str
    health: str

    @classmethod
    def on_free_ports(cls) -> JaegerAddresses:
        """Pick five free ports on 127.0.0.1."""
        return cls(_address(), _address(), _address(), _address(), _address())

    @property
    def query_url(self) -> str:
        """Base URL of the query API (``/api/traces``, ``/api/v3/traces``, ...)."""
        return f"http://{self.query_http}"

    def environment(self) -> dict[str, str]:
        """The CVTRACE_JAEGER_* variables that put Jaeger on these addresses."""
        return {
            "CVTRACE_JAEGER_QUERY_HTTP_ENDPOINT": self.query_http,
            "CVTRACE_JAEGER_QUERY_GRPC_ENDPOINT": self.query_grpc,
            "CVTRACE_JAEGER_OTLP_GRPC_ENDPOINT": self.otlp_grpc,
            "CVTRACE_JAEGER_OTLP_HTTP_ENDPOINT": self.otlp_http,
            "CVTRACE_JAEGER_HEALTH_ENDPOINT": self.health,
        }


@dataclass(frozen=True)
class CollectorAddresses:
    """Where the collector listens, as otel-collector.yaml reads them."""

    otlp_grpc: str
    otlp_http: str
    health: str
    pprof: str
    zpages: str
    metrics_port: int

    @classmethod
    def on_free_ports(cls) -> CollectorAddresses:
        """Pick six free ports on 127.0.0.1."""
        return cls(_address(), _address(), _address(), _address(), _address(), free_port())

    @property
    def otlp_http_url(self) -> str:
        """Base URL for OTLP/HTTP senders (``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
        return f"http://{self.otlp_http}"

    @property
    def metrics_url(self) -> str:
        """The collector's own metrics, in Prometheus' text format."""
        return f"http://{LOOPBACK}:{self.metrics_port}/metrics"

    def environment(self) -> dict[str, str]:
        """The CVTRACE_COLLECTOR_* variables that put the collector on these addresses."""
        return {
            "CVTRACE_COLLECTOR_OTLP_GRPC_ENDPOINT": self.otlp_grpc,
            "CVTRACE_COLLECTOR_OTLP_HTTP_ENDPOINT": self.otlp_http,
            "CVTRACE_COLLECTOR_HEALTH_ENDPOINT": self.health,
            "CVTRACE_COLLECTOR_PPROF_ENDPOINT": self.pprof,
            "CVTRACE_COLLECTOR_ZPAGES_ENDPOINT": self.zpages,
            "CVTRACE_COLLECTOR_METRICS_HOST": LOOPBACK,
            "CVTRACE_COLLECTOR_METRICS_PORT": str(self.metrics_port),
        }


def get_json(url: str, *, token: str | None = None, timeout_s: float = 10.0) -> Any:
    """GET ``url`` and parse its JSON answer (with a bearer token, if given).

    Raises:
        urllib.error.HTTPError: the answer was not 2xx.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.load(response)


def start_jaeger(
    binary: Path,
    config: Path,
    addresses: JaegerAddresses,
    log_path: Path,
    *,
    started: list[Child],
    name: str = "jaeger",
) -> Child:
    """Start Jaeger and wait until its query API answers.

    Raises:
        DemoError: it exited, or did not answer within its start-up timeout.
    """
    child = start_child(
        name,
        [str(binary), f"--config={config}"],
        clean_environment() | addresses.environment(),
        log_path,
        started=started,
        ready_line=READY,
    )
    deadline = time.monotonic() + QUERY_TIMEOUT_S
    while True:
        try:
            get_json(f"{addresses.query_url}/api/services", timeout_s=2)
        except (OSError, ValueError):
            if child.process.poll() is not None or time.monotonic() > deadline:
                msg = f"{name}'s query API did not answer:\n{child.log_tail()}"
                raise DemoError(msg) from None
            time.sleep(0.1)
        else:
            child.url = addresses.query_url
            return child


def start_collector(
    binary: Path,
    config: Path,
    addresses: CollectorAddresses,
    log_path: Path,
    *,
    started: list[Child],
    jaeger_otlp_grpc: str,
    viewer_otlp_http: str,
    environment: Mapping[str, str] | None = None,
    name: str = "collector",
) -> Child:
    """Start the collector on ``config`` and wait until every pipeline runs.

    Args:
        binary: the collector (``otelcol-cvtrace``).
        config: its config, ``otel-collector.yaml``.
        addresses: where it listens.
        log_path: its log.
        started: the caller's list of children, which the new one joins.
        jaeger_otlp_grpc: Jaeger's OTLP/gRPC ``host:port``.
        viewer_otlp_http: the viewer's OTLP/HTTP base URL (the exporter adds /v1/traces).
        environment: more variables: ``CVTRACE_VIEWER_TOKEN``, ``NEW_RELIC_*``, ...
        name: for messages.

    Raises:
        DemoError: it exited (a config error, a port taken), or stayed silent.
    """
    env = clean_environment() | addresses.environment()
    env |= {
        "CVTRACE_COLLECTOR_JAEGER_ENDPOINT": jaeger_otlp_grpc,
        "CVTRACE_COLLECTOR_VIEWER_ENDPOINT": viewer_otlp_http,
        # The config reads the token without a default (compose must pass it); the
        # empty string keeps an unset variable from drawing a warning.
        "CVTRACE_VIEWER_TOKEN": "",
        **(environment or {}),
    }
    child = start_child(
        name,
        [str(binary), f"--config={config}"],
        env,
        log_path,
        started=started,
        ready_line=READY,
    )
    child.url = addresses.otlp_http_url
    return child


def start_viewer(
    db: Path,
    log_path: Path,
    *,
    started: list[Child],
    token: str | None = None,
    port: int = 0,
) -> tuple[Child, str]:
    """Start ``cvtrace view`` on ``db``, on 127.0.0.1 (OTLP/gRPC off).

    Returns:
        The child (its ``url`` the UI's) and its OTLP/HTTP base URL.

    Raises:
        DemoError: it exited or stayed silent.
    """
    env = clean_environment() | {"PYTHONUNBUFFERED": "1"}
    if token:
        env["CVTRACE_VIEWER_TOKEN"] = token
    argv = [sys.executable, "-m", "cvtrace.cli", "view", "--db", str(db), "--host", LOOPBACK]
    argv += ["--port", str(port), "--otlp-port", "0", "--otlp-grpc-port", "-1"]
    child = start_child("viewer", argv, env, log_path, started=started, ready_line=_VIEWER_READY)
    # The viewer prints its OTLP address with the same write as the ready line.
    deadline = time.monotonic() + 5
    while (match := _VIEWER_OTLP.search(child.log_tail())) is None:
        if time.monotonic() > deadline:
            msg = f"the viewer did not say where it receives OTLP:\n{child.log_tail()}"
            raise DemoError(msg)
        time.sleep(0.02)
    return child, match.group(1)
