"""Faults, with the real collector and Jaeger: what is lost, and who counts it.

- Jaeger stopped for 30 s during traffic, then restarted: the collector's queue and
  retries deliver every span (Jaeger keeps its spans on disk here, with badger, so that
  what it had before the stop is still there to count).
- The collector stopped (SIGTERM) or killed (SIGKILL) during traffic, then restarted:
  the app's requests go on as before; what the app could not deliver meanwhile it
  counts (``handle.stats()``); on SIGTERM nothing else is lost; on SIGKILL only what
  the collector had accepted and not yet sent (its batch, in memory).
- A burst bigger than ``memory_limiter`` allows (a small limit set through
  ``CVTRACE_COLLECTOR_MEMORY_LIMIT_MIB``: on this machine the percentages would be of
  24 GB): the collector refuses, the app counts what was refused, and the collector's
  peak RSS stays bounded.
- SIGTERM to one gunicorn worker: its spans still reach Jaeger.

The app is the demo's, served in this process (so that its ``handle.stats()`` can be
read), except for the gunicorn test, which runs gunicorn with the image's settings; its
database is a SQLite file (the database is not what these faults are about; the
end-to-end run, tests/ops/pipeline_run.py, has the demo on PostgreSQL).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
import requests
import yaml
from werkzeug.serving import make_server

import cvtrace
from cvtrace.demo.app import create_app
from cvtrace.demo.cli import Child, stop_child
from cvtrace.demo.db import make_engine
from cvtrace.demo.pipeline import (
    CollectorAddresses,
    JaegerAddresses,
    clean_environment,
    get_json,
    start_collector,
    start_jaeger,
)
from cvtrace.demo.ports import free_port
from cvtrace.demo.seed import seed
from tests.ops.binaries import ROOT, Binaries
from tests.ops.pipeline_run import COLLECTOR_CONFIG, JAEGER_CONFIG, metric
from tests.otlp_receiver import HttpOtlpReceiver

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
OTLP_TIMEOUT_S = 3
"""The app's export timeout (retries included): longer than any request may take here."""


def wait_for(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    """Poll ``check`` until it holds, or fail saying what did not happen."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(0.5)


def settled(count: Callable[[], int], timeout_s: float = 30) -> int:
    """A count read until it stays the same for 2 s (Jaeger batches what it receives)."""
    deadline = time.monotonic() + timeout_s
    last = count()
    while time.monotonic() < deadline:
        time.sleep(2)
        now = count()
        if now == last:
            return now
        last = now
    pytest.fail(f"the count kept changing for {timeout_s:.0f} s")


def spans_in_jaeger(jaeger: JaegerAddresses, service: str) -> int:
    """Spans of one service in Jaeger, through its query API."""
    now_us = time.time_ns() // 1000
    answer = get_json(
        f"{jaeger.query_url}/api/traces?service={service}&limit=50000"
        f"&start={now_us - 3_600_000_000}&end={now_us + 60_000_000}",
        timeout_s=60,
    )
    return sum(len(trace["spans"]) for trace in answer["data"])


def badger_config(tmp_path: Path) -> Path:
    """deploy/jaeger-local.yaml with its storage on disk (badger), to survive a restart."""
    config = yaml.safe_load(JAEGER_CONFIG.read_text(encoding="utf-8"))
    directory = tmp_path / "badger"
    config["extensions"]["jaeger_storage"]["backends"] = {
        "disk": {
            "badger": {
                "directories": {
                    "keys": str(directory / "keys"),
                    "values": str(directory / "values"),
                },
                "ephemeral": False,
            }
        }
    }
    config["extensions"]["jaeger_query"]["storage"]["traces"] = "disk"
    config["exporters"]["jaeger_storage_exporter"]["trace_storage"] = "disk"
    path = tmp_path / "jaeger-badger.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@dataclass
class Traffic:
    """GETs to the app from a background thread until stopped, and what came back."""

    base_url: str
    gap_s: float = 0.05
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    slowest_s: float = 0.0
    exported: list[tuple[float, int]] = field(default_factory=list)
    """(time, spans the app had exported), sampled with each request."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        session = requests.Session()
        session.headers["Accept"] = "application/json"
        number = 0
        while not self._stop.is_set():
            number += 1
            path = (
                f"/circuits/{number % 20 + 1}" if number % 2 else f"/circuits?page={number % 3 + 1}"
            )
            started = time.monotonic()
            try:
                status = session.get(self.base_url + path, timeout=30).status_code
            except requests.RequestException as error:
                self.failures.append(str(error))
            else:
                self.statuses[status] += 1
            self.slowest_s = max(self.slowest_s, time.monotonic() - started)
            handle = cvtrace.get_handle()
            if handle is not None:
                self.exported.append((time.monotonic(), handle.stats().spans_exported))
            self._stop.wait(self.gap_s)
        session.close()

    def exported_at(self, moment: float) -> int:
        """Spans the app had exported at a moment (the last sample before it)."""
        return max((count for when, count in self.exported if when <= moment), default=0)


@contextlib.contextmanager
def demo_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, collector: CollectorAddresses, service: str
) -> Iterator[str]:
    """The demo app, traced with cvtrace's ``otlp`` exporter to the collector, served here."""
    database_url = f"sqlite:///{tmp_path / 'circuits.sqlite3'}"
    engine = make_engine(database_url)
    seed(engine, circuits=25)
    engine.dispose()
    for name, value in {
        "CVTRACE_EXPORTERS": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http_url,
        "OTEL_EXPORTER_OTLP_TIMEOUT": str(OTLP_TIMEOUT_S),
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_SERVICE_NAME": service,
    }.items():
        monkeypatch.setenv(name, value)
    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "test"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        app.extensions["demo_jobs"].shutdown()


@pytest.fixture
def started() -> Iterator[list[Child]]:
    """The processes a test starts; whatever is still running at the end is stopped."""
    children: list[Child] = []
    yield children
    for child in reversed(children):
        stop_child(child)


def collector_for(
    binaries: Binaries,
    addresses: CollectorAddresses,
    tmp_path: Path,
    started: list[Child],
    *,
    jaeger_otlp_grpc: str,
    viewer_otlp_http: str,
    environment: dict[str, str] | None = None,
    name: str = "collector",
) -> Child:
    return start_collector(
        binaries.collector,
        COLLECTOR_CONFIG,
        addresses,
        tmp_path / f"{name}.log",
        started=started,
        jaeger_otlp_grpc=jaeger_otlp_grpc,
        viewer_otlp_http=viewer_otlp_http,
        environment=environment,
        name=name,
    )


def test_jaeger_stopped_for_30_s_loses_nothing(
    binaries: Binaries,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    started: list[Child],
    otlp_http: HttpOtlpReceiver,
) -> None:
    jaeger = JaegerAddresses.on_free_ports()
    config = badger_config(tmp_path)
    jaeger_process = start_jaeger(
        binaries.jaeger, config, jaeger, tmp_path / "jaeger-1.log", started=started
    )
    addresses = CollectorAddresses.on_free_ports()
    collector = collector_for(
        binaries,
        addresses,
        tmp_path,
        started,
        jaeger_otlp_grpc=jaeger.otlp_grpc,
        viewer_otlp_http=otlp_http.base_url,
    )
    with (
        demo_in_process(tmp_path, monkeypatch, addresses, "jaeger-outage") as url,
        Traffic(url) as traffic,
    ):
        time.sleep(3)
        assert stop_child(jaeger_process) == 0
        started.remove(jaeger_process)
        stopped = time.monotonic()
        time.sleep(30)
        start_jaeger(binaries.jaeger, config, jaeger, tmp_path / "jaeger-2.log", started=started)
        down_s = time.monotonic() - stopped
        time.sleep(3)
    handle = cvtrace.get_handle()
    assert handle is not None
    assert handle.force_flush(timeout_s=30)
    stats = handle.stats()

    # The app noticed nothing: the collector took every span all along.
    assert traffic.failures == []
    assert set(traffic.statuses) == {200}
    assert (stats.spans_dropped, stats.spans_failed) == (0, 0)
    assert stats.spans_exported == stats.spans_ended > 500
    # Every span reaches Jaeger: those stored before it stopped, and the ones the
    # collector queued and retried (its retries back off up to 30 s, and gRPC's
    # reconnection as well).
    wait_for(
        f"Jaeger holding all {stats.spans_exported} spans after {down_s:.0f} s down",
        lambda: spans_in_jaeger(jaeger, "jaeger-outage") >= stats.spans_exported,
        timeout_s=120,
    )
    assert spans_in_jaeger(jaeger, "jaeger-outage") == stats.spans_exported
    assert len(otlp_http.spans()) == stats.spans_exported  # the viewer's side never stopped
    metrics = requests.get(addresses.metrics_url, timeout=10).text
    assert metric(metrics, "otelcol_exporter_send_failed_spans", exporter="otlp_grpc/jaeger") == 0
    assert "Exporting failed. Will retry the request after interval." in collector.log_tail(10_000)


@pytest.mark.parametrize(
    "stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"]
)
def test_collector_down_during_traffic(
    binaries: Binaries,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    started: list[Child],
    otlp_http: HttpOtlpReceiver,
    stop_signal: signal.Signals,
) -> None:
    jaeger = JaegerAddresses.on_free_ports()
    start_jaeger(binaries.jaeger, JAEGER_CONFIG, jaeger, tmp_path / "jaeger.log", started=started)
    addresses = CollectorAddresses.on_free_ports()

    def collector(name: str) -> Child:
        return collector_for(
            binaries,
            addresses,
            tmp_path,
            started,
            jaeger_otlp_grpc=jaeger.otlp_grpc,
            viewer_otlp_http=otlp_http.base_url,
            name=name,
        )

    first = collector("collector-1")
    with (
        demo_in_process(tmp_path, monkeypatch, addresses, "collector-outage") as url,
        Traffic(url) as traffic,
    ):
        time.sleep(3)
        first.process.send_signal(stop_signal)
        killed = time.monotonic()
        stop_child(first)
        started.remove(first)
        time.sleep(2 * OTLP_TIMEOUT_S)  # longer than the app's exports try
        second = collector("collector-2")
        time.sleep(3)
    handle = cvtrace.get_handle()
    assert handle is not None
    assert handle.force_flush(timeout_s=30)
    stats = handle.stats()
    assert stop_child(second) == 0  # flushes its batches into Jaeger: nothing left in it
    started.remove(second)

    # The app's requests went on as before, none waiting for an export.
    assert traffic.failures == []
    assert set(traffic.statuses) == {200}
    assert traffic.slowest_s < OTLP_TIMEOUT_S
    # What the app could not deliver, it counted; the rest it delivered.
    assert stats.spans_queued == 0
    assert stats.spans_ended == stats.spans_exported + stats.spans_dropped + stats.spans_failed
    assert stats.spans_failed + stats.spans_dropped > 0
    in_jaeger = settled(lambda: spans_in_jaeger(jaeger, "collector-outage"))
    if stop_signal == signal.SIGTERM:
        # A collector told to stop sends what it holds first: nothing else is lost.
        assert in_jaeger == len(otlp_http.spans()) == stats.spans_exported
    else:
        # A killed collector loses what it had accepted and not yet sent: at most its
        # batch (2 s, batch.timeout) of what the app exported just before.
        lost = stats.spans_exported - in_jaeger
        window = traffic.exported_at(killed) - traffic.exported_at(killed - 3)
        assert 0 <= lost <= window, (lost, window)


def _status_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field_name} for process {pid}")


MEMORY_LIMIT_MIB = 32
BURST_SPANS = 4000
SPAN_BYTES = 32 * 1024
PEAK_RSS_LIMIT_MIB = 320
"""The collector's peak RSS may not pass this: its 40 MiB at rest, the 32 MiB limit, and
the requests it reads and decodes before refusing them (16 MiB each, several copies).
Measured here: 180-220 MiB; without the limit the same burst took 740 MiB and rising
(BENCHMARKS.md, section 12)."""


def test_a_burst_beyond_the_memory_limit_is_refused(
    binaries: Binaries, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[Child]
) -> None:
    """Back ends that never answer keep everything the collector takes; the limit stops it."""
    addresses = CollectorAddresses.on_free_ports()
    collector = collector_for(
        binaries,
        addresses,
        tmp_path,
        started,
        # Nothing listens at either: every batch stays queued, retrying.
        jaeger_otlp_grpc=f"127.0.0.1:{free_port()}",
        viewer_otlp_http=f"http://127.0.0.1:{free_port()}",
        environment={"CVTRACE_COLLECTOR_MEMORY_LIMIT_MIB": str(MEMORY_LIMIT_MIB)},
    )
    for name, value in {
        "OTEL_EXPORTER_OTLP_ENDPOINT": addresses.otlp_http_url,
        "OTEL_EXPORTER_OTLP_TIMEOUT": str(OTLP_TIMEOUT_S),
        # Room for the whole burst in the app: what it loses, the collector refused.
        "OTEL_BSP_MAX_QUEUE_SIZE": str(BURST_SPANS + 1000),
    }.items():
        monkeypatch.setenv(name, value)
    handle = cvtrace.init(exporters="otlp", service_name="burst")
    from opentelemetry import trace

    tracer = trace.get_tracer("burst")
    payload = os.urandom(SPAN_BYTES // 2).hex()
    for number in range(BURST_SPANS):  # 128 MiB of attributes, made in a second or two
        with tracer.start_as_current_span("burst", attributes={"payload": payload, "n": number}):
            pass
    assert handle.force_flush(timeout_s=120)
    stats = handle.stats()
    peak_mib = _status_kib(collector.process.pid, "VmHWM") / 1024
    metrics = requests.get(addresses.metrics_url, timeout=10).text

    refused = metric(metrics, "otelcol_receiver_refused_spans")
    accepted = metric(metrics, "otelcol_receiver_accepted_spans")
    assert refused > 0
    assert metric(metrics, "otelcol_processor_memory_limiter_refused_spans") > 0
    # The app counts what it could not deliver; what it did deliver, the collector took.
    assert stats.spans_ended == BURST_SPANS
    assert stats.spans_failed > 0
    assert stats.spans_exported + stats.spans_failed + stats.spans_dropped == BURST_SPANS
    assert stats.spans_exported <= accepted
    assert peak_mib < PEAK_RSS_LIMIT_MIB, f"peak RSS {peak_mib:.0f} MiB"
    assert "Memory usage is above soft limit. Refusing data." in collector.log_tail(10_000)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text(encoding="utf-8").rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _server_spans_by_pid(jaeger: JaegerAddresses, service: str) -> Counter[int]:
    now_us = time.time_ns() // 1000
    answer = get_json(
        f"{jaeger.query_url}/api/traces?service={service}&limit=5000"
        f"&start={now_us - 3_600_000_000}&end={now_us + 60_000_000}"
    )
    counts: Counter[int] = Counter()
    for trace in answer["data"]:
        for span in trace["spans"]:
            tags = {tag["key"]: tag["value"] for tag in span["tags"]}
            process = trace["processes"][span["processID"]]
            pid = {tag["key"]: tag["value"] for tag in process["tags"]}["process.pid"]
            if tags.get("span.kind") == "server":
                counts[int(pid)] += 1
    return counts


def _start_gunicorn(
    port: int,
    database_url: str,
    collector: CollectorAddresses,
    log: IO[bytes],
    access_log: Path,
) -> subprocess.Popen[bytes]:
    """gunicorn with the image's settings (two workers, the app preloaded), on 127.0.0.1.

    The access log holds one line per request: the pid of the worker that served it, and
    the path.
    """
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            f"--config={GUNICORN_CONF}",
            f"--bind=127.0.0.1:{port}",  # the image binds 0.0.0.0:$PORT
            f"--access-logfile={access_log}",
            "--access-logformat=%(p)s %(U)s",
            "cvtrace.demo.app:create_app()",
        ],
        env=clean_environment()
        | {
            "WEB_CONCURRENCY": "2",
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test",
            "CVTRACE_EXPORTERS": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http_url,
            # Nothing is exported before a worker stops: what arrives, its stop sent.
            "OTEL_BSP_SCHEDULE_DELAY": "600000",
            "OTEL_SERVICE_NAME": "gunicorn-demo",
        },
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )


def test_sigterm_to_a_gunicorn_worker_loses_none_of_its_spans(
    binaries: Binaries, tmp_path: Path, started: list[Child], otlp_http: HttpOtlpReceiver
) -> None:
    jaeger = JaegerAddresses.on_free_ports()
    start_jaeger(binaries.jaeger, JAEGER_CONFIG, jaeger, tmp_path / "jaeger.log", started=started)
    addresses = CollectorAddresses.on_free_ports()
    collector_for(
        binaries,
        addresses,
        tmp_path,
        started,
        jaeger_otlp_grpc=jaeger.otlp_grpc,
        viewer_otlp_http=otlp_http.base_url,
    )
    database_url = f"sqlite:///{tmp_path / 'circuits.sqlite3'}"
    engine = make_engine(database_url)
    seed(engine, circuits=10)
    engine.dispose()
    port = free_port()
    with (tmp_path / "gunicorn.log").open("wb") as log:
        gunicorn = _start_gunicorn(port, database_url, addresses, log, tmp_path / "access.log")
    try:
        wait_for("two gunicorn workers", lambda: len(_children(gunicorn.pid)) == 2, 60)
        wait_for("gunicorn answering", lambda: _answers(f"http://127.0.0.1:{port}/up"), 60)
        workers = _children(gunicorn.pid)
        requests_sent = 60
        for number in range(requests_sent):  # a new connection each: both workers serve
            response = requests.get(
                f"http://127.0.0.1:{port}/circuits/{number % 10 + 1}",
                headers={"Accept": "application/json", "Connection": "close"},
                timeout=30,
            )
            assert response.status_code == 200
        # The kernel may hand every connection to one worker: stop one that served.
        served = _pids_that_served(tmp_path / "access.log", requests_sent)
        stopped = next(pid for pid in workers if pid in served)
        os.kill(stopped, signal.SIGTERM)  # gunicorn's master starts another in its place
        wait_for(
            "the stopped worker's spans in Jaeger",
            lambda: _server_spans_by_pid(jaeger, "gunicorn-demo")[stopped] > 0,
            30,
        )
        time.sleep(3)  # a second batch of the collector's, if there is one
        before_the_rest = _server_spans_by_pid(jaeger, "gunicorn-demo")
        assert set(before_the_rest) == {stopped}  # the other worker has exported nothing yet
        gunicorn.send_signal(signal.SIGTERM)  # the other worker flushes on its way out
        assert gunicorn.wait(timeout=60) == 0
        wait_for(
            "every request's server span in Jaeger",
            lambda: sum(_server_spans_by_pid(jaeger, "gunicorn-demo").values()) >= requests_sent,
            30,
        )
        after = _server_spans_by_pid(jaeger, "gunicorn-demo")
        assert sum(after.values()) == requests_sent
        assert after[stopped] == before_the_rest[stopped]  # all of them came with its stop
        assert set(after) <= set(workers)
    finally:
        if gunicorn.poll() is None:
            os.killpg(gunicorn.pid, signal.SIGKILL)
            gunicorn.wait(timeout=30)


def _pids_that_served(access_log: Path, requests_sent: int) -> set[int]:
    """The workers that served a circuit page, once gunicorn's access log has them all."""

    def served() -> list[str]:
        lines = (line.split() for line in access_log.read_text().splitlines())
        return [pid for pid, path in lines if path.startswith("/circuits/")]

    wait_for("every request in the access log", lambda: len(served()) >= requests_sent, 30)
    return {int(pid.strip("<>")) for pid in served()}


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
