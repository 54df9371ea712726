"""``cvtrace view`` as a real subprocess: it serves, receives, and stops on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from cvtrace.viewer.cli import is_loopback
from tests.viewer.support import make_request, simple_trace

pytestmark = pytest.mark.slow


def start_view(
    tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cvtrace.cli",
            "view",
            "--db",
            str(tmp_path / "cli.sqlite3"),
            "--port",
            "0",
            "--otlp-port",
            "0",
            "--otlp-grpc-port",
            "0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def read_banner(proc: subprocess.Popen[str]) -> dict[str, str]:
    assert proc.stdout is not None
    lines = []
    while True:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"view exited: {proc.stderr.read() if proc.stderr else ''}")
        lines.append(line)
        if "OTLP/gRPC" in line:
            break
    text = "".join(lines)
    ui = re.search(r"viewer on (http://\S+/)", text)
    otlp = re.search(r"OTLP/HTTP: (http://\S+)", text)
    grpc_addr = re.search(r"OTLP/gRPC: (\S+)", text)
    assert ui, text
    assert otlp, text
    assert grpc_addr, text
    return {"ui": ui.group(1), "otlp": otlp.group(1), "grpc": grpc_addr.group(1)}


@pytest.fixture
def view(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    proc = start_view(tmp_path)
    try:
        yield proc, read_banner(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_serves_receives_and_stops(view: tuple[subprocess.Popen[str], dict[str, str]]) -> None:
    proc, urls = view
    body = make_request(simple_trace("from-http")).SerializeToString()
    r = requests.post(
        urls["otlp"], data=body, headers={"Content-Type": "application/x-protobuf"}, timeout=10
    )
    assert r.status_code == 200
    with grpc.insecure_channel(urls["grpc"]) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        stub.Export(make_request(simple_trace("from-grpc")), timeout=10)
    services = requests.get(urls["ui"] + "api/services", timeout=10).json()["data"]
    assert services == ["from-grpc", "from-http"]
    assert "from-http" in requests.get(urls["ui"], timeout=10).text
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


def test_refuses_public_address_without_token(tmp_path: Path) -> None:
    proc = start_view(tmp_path, "--host", "0.0.0.0", env={"CVTRACE_VIEWER_TOKEN": ""})
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in err
    assert "--token" in err
    assert not (tmp_path / "cli.sqlite3").exists()


def test_bad_db_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "cli.sqlite3").write_text("this is not a database " * 50)
    proc = start_view(tmp_path)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "cannot open the span store" in err
    assert "Traceback" not in err


def test_token_banner_and_enforced(tmp_path: Path) -> None:
    proc = start_view(tmp_path, "--token", "abc")
    try:
        urls = read_banner(proc)
        assert urls["ui"].endswith("/")
        assert requests.get(urls["ui"] + "api/services", timeout=10).status_code == 401
        ok = requests.get(
            urls["ui"] + "api/services", headers={"Authorization": "Bearer abc"}, timeout=10
        )
        assert ok.status_code == 200
        r = requests.post(urls["otlp"], data=b"", timeout=10)
        assert r.status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.1.2.3", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
