"""Where the time goes: py-spy profiles of the benchmarked processes, summarised.

``python -m bench.profile request VARIANT [--path /circuits/2]``
    a :mod:`bench.worker` for ``VARIANT`` in a request loop (Flask test client);
``python -m bench.profile storm VARIANT``
    the same worker making spans from the tracer in a tight loop (no app);
``python -m bench.profile server VARIANT``
    one gunicorn worker serving ``VARIANT`` under ``wrk`` load;
``python -m bench.profile ingest``
    ``cvtrace view`` receiving OTLP/HTTP into a copy of the 1M-span store;
``python -m bench.profile search``
    ``cvtrace view`` answering the search benchmark's queries on the 1M-span store.

py-spy samples the process (all threads that are running) for ``--seconds``; the
summary attributes each sample to a package: the innermost frame that is not the
standard library (so time in ``re`` or ``sqlite3`` counts for the code that called
it), and lists the top functions of each package, the top leaf functions, and the
time per thread. ``--raw FILE`` keeps py-spy's collapsed stacks (for a flame graph:
``py-spy``'s ``--format speedscope`` or ``flamegraph.pl``).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

from bench.common import PYTHON, REPO, Receiver, Viewer, Worker, copy_store, table
from bench.variants import CIRCUIT_ID, private_db_copy, variant_env

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::(?P<line>\d+))?\)$")
_STDLIB = sysconfig.get_paths()["stdlib"]


def _py_spy() -> str:
    exe = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    if not Path(exe).exists():
        msg = "py-spy is not installed: .venv/bin/pip install py-spy"
        raise RuntimeError(msg)
    return exe


def record(pid: int, seconds: float, out: Path, rate: int = 250) -> None:
    """Sample ``pid`` with py-spy for ``seconds``, collapsed stacks into ``out``."""
    subprocess.run(
        [
            _py_spy(),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--threads",
            "--full-filenames",
            "--nonblocking",
            "--output",
            str(out),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _package(path: str) -> str | None:
    """The top-level package of a frame's file, or None for the standard library.

    py-spy names files relative to their ``sys.path`` entry (``cvtrace/processor.py``,
    ``json/encoder.py``), or in full when outside it.
    """
    if path.startswith("<"):
        return None
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif path.startswith(_STDLIB):
        return None
    elif path.startswith(f"{REPO}/"):
        path = path[len(str(REPO)) + 1 :]
    top = path.split("/", 1)[0].removesuffix(".py")
    if top in sys.stdlib_module_names:
        return None
    return top


_TRACING = ("cvtrace", "opentelemetry", "urllib3", "requests", "google")


def summarise(raw: Path, top: int = 12, lines_of: str | None = None) -> str:
    """Markdown tables of where the samples went.

    Args:
        raw: py-spy's collapsed stacks (``--format raw --threads``).
        top: rows per table.
        lines_of: also list the hottest lines of files whose path ends with this
            (``cvtrace/store.py``), by the innermost frame in such a file.
    """
    by_package: collections.Counter[str] = collections.Counter()
    by_function: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    leaves: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    per_thread: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    hot_lines: collections.Counter[tuple[str, int, str]] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0].split(":", 1)[-1].strip() if frames[0].startswith("thread") else "?"
        threads[thread] += count
        total += count
        parsed = [m for m in (_FRAME.match(f) for f in frames) if m]
        if parsed:
            leaf = parsed[-1]
            leaves[f"{leaf['func']} ({Path(leaf['file']).name})"] += count
        owner = "?"
        owner_func = "?"
        tracing_func = ""
        line_found = False
        for match in reversed(parsed):
            package = _package(match["file"])
            if package is not None and owner == "?":
                owner = package
                owner_func = f"{match['func']} ({_short(match['file'])})"
            if package in _TRACING and not tracing_func:
                tracing_func = f"{package}: {match['func']}"
            if lines_of and not line_found and match["file"].endswith(lines_of) and match["line"]:
                hot_lines[(match["file"], int(match["line"]), match["func"])] += count
                line_found = True  # the innermost frame in that file only
        by_package[owner] += count
        by_function[owner][owner_func] += count
        per_thread[thread][tracing_func or owner] += count
    if not total:
        return "(no samples)"

    def pct(n: int) -> str:
        return f"{100 * n / total:.1f}%"

    parts = [
        f"{total} samples",
        "",
        table(
            ["package (innermost non-stdlib frame)", "share"],
            [(p, pct(n)) for p, n in by_package.most_common(top)],
        ),
        "",
        table(["leaf function", "share"], [(f, pct(n)) for f, n in leaves.most_common(top)]),
    ]
    for package in ("cvtrace", "opentelemetry", "viewer", "sqlalchemy"):
        if by_function.get(package):
            parts += [
                "",
                table(
                    [f"{package}: function", "share"],
                    [(f, pct(n)) for f, n in by_function[package].most_common(top)],
                ),
            ]
    for thread, n in threads.most_common(3):
        parts += [
            "",
            f"Thread {thread}: {pct(n)} of all samples; innermost tracing function "
            "(cvtrace, OpenTelemetry, HTTP export), else package:",
            "",
            table(
                ["what", "share of all"],
                [(f, pct(c)) for f, c in per_thread[thread].most_common(8)],
            ),
        ]
    if lines_of and hot_lines:
        source: dict[str, list[str]] = {}
        rows = []
        for (file, number, func), n in hot_lines.most_common(top):
            if file not in source:
                try:
                    source[file] = Path(file).read_text().splitlines()
                except OSError:
                    source[file] = []
            text = source[file][number - 1].strip() if number <= len(source[file]) else ""
            rows.append((f"{func}:{number}", f"`{text[:80]}`", pct(n)))
        parts += ["", table([f"{lines_of} line", "source", "share"], rows)]
    return "\n".join(parts)


def _short(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    return path.removeprefix(f"{REPO}/").removeprefix(f"{_STDLIB}/")


def profile_request(
    variant: str, path: str, seconds: float, raw: Path, command: str = "run_for"
) -> None:
    """Profile a worker running the request loop (or the span storm)."""
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp, Receiver() as receiver:
        worker = Worker(
            variant,
            private_db_copy(Path(tmp), variant),
            variant_env(variant, receiver.endpoint(variant), Path(tmp) / "spans.sqlite3"),
        )
        try:
            worker.wait_ready()
            sampler = threading.Thread(
                target=record, args=(worker.proc.pid, seconds, raw), daemon=True
            )
            sampler.start()
            time.sleep(0.5)
            worker.call(cmd=command, path=path, seconds=seconds)
            sampler.join()
            worker.stop()
        finally:
            worker.kill()


def profile_server(variant: str, seconds: float, raw: Path) -> None:
    """Profile one gunicorn worker under wrk load."""
    from bench.http import Gunicorn, wrk

    view = f"/circuits/{CIRCUIT_ID}"
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp, Receiver() as receiver:
        server = Gunicorn(
            variant,
            private_db_copy(Path(tmp), variant),
            variant_env(variant, receiver.endpoint(variant), None),
        )
        try:
            server.wait_ready()
            cookie = server.session_cookie(view)
            pid = server.worker_pids()[0]
            sampler = threading.Thread(target=record, args=(pid, seconds, raw), daemon=True)
            sampler.start()
            wrk(server.url + view, seconds + 1, cookie=cookie)
            sampler.join()
        finally:
            server.stop()


def profile_ingest(seconds: float, raw: Path) -> None:
    """Profile ``cvtrace view`` receiving OTLP/HTTP into a copy of the 1M-span store."""
    from bench.ingest import _bodies, _post_all
    from bench.spandata import million_span_store

    bodies = _bodies(5, int((seconds + 1) * 80_000))
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        db = copy_store(million_span_store(), Path(tmp) / "store.sqlite3")
        with Viewer(db, {"CVTRACE_VIEWER_MAX_SPANS": "0"}) as viewer:
            sampler = threading.Thread(
                target=record, args=(viewer.proc.pid, seconds, raw), daemon=True
            )
            sampler.start()
            result = _post_all(viewer.otlp_url, iter(bodies), seconds + 1)
            sampler.join()
    sys.stderr.write(f"ingest while profiled: {result['spans_per_s']:.0f} spans/s\n")


def profile_search(seconds: float, raw: Path) -> None:
    """Profile ``cvtrace view`` answering the search benchmark's queries in a loop."""
    import requests

    from bench.search import QUERIES
    from bench.spandata import million_span_store

    with Viewer(million_span_store()) as viewer:
        session = requests.Session()
        url = viewer.url + "/api/traces"
        for params in QUERIES.values():
            session.get(url, params=params, timeout=60)
        sampler = threading.Thread(target=record, args=(viewer.proc.pid, seconds, raw), daemon=True)
        sampler.start()
        deadline = time.monotonic() + seconds + 0.5
        while time.monotonic() < deadline:
            for params in QUERIES.values():
                session.get(url, params=params, timeout=60)
        sampler.join()
        session.close()


def main(argv: list[str] | None = None) -> int:
    """Profile one benchmarked process and print the summary."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", choices=("request", "storm", "server", "ingest", "search"))
    parser.add_argument("variant", nargs="?", default="cvtrace-otlp")
    parser.add_argument("--path", default=f"/circuits/{CIRCUIT_ID}")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--raw", type=Path, default=None, help="keep py-spy's collapsed stacks")
    parser.add_argument(
        "--lines", default=None, metavar="PATH", help="also the hottest lines of this file"
    )
    parser.add_argument(
        "--summarise",
        type=Path,
        default=None,
        metavar="RAW",
        help="only summarise an existing collapsed-stacks file",
    )
    args = parser.parse_args(argv)
    if args.summarise:
        sys.stdout.write(summarise(args.summarise, lines_of=args.lines) + "\n")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        raw = args.raw or Path(tmp) / "profile.txt"
        if args.target == "request":
            profile_request(args.variant, args.path, args.seconds, raw)
        elif args.target == "storm":
            profile_request(args.variant, args.path, args.seconds, raw, "span_storm")
        elif args.target == "server":
            profile_server(args.variant, args.seconds, raw)
        elif args.target == "search":
            profile_search(args.seconds, raw)
        else:
            profile_ingest(args.seconds, raw)
        with_variant = args.target in ("request", "storm", "server")
        title = args.target + (f" {args.variant}" if with_variant else "")
        sys.stdout.write(f"#### Profile: {title}\n\n{summarise(raw, lines_of=args.lines)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
