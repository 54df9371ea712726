"""`make stack` (cvtrace/demo/stack.py), as a new user runs it: real processes, then Ctrl-C.

Tested like ``cvtrace demo`` (tests/demo/test_cli.py): every process it started is
found while it runs (its work directory is in their environment, through TMPDIR) and
none is left after.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.demo.test_cli import clean_env, processes_mentioning
from tests.ops.binaries import ROOT, Binaries

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _postgres_spans(jaeger: str) -> list[dict[str, str]]:
    params: dict[str, str | int] = {"service": "circuits", "limit": 100}
    traces = requests.get(f"{jaeger}/api/traces", params=params, timeout=10).json()["data"]
    return [
        tags
        for trace in traces or []
        for span in trace["spans"]
        if (tags := {t["key"]: t["value"] for t in span["tags"]}).get("db.system.name")
        == "postgresql"
    ]


def services(base_url: str) -> list[str]:
    """The services a Jaeger query API knows (Jaeger's own, or the viewer's)."""
    return list(requests.get(f"{base_url}/api/services", timeout=10).json()["data"] or [])


@pytest.fixture
def work_root() -> Iterator[Path]:
    """The stack's TMPDIR: a directory of its own, which every process it starts has in
    its environment, and which the PostgreSQL account can traverse (under root, the
    server runs as ``postgres``, and pytest's own temporary directories are private)."""
    root = Path(tempfile.mkdtemp(prefix="cvtrace-stack-test-"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_stack_serves_every_url_it_prints_and_stops_on_ctrl_c(
    binaries: Binaries, work_root: Path
) -> None:
    tmp_path = work_root
    stack = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "cvtrace.demo.stack",
            "--requests",
            "40",
            f"--collector={binaries.collector}",
            f"--jaeger={binaries.jaeger}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(tmp_path),
    )
    try:
        assert stack.stdout is not None
        lines = []
        for line in stack.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C stops everything"):
                break
        output = "".join(lines)
        assert "40 requests: " in output, output
        urls = dict(re.findall(r"^(\w[\w ]*?):\s+(http://\S+)", output, flags=re.MULTILINE))

        # Jaeger and the viewer hold the demo's traces, through the collector (which
        # batches for 2 s: give the last requests' spans a few seconds).
        jaeger = urls["Jaeger"].split("/api/", 1)[0]
        assert "has no UI" in output
        viewer = urls["viewer"].rstrip("/")
        for base in (jaeger, viewer):
            deadline = time.monotonic() + 30
            while set(services(base)) != {"circuits", "preview"}:
                assert time.monotonic() < deadline, (base, services(base))
                time.sleep(0.5)
        assert requests.get(urls["demo"], timeout=10).status_code == 200
        health = re.search(r"health (http://\S+?),", output)
        assert health is not None
        assert requests.get(health.group(1), timeout=10).json()["status"] == "Server available"
        assert "New Relic:  off" in output
        assert "database:   PostgreSQL on 127.0.0.1:" in output
        # The demo's queries ran on PostgreSQL, and their spans say so.
        deadline = time.monotonic() + 30
        while not _postgres_spans(jaeger):
            assert time.monotonic() < deadline, "no query span of PostgreSQL in Jaeger"
            time.sleep(0.5)

        # The demo, its preview service, the collector, Jaeger and the viewer, and the
        # PostgreSQL server's processes (whose data directory is in tmp_path too).
        running = processes_mentioning(str(tmp_path), besides=stack.pid)
        assert len(running) > 5
        stack.send_signal(signal.SIGINT)
        rest = stack.stdout.read()
        assert stack.wait(timeout=90) == 0, rest
        assert "stopping" in rest
        assert processes_mentioning(str(tmp_path), besides=stack.pid) == []
    finally:
        if stack.poll() is None:
            stack.terminate()
            stack.wait(timeout=60)
        if stack.stdout is not None:
            stack.stdout.close()


def test_missing_binaries_are_named(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cvtrace.demo.stack", f"--collector={tmp_path / 'nope'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(tmp_path),
        check=False,
    )
    assert result.returncode == 1
    assert "the collector not found at" in result.stderr
    assert "run `make collector`" in result.stderr
    assert processes_mentioning(str(tmp_path)) == []
