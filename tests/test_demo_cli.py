"""``cvtrace demo``, end to end: real processes, real traffic, a real store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cvtrace.store import SpanStore, TraceQuery


def processes_with_env(needle: str) -> list[int]:
    """Return the pids whose environment mentions ``needle`` (the demo's children do)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle.encode() in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def clean_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CVTRACE_", "NEW_RELIC_"))
    }


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
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "80 requests: " in result.stdout
    assert f"open them with: cvtrace view --db {store}" in result.stdout
    assert processes_with_env(str(store)) == []

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
def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    store = tmp_path / "traces.sqlite3"
    demo = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "cvtrace.cli",
            "demo",
            "--no-view",
            "--requests",
            "100000",
            "--db",
            str(store),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(),
    )
    assert demo.stdout is not None
    lines = []
    for line in demo.stdout:  # wait until the traffic is flowing
        lines.append(line)
        if line.startswith("traffic"):
            break
    time.sleep(0.5)
    children = processes_with_env(str(store))
    assert len(children) == 2, "".join(lines)
    demo.send_signal(signal.SIGINT)
    rest = demo.stdout.read()
    assert demo.wait(timeout=30) == 130, rest
    demo.stdout.close()
    assert "stopping" in rest
    assert processes_with_env(str(store)) == []


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
