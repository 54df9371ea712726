"""``cvtrace demo``: from a fresh clone to waterfalls in the viewer, in one command.

It seeds a temporary database, starts the preview service and the site as child
processes (each traced by cvtrace with the ``local`` exporter into the span store),
drives realistic traffic with a progress bar, stops both services (which flushes their
spans), then starts ``cvtrace view`` on the store and prints its URL. With ``--no-view``
it stops after the traffic, leaving the store.

Every child runs in its own process group; at the end, on Ctrl-C or on SIGTERM, each
group gets SIGTERM, then SIGKILL if it has not exited within a few seconds, so no
process is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from cvtrace.exporters.local import default_db_path

DEFAULT_REQUESTS = 300
SEED_CIRCUITS = 300
TRAFFIC_GAP_S = 0.02
"""Mean pause between requests: 300 requests spread over a few seconds of traces."""
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_LISTENING = re.compile(r"listening on (http://\S+)")
_VIEWER_READY = re.compile(r"cvtrace viewer on (http://\S+)")


class DemoError(Exception):
    """The demo could not run; the message says what failed."""


@dataclass
class Child:
    """A child process in its own process group, its output copied to a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""
    _reader: threading.Thread | None = field(default=None, repr=False)

    def log_tail(self, lines: int = 20) -> str:
        """Return the last lines the process printed."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _copy_output(stream: IO[bytes], log: IO[bytes], lines: queue.Queue[str]) -> None:
    """Copy a child's output to its log, handing each line to ``lines`` as well."""
    with log:
        for raw in iter(stream.readline, b""):
            log.write(raw)
            log.flush()
            lines.put(raw.decode(errors="replace"))


def start_child(
    name: str,
    argv: Sequence[str],
    env: dict[str, str],
    log_path: Path,
    *,
    started: list[Child],
    ready_line: re.Pattern[str] | None = _LISTENING,
    timeout_s: float = STARTUP_TIMEOUT_S,
    cwd: Path | None = None,
) -> Child:
    """Start ``argv`` in a new process group and wait until it prints ``ready_line``.

    The child is appended to ``started`` as soon as it exists, so that whoever stops
    the children finds it even if waiting is interrupted. The URL captured by the
    pattern's first group becomes :attr:`Child.url`.

    Raises:
        DemoError: the process exited or stayed silent for ``timeout_s``.
    """
    log = log_path.open("wb")
    process = subprocess.Popen(
        list(argv),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        start_new_session=True,  # its own process group: signals reach its children too
    )
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(
        target=_copy_output, args=(process.stdout, log, lines), name=f"{name}-output", daemon=True
    )
    reader.start()
    child = Child(name=name, process=process, log_path=log_path, _reader=reader)
    started.append(child)
    if ready_line is None:
        return child
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            msg = f"{name} did not start within {timeout_s:.0f} s:\n{child.log_tail()}"
            raise DemoError(msg)
        try:
            line = lines.get(timeout=min(remaining, 0.2))
        except queue.Empty:
            if process.poll() is not None and not reader.is_alive():
                msg = f"{name} exited with code {process.returncode}:\n{child.log_tail()}"
                raise DemoError(msg) from None
            continue
        match = ready_line.search(line)
        if match:
            child.url = match.group(1)
            return child


def stop_child(child: Child, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
    """Stop a child's process group: SIGTERM, then SIGKILL after ``timeout_s``.

    Returns:
        The child's exit code (``None`` if it could not be reaped).
    """
    process = child.process
    pgid = process.pid  # start_new_session made the child its group's leader
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        process.wait(timeout=timeout_s)
    # the group may hold grandchildren that outlived their parent
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    if child._reader is not None:
        child._reader.join(timeout=timeout_s)
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode


class ProgressBar:
    """A one-line progress bar on a stream (redrawn in place on a terminal)."""

    def __init__(self, label: str, stream: IO[str], width: int = 30) -> None:
        self.label = label
        self.stream = stream
        self.width = width
        self.is_tty = stream.isatty()
        self._last_percent = -1

    def update(self, done: int, total: int) -> None:
        """Draw the bar for ``done`` of ``total``."""
        percent = 100 * done // max(total, 1)
        if not self.is_tty and percent // 10 == self._last_percent // 10 and done != total:
            return  # not a terminal: a line every 10% only
        self._last_percent = percent
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"{self.label} [{bar}] {done}/{total}"
        if self.is_tty:
            self.stream.write("\r" + line + ("\n" if done == total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into KeyboardInterrupt, so the children are stopped either way.

    SIGINT is set explicitly because a shell starts background jobs with it ignored.
    """

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """Ignore Ctrl-C meanwhile: a second one must not cut the clean-up short."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _service_env(tracing: Mapping[str, str], database_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        tracing,
        DATABASE_URL=database_url,
        SECRET_KEY=secrets.token_hex(16),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    # each service names itself (circuits, preview): a name set for the shell would
    # give both services the same one
    for name in ("PORT", "OTEL_SERVICE_NAME"):
        env.pop(name, None)
    return env


def start_services(
    workdir: Path, database_url: str, tracing: Mapping[str, str], *, started: list[Child]
) -> tuple[Child, Child]:
    """Start the preview service, then the site that calls it, both on free ports.

    Args:
        workdir: their working directory (a relative SQLite URL is a file there) and
            where their logs go (``app.log``, ``preview.log``).
        database_url: the site's database, seeded already.
        tracing: the variables that say where their spans go (``CVTRACE_EXPORTERS``, ...).
        started: the caller's list of children, which both join as they start.

    Returns:
        The site and the preview service, each with its URL.

    Raises:
        DemoError: one of them did not start.
    """
    python = sys.executable
    preview = start_child(
        "preview service",
        [python, "-m", "cvtrace.demo.serve", "preview", "--port", "0"],
        _service_env(tracing, database_url),
        workdir / "preview.log",
        started=started,
        cwd=workdir,
    )
    site = start_child(
        "circuits app",
        [python, "-m", "cvtrace.demo.serve", "app", "--port", "0"],
        _service_env(tracing, database_url, PREVIEW_URL=preview.url),
        workdir / "app.log",
        started=started,
        cwd=workdir,
    )
    return site, preview


def _out(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def run_demo(args: argparse.Namespace, workdir: Path, children: list[Child]) -> int:
    """Seed, start the services, drive traffic and (unless ``--no-view``) start the viewer.

    Every child started is appended to ``children``, for the caller to stop.
    """
    from cvtrace.demo.db import make_engine
    from cvtrace.demo.seed import describe, seed
    from cvtrace.demo.traffic import drive

    store = Path(args.db).expanduser() if args.db else default_db_path()
    engine = make_engine(f"sqlite:///{workdir / 'circuits.sqlite3'}")
    counts = seed(engine, circuits=SEED_CIRCUITS)
    engine.dispose()
    # The services run in the work directory with a relative URL: cvtrace names
    # database spans after it ("SELECT circuits.sqlite3"), the same on every run.
    database_url = "sqlite:///circuits.sqlite3"
    _out(f"seeded the demo database: {describe(counts)}")

    tracing = {"CVTRACE_EXPORTERS": "local", "CVTRACE_LOCAL_DB": str(store)}
    site, preview = start_services(workdir, database_url, tracing, started=children)
    _out(f"preview service (service.name=preview) on {preview.url}")
    _out(f"circuits app (service.name=circuits) on {site.url}")

    bar = ProgressBar("traffic", sys.stdout)
    result = drive(site.url, args.requests, mean_gap_s=TRAFFIC_GAP_S, on_progress=bar.update)
    _out(result.summary())

    # Stopping the services flushes their spans into the store.
    for child in (site, preview):
        stop_child(child)
        children.remove(child)
    _out(f"traces of both services are in {store}")
    if result.transport_errors:
        sys.stderr.write(
            f"cvtrace demo: {result.transport_errors} requests got no answer from the app\n"
        )
        return 1
    if args.no_view:
        _out(f"open them with: cvtrace view --db {store}")
        return 0

    viewer = start_child(
        "viewer",
        [
            sys.executable,
            "-m",
            "cvtrace.cli",
            "view",
            "--db",
            str(store),
            "--host",
            "127.0.0.1",
            "--port",
            str(args.port),
            "--otlp-port",
            "0",
            "--otlp-grpc-port",
            "0",
        ],
        dict(os.environ, PYTHONUNBUFFERED="1"),
        workdir / "viewer.log",
        started=children,
        ready_line=_VIEWER_READY,
    )
    _out(f"\nviewer: {viewer.url}   (Ctrl-C to stop)")
    try:
        return viewer.process.wait()
    except KeyboardInterrupt:  # the usual way to end a demo that got this far
        _out("\nstopping the viewer")
        return 0


Cleanup = Callable[[], None]
"""Something to undo after the children have stopped (a database server, say)."""


def run_supervised(
    program: str,
    body: Callable[[Path, list[Child], list[Cleanup]], int],
    *,
    stop_timeout_s: float = STOP_TIMEOUT_S,
) -> int:
    """Run ``body`` in a new work directory, then stop everything it started.

    ``body`` appends each child it starts to its list, and whatever else needs undoing
    to its list of clean-ups. Ctrl-C or SIGTERM ends it with 130, a :class:`DemoError`
    with 1 and the error's message. The children stop in reverse order of start (a
    second Ctrl-C cannot cut that short), then the clean-ups run, in reverse. The work
    directory goes too, unless something failed: then its path is printed, for the logs.
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"cvtrace-{program}-"))
    children: list[Child] = []
    cleanups: list[Cleanup] = []
    code = 1
    try:
        with signals_as_interrupt():
            try:
                code = body(workdir, children, cleanups)
            except KeyboardInterrupt:
                _out("\nstopping")
                code = 130
            except DemoError as exc:
                sys.stderr.write(f"cvtrace {program}: {exc}\n")
                code = 1
            finally:
                with interrupts_ignored():
                    for child in reversed(children):
                        stop_child(child, timeout_s=stop_timeout_s)
                    for cleanup in reversed(cleanups):
                        cleanup()
    finally:
        if code in (0, 130):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            sys.stderr.write(f"cvtrace {program}: the logs are in {workdir}\n")
    return code


def run(args: argparse.Namespace) -> int:
    """Run ``cvtrace demo``; return its exit code."""
    if args.requests < 1:
        sys.stderr.write(f"cvtrace demo: --requests must be at least 1, got {args.requests}\n")
        return 2
    return run_supervised("demo", lambda workdir, children, _: run_demo(args, workdir, children))


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand to the ``cvtrace`` command line."""
    parser = subparsers.add_parser(
        "demo",
        help="run the demo app traced into the local store, then the viewer on it",
        description=(
            "Seed a demo database, run the circuit-sharing app and its preview service "
            "traced into the local span store, drive realistic traffic, then serve the "
            "viewer on the store and print its URL. Ctrl-C stops every process it started."
        ),
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=DEFAULT_REQUESTS,
        metavar="N",
        help=f"how many requests of traffic to send (default {DEFAULT_REQUESTS})",
    )
    parser.add_argument(
        "--db",
        default=None,
        metavar="PATH",
        help="the span store (default: $CVTRACE_LOCAL_DB, else cvtrace's default store)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="the viewer's port (default: a free one)",
    )
    parser.add_argument(
        "--no-view",
        action="store_true",
        help="exit after the traffic, leaving the traces in the store",
    )
    parser.set_defaults(func=run)
