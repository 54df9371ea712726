"""``cvtrace view`` as a real subprocess: it serves, receives, and stops on SIGTERM."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from cvtrace.viewer.cli import is_loopback
from tests.viewer.support import make_request, simple_trace

pytestmark = pytest.mark.slow


def start_view(
    tmp_path: Path, *extra: str, env: dict[str, str] | None = None, **popen: Any
) -> subprocess.Popen[str]:
    """Start ``cvtrace view``; in a session of its own, so without a terminal, unless
    ``popen`` says otherwise."""
    options: dict[str, Any] = {
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "start_new_session": True,
        **popen,
    }
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
        text=True,
        env={**os.environ, **(env or {})},
        **options,
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
    store = re.search(r"store: (.+)", text)
    assert ui, text
    assert otlp, text
    assert grpc_addr, text
    assert store, text
    return {
        "ui": ui.group(1),
        "otlp": otlp.group(1),
        "grpc": grpc_addr.group(1),
        "store": store.group(1),
    }


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
    rebound = {"Host": "evil.example"}  # DNS rebinding: the Host check holds under waitress
    assert requests.get(urls["ui"], headers=rebound, timeout=10).status_code == 421
    assert requests.post(urls["otlp"], headers=rebound, timeout=10).status_code == 421
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


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--port", "-1"),
        ("--port", "99999"),  # would wrap around to 34463
        ("--otlp-port", "70000"),
        ("--otlp-grpc-port", "-2"),
        ("--otlp-grpc-port", "99999"),
        ("--port", "http"),
    ],
)
def test_a_port_out_of_range_is_refused_by_name(tmp_path: Path, option: str, value: str) -> None:
    proc = start_view(tmp_path, option, value)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert f"argument {option}: '{value}' is not a port: give 0 to 65535" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("option", "what"),
    [("--port", "the UI and API"), ("--otlp-port", "OTLP/HTTP"), ("--otlp-grpc-port", "OTLP/gRPC")],
)
def test_a_port_in_use_is_named_with_its_option(tmp_path: Path, option: str, what: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start_view(tmp_path, option, str(port))
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} for {what} ({option}): Address already in use" in err
    assert f"{option} 0 for any free one" in err
    assert "Traceback" not in err


def test_a_bad_body_limit_is_refused_by_name(tmp_path: Path) -> None:
    proc = start_view(tmp_path, "--otlp-max-body-bytes", "-5")
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "CVTRACE_VIEWER_OTLP_MAX_BODY_BYTES (--otlp-max-body-bytes)" in err
    assert "'-5'" in err


@pytest.mark.parametrize(
    ("command", "fix"),
    [
        (
            ["view", "--port", "0", "--otlp-port", "0", "--otlp-grpc-port", "-1"],
            "or at a file that does not exist yet",
        ),
        (["import", "/dev/null"], "or at a file that does not exist yet"),
        (["export", "ab" * 16], "at a cvtrace store"),  # export reads: a new file is no fix
    ],
    ids=["view", "import", "export"],
)
def test_a_file_given_with_db_that_is_no_store_is_named_by_db(
    tmp_path: Path, command: list[str], fix: str
) -> None:
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE users (id INTEGER)")
    before = other.read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "cvtrace.cli", *command, "--db", str(other)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"--db: cannot open the span store '{other}'" in done.stderr
    assert "Point --db at a cvtrace store" in done.stderr
    assert "CVTRACE_LOCAL_DB" not in done.stderr
    assert done.stderr.rstrip().endswith(fix)
    assert other.read_bytes() == before


def test_token_banner_and_enforced(tmp_path: Path) -> None:
    proc = start_view(tmp_path, "--token", "abc")
    try:
        urls = read_banner(proc)
        assert urls["ui"].endswith("/")
        assert "token=" not in urls["ui"]
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


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    return out, err


class TestToken:
    """Issue 11, 11: the token stays out of ps and of logs; the URL goes to a terminal."""

    def test_token_on_the_command_line_warns(self, tmp_path: Path) -> None:
        proc = start_view(tmp_path, "--token", "s3cret")
        read_banner(proc)
        out, err = stop(proc)
        assert "--token puts the token on the command line" in err
        assert "--token-file or CVTRACE_VIEWER_TOKEN" in err
        assert "s3cret" not in out + err

    def test_token_file(self, tmp_path: Path) -> None:
        token_file = tmp_path / "token"
        token_file.write_text("from-a-file\n")
        proc = start_view(tmp_path, "--token-file", str(token_file), "--host", "0.0.0.0")
        try:
            urls = read_banner(proc)
            services = urls["ui"].replace("0.0.0.0", "127.0.0.1") + "api/services"
            assert requests.get(services, timeout=10).status_code == 401
            bearer = {"Authorization": "Bearer from-a-file"}
            assert requests.get(services, headers=bearer, timeout=10).status_code == 200
        finally:
            out, err = stop(proc)
        assert "warning" not in err
        assert "from-a-file" not in out + err

    @pytest.mark.parametrize(
        ("content", "extra", "message"),
        [
            (None, (), "--token-file: cannot read"),
            ("\n", (), "--token-file: "),
            ("t", ("--token", "t"), "give one of them"),
        ],
        ids=["missing", "empty", "both"],
    )
    def test_bad_token_options_are_clear_errors(
        self, tmp_path: Path, content: str | None, extra: tuple[str, ...], message: str
    ) -> None:
        token_file = tmp_path / "token"
        if content is not None:
            token_file.write_text(content)
        proc = start_view(tmp_path, "--token-file", str(token_file), *extra)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 2
        assert message in err
        assert "Traceback" not in err

    def test_url_with_token_on_stdout_when_it_is_a_terminal(self, tmp_path: Path) -> None:
        leader, follower = pty.openpty()
        proc = start_view(tmp_path, env={"CVTRACE_VIEWER_TOKEN": "t/ok"}, stdout=follower)
        os.close(follower)
        try:
            seen = read_terminal(leader, "OTLP/gRPC")
        finally:
            stop(proc)
            os.close(leader)
        assert re.search(r"viewer on http://127\.0\.0\.1:\d+/\?token=t%2Fok\r?\n", seen)

    def test_url_with_token_to_the_controlling_terminal_only(self, tmp_path: Path) -> None:
        """stdout is a pipe (a log file, say): the URL goes to the terminal, not the log."""
        leader, follower = pty.openpty()

        def take_terminal() -> None:  # the child's controlling terminal: the pty
            fcntl.ioctl(follower, termios.TIOCSCTTY, 0)

        proc = start_view(
            tmp_path,
            env={"CVTRACE_VIEWER_TOKEN": "t0k"},
            preexec_fn=take_terminal,
            pass_fds=(follower,),
        )
        os.close(follower)
        try:
            urls = read_banner(proc)
            seen = read_terminal(leader, "token=t0k")
        finally:
            out, err = stop(proc)
            os.close(leader)
        assert "?token=t0k" in seen
        assert "t0k" not in urls["ui"] + out + err


def read_terminal(fd: int, until: str, timeout_s: float = 30.0) -> str:
    """Read what a process wrote to the terminal ``fd`` until ``until`` shows."""
    seen = b""
    deadline = time.monotonic() + timeout_s
    while until.encode() not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the other end closed
                break
    return seen.decode(errors="replace")


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
