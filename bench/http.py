"""The demo under gunicorn and the ``wrk`` load generator, for the server benchmarks."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.common import PYTHON, REPO, clean_env, stop_process, wait_for_port
from cvtrace.demo.ports import free_port

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
"""Where Debian's libjemalloc2 puts the library (``dpkg -L libjemalloc2``)."""


class Gunicorn:
    """``gunicorn -w 2`` serving one variant of the demo on 127.0.0.1."""

    def __init__(
        self,
        variant: str,
        database: Path,
        env: Mapping[str, str],
        *,
        workers: int = 2,
        jemalloc: bool = False,
    ) -> None:
        self.variant = variant
        self.port = free_port()
        extra = {**env, "BENCH_VARIANT": variant, "BENCH_DATABASE": str(database)}
        if jemalloc:
            extra["LD_PRELOAD"] = JEMALLOC
        self.proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "gunicorn",
                "--workers",
                str(workers),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "warning",
                "bench.variants:wsgi_app()",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=clean_env(extra),
            cwd=REPO,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until every worker answers ``/up``."""
        wait_for_port(self.port, timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.worker_pids()) >= 2 and self._up():
                for _ in range(20):  # reach both workers, warm them up
                    self._up()
                return
            time.sleep(0.1)
        msg = f"gunicorn ({self.variant}) did not become ready in {timeout_s} s"
        raise TimeoutError(msg)

    def _up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/up", timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def session_cookie(self, path: str) -> str:
        """The ``Cookie`` header of a visitor after one visit (so views count no new visitor)."""
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            cookie: str = response.headers.get("Set-Cookie", "")
        return cookie.split(";", 1)[0]

    def worker_pids(self) -> list[int]:
        """The worker processes (children of the master)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return sorted(pids)

    def stop(self) -> None:
        """SIGTERM the master (workers flush their spans) and wait."""
        stop_process(self.proc, 30)


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass(frozen=True)
class WrkResult:
    """What one ``wrk`` run measured."""

    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        msg = f"wrk printed an unexpected latency {text!r}"
        raise ValueError(msg)
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def wrk(url: str, seconds: float, connections: int = 4, cookie: str = "") -> WrkResult:
    """Load ``url`` with ``wrk`` for ``seconds`` (one thread); parse its report."""
    exe = shutil.which("wrk")
    if exe is None:
        msg = "wrk is not installed: run make system-deps (Debian package wrk)"
        raise RuntimeError(msg)
    args = [exe, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    if cookie:
        args += ["-H", f"Cookie: {cookie}"]
    out = subprocess.run(
        [*args, url], capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: .*?timeout (\d+)"):
        match = re.search(pattern, out)
        if match:
            errors += int(match.group(1))
    return WrkResult(requests, rps, p50, p99, errors)
