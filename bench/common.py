"""Shared helpers: statistics, tables, paths, processes, the machine description."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the benchmarks that drive a browser import playwright themselves
    from playwright.sync_api import ConsoleMessage, Page

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def data_dir() -> Path:
    """Where cached inputs (seeded databases, the 1M-span store) and results live."""
    path = Path(os.environ.get("BENCH_DATA_DIR") or REPO / ".bench-data")
    path.mkdir(parents=True, exist_ok=True)
    return path


CHROMIUM = "/usr/bin/chromium"
"""Debian's Chromium: Playwright's own browsers cannot be downloaded here."""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@dataclass(frozen=True)
class Spread:
    """Median with the extremes, over rounds or samples."""

    median: float
    low: float
    high: float
    n: int

    def fmt(self, digits: int = 0, unit: str = "") -> str:
        """``123 [110..140]`` with ``digits`` decimals."""
        return f"{self.median:.{digits}f}{unit} [{self.low:.{digits}f}..{self.high:.{digits}f}]"


def spread(values: Iterable[float]) -> Spread:
    """Median, minimum and maximum of ``values``."""
    items = list(values)
    if not items:
        return Spread(float("nan"), float("nan"), float("nan"), 0)
    return Spread(statistics.median(items), min(items), max(items), len(items))


def paired_ratios(
    rounds: Iterable[Any], baseline_rounds: Iterable[Any], measure: Callable[[Any], float]
) -> Spread:
    """The spread of ``measure`` of each round over the same round of the baseline.

    Variants are interleaved round by round, so a ratio within a round is what a noisy
    shared machine leaves comparable.
    """
    return spread(
        measure(mine) / measure(base) for mine, base in zip(rounds, baseline_rounds, strict=True)
    )


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    """``met`` or ``MISSED``."""
    return "met" if ok else "**MISSED**"


def wait_for_port(port: int, timeout_s: float = 30.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    msg = f"nothing listens on 127.0.0.1:{port} after {timeout_s} s"
    raise TimeoutError(msg)


def stop_process(proc: subprocess.Popen[Any], timeout_s: float = 15.0) -> None:
    """SIGTERM a process we started, then SIGKILL it if it does not end."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):  # a broken pipe to a process that is gone
                stream.close()


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without any OTEL_*/CVTRACE_* setting, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "CVTRACE_", "NEW_RELIC_")) and k != "LD_PRELOAD"
    }
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def _command_version(args: Sequence[str]) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "-"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "-"


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = "-"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = "-"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    info = {
        "cpu": f"{cpu} x {os.cpu_count()}",
        "memory": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "load average (1/5/15 min)": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    for dist in (
        "opentelemetry-sdk",
        "opentelemetry-instrumentation-flask",
        "flask",
        "sqlalchemy",
        "protobuf",
        "plotly",
        "gunicorn",
        "playwright",
    ):
        info[dist] = _version(dist)
    info["wrk"] = _command_version(["wrk", "--version"])
    info["chromium"] = _command_version(["/usr/bin/chromium", "--version"])
    info["sqlite"] = __import__("sqlite3").sqlite_version
    return info


def results_dir(quick: bool = False) -> Path:
    """Where results go: ``results/``, or ``results-quick/`` for ``--quick`` runs."""
    out = data_dir() / ("results-quick" if quick else "results")
    out.mkdir(exist_ok=True)
    return out


def save(name: str, result: Mapping[str, Any], markdown: str, quick: bool = False) -> Path:
    """Write a benchmark's results as JSON and Markdown under the data directory."""
    out = results_dir(quick)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=_jsonable))
    path = out / f"{name}.md"
    path.write_text(markdown + "\n")
    return path


def _jsonable(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def log(message: str) -> None:
    """Progress on stderr (results go to stdout)."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


class Receiver:
    """The counting OTLP/HTTP receiver (:mod:`bench.receiver`) as a subprocess."""

    def __init__(self, grpc: bool = False) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "bench.receiver", *(["--grpc"] if grpc else [])],
            stdout=subprocess.PIPE,
            text=True,
            env=clean_env(),
            cwd=REPO,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("port "):
            stop_process(self.proc)
            msg = f"the receiver did not start: {line!r}"
            raise RuntimeError(msg)
        words = line.split()
        self.port = int(words[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.grpc_port = int(words[3]) if len(words) > 3 else None
        """Its OTLP/gRPC port (``Receiver(grpc=True)``), counted under ``grpc``."""

    def endpoint(self, name: str) -> str:
        """The OTLP traces URL for variant ``name``."""
        return f"{self.url}/{name}/v1/traces"

    def spans(self, name: str) -> int:
        """Spans received so far for variant ``name`` (``grpc``: over OTLP/gRPC)."""
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/counts", timeout=10) as response:
            counts = json.load(response)
        key = name if name == "grpc" else f"/{name}/v1/traces"
        return int(counts["spans"].get(key, 0))

    def close(self) -> None:
        """Stop the receiver."""
        stop_process(self.proc)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Worker:
    """A :mod:`bench.worker` subprocess for one variant."""

    def __init__(
        self, variant: str, database: Path, env: Mapping[str, str], checkout: Path = REPO
    ) -> None:
        """Start the worker, importing cvtrace and ``bench`` from ``checkout``."""
        self.variant = variant
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "bench.worker", variant, str(database)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=clean_env({**env, "PYTHONPATH": str(checkout)}),
            cwd=checkout,
            bufsize=1,
        )

    def wait_ready(self) -> None:
        """Wait for the app to be built and warmed up."""
        ready = self._read()
        if "ready" not in ready:
            msg = f"worker {self.variant} did not start: {ready}"
            raise RuntimeError(msg)

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait(10)
            msg = f"worker {self.variant} exited with {code}"
            raise RuntimeError(msg)
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"worker {self.variant}: {answer['error']}")
        return answer

    def call(self, **command: Any) -> dict[str, Any]:
        """Send one command and wait for its answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def stop(self) -> dict[str, Any]:
        """Shut tracing down as at exit; return the totals."""
        try:
            return self.call(cmd="stop")
        finally:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                stop_process(self.proc)

    def kill(self) -> None:
        """End the worker if it still runs."""
        stop_process(self.proc, 5)


class Viewer:
    """``cvtrace view`` on a store file, as a subprocess (UI/API and OTLP/HTTP ports).

    ``checkout``: the checkout whose code runs (default this one; another, to compare).
    """

    def __init__(
        self, db: Path, env: Mapping[str, str] | None = None, checkout: Path = REPO
    ) -> None:
        self.proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "cvtrace.cli",
                "view",
                "--db",
                str(db),
                "--port",
                "0",
                "--otlp-port",
                "0",
                "--otlp-grpc-port",
                "-1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=clean_env({**(env or {}), "PYTHONPATH": str(checkout)}),
            cwd=checkout,
        )
        assert self.proc.stdout is not None
        self.url = self.otlp_url = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.otlp_url:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("cvtrace viewer on "):
                self.url = line.split(" on ", 1)[1].strip().split("?")[0].rstrip("/")
            elif "OTLP/HTTP:" in line:
                self.otlp_url = line.split("OTLP/HTTP:", 1)[1].strip()
        if not self.url or not self.otlp_url:
            stop_process(self.proc)
            msg = "cvtrace view did not print its URLs"
            raise RuntimeError(msg)

    def close(self) -> None:
        """Stop the viewer (SIGTERM)."""
        stop_process(self.proc, 30)

    def __enter__(self) -> Viewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def collect_page_errors(page: Page, errors: list[str]) -> None:
    """Append the page's uncaught exceptions and console errors to ``errors``."""

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", on_console)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def copy_store(source: Path, target: Path) -> Path:
    """Copy a (checkpointed) SQLite store file."""
    import shutil

    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)
    return target
