"""``cvtrace demo``, end to end: real processes, real traffic, a real store."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from cvtrace.store import SpanStore, TraceQuery


def processes_mentioning(needle: str, *, besides: int = 0) -> list[int]:
    """Return the pids whose environment or command line mentions ``needle``.

    The demo passes the store to its services in the environment and to the viewer on
    the command line; ``besides`` (the demo itself) is left out.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), besides):
            continue
        try:
            text = (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle.encode() in text:
            pids.append(int(entry.name))
    return pids


@contextlib.contextmanager
def running_demo(tmp_path: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Run ``cvtrace demo ARGS``; make sure it has ended when the block ends."""
    demo = subprocess.Popen(
        [sys.executable, "-u", "-m", "cvtrace.cli", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(tmp_path),
    )
    try:
        yield demo
    finally:
        if demo.poll() is None:
            demo.terminate()  # the demo stops its children on SIGTERM too
            demo.wait(timeout=30)
        if demo.stdout is not None:
            demo.stdout.close()


def clean_env(tmp_path: Path) -> dict[str, str]:
    """The environment without tracing settings; the demo's work directory in tmp_path."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CVTRACE_", "NEW_RELIC_"))
    }
    env["TMPDIR"] = str(tmp_path)
    return env


@pytest.mark.slow
def test_demo_no_view_fills_the_store_and_leaves_no_process(tmp_path: Path) -> None:
    store = tmp_path / "traces.sqlite3"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cvtrace.cli",
            "demo",
            "--no-view",
            "--requests",
            "80",
            "--db",
            str(store),
        ],
        capture_output=True,
        text=True,
        timeout=110,
        # a service name set in the shell must not make both services one
        env=clean_env(tmp_path) | {"OTEL_SERVICE_NAME": "from-the-shell"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "80 requests: " in result.stdout
    assert f"open them with: cvtrace view --db {store}" in result.stdout
    assert processes_mentioning(str(store)) == []

    with SpanStore(store) as spans:
        assert set(spans.services()) == {"circuits", "preview"}
        summaries = spans.search(TraceQuery(limit=1000))
        assert any(set(t.services) == {"circuits", "preview"} for t in summaries)
        errors = spans.search(TraceQuery(errors_only=True, limit=100))
        assert errors
        assert any(t.root_name == "GET /circuits/<int:circuit_id>/preview.svg" for t in errors)
        routes = set(spans.operations("circuits"))
        assert {"GET /circuits", "POST /circuits/<int:circuit_id>/simulate"} <= routes
        assert "search equivalent circuits" in routes  # the slow search ran
        assert not [op for op in routes if "/up" in op]
        every_span = [s for t in spans.iter_trace_ids() for s in spans.get_trace(t)]
        paths = {
            kv.value.string_value
            for s in every_span
            for kv in s.span.attributes
            if kv.key == "url.path"
        }
        assert "/up" not in paths
        assert "/circuits" in paths


@pytest.mark.slow
def test_ctrl_c_during_traffic_stops_every_process(tmp_path: Path) -> None:
    store = tmp_path / "traces.sqlite3"
    with running_demo(tmp_path, "--no-view", "--requests", "100000", "--db", str(store)) as demo:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:  # wait until the traffic is flowing
            lines.append(line)
            if line.startswith("traffic"):
                break
        assert len(processes_mentioning(str(store), besides=demo.pid)) == 2, "".join(lines)
        demo.send_signal(signal.SIGINT)
        rest = demo.stdout.read()
        assert demo.wait(timeout=30) == 130, rest
        assert "stopping" in rest
        assert processes_mentioning(str(store), besides=demo.pid) == []


def test_bad_arguments() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cvtrace.cli", "demo", "--requests", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--requests must be at least 1, got 0" in result.stderr


@pytest.mark.slow
def test_demo_then_viewer_until_ctrl_c(tmp_path: Path) -> None:
    store = tmp_path / "traces.sqlite3"
    with running_demo(tmp_path, "--requests", "40", "--db", str(store)) as demo:
        assert demo.stdout is not None
        lines = []
        url = ""
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("viewer: "):
                url = line.split()[1]
                break
        assert url.startswith("http://127.0.0.1:"), "".join(lines)
        services = requests.get(f"{url}api/services", timeout=10).json()["data"]
        assert set(services) == {"circuits", "preview"}
        assert requests.get(url, timeout=10).status_code == 200
        # the services have stopped; only the viewer runs
        assert len(processes_mentioning(str(store), besides=demo.pid)) == 1
        demo.send_signal(signal.SIGINT)
        rest = demo.stdout.read()
        assert demo.wait(timeout=30) == 0, rest
        assert processes_mentioning(str(store), besides=demo.pid) == []


@pytest.mark.slow
def test_a_viewer_that_cannot_start_is_reported_and_nothing_is_left(tmp_path: Path) -> None:
    store = tmp_path / "traces.sqlite3"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with running_demo(
            tmp_path, "--requests", "5", "--port", str(port), "--db", str(store)
        ) as demo:
            assert demo.stdout is not None
            output = demo.stdout.read()
            assert demo.wait(timeout=60) == 1, output
    assert "cvtrace demo: viewer exited with code 1:" in output
    assert "already in use" in output  # the viewer's own words, from its log
    assert "the logs are in" in output
    assert processes_mentioning(str(store), besides=demo.pid) == []
