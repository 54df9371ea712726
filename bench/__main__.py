"""``python -m bench [NAME ...] [--quick] [--scale]``: run the benchmarks, print Markdown tables.

Without names, every benchmark runs, in the order below, except ``scale`` (the cost
curve up to 10,000,000 spans: a 10M store to build once, about 15 minutes, and 10 GB of
scratch copies), which ``--scale`` runs (``make bench-scale``). Results are also saved under
``$BENCH_DATA_DIR`` (default ``.bench-data/``) in ``results/NAME.json`` and ``.md``
(``results-quick/`` for ``--quick``), and ``ALL.md`` there gathers every table.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

from bench.common import log, machine, results_dir, save, table

BENCHMARKS = {
    "request": "per-request cost in-process: bare, cvtrace, vanilla OpenTelemetry",
    "loss": "spans lost at the highest in-process request rate: cvtrace vs vanilla",
    "server": "gunicorn (2 workers) + wrk: requests/s, p50/p99, bare vs cvtrace vs vanilla",
    "memory": "the demo's RSS under load under gunicorn, with and without jemalloc",
    "ingest": "viewer ingest (OTLP/HTTP and local exporter) into a store of 1M spans",
    "search": "viewer search p50/p99 of /api/traces at 1M spans",
    "bigtrace": "10 to 100k-span traces in headless Chromium: loads, scrolling, details",
    "hostile": "gzip members, 200k-span responses, 8 x 60 MB requests: time and viewer RSS",
    "serving": "the UI's search and trace pages: waitress vs Werkzeug's development server",
    "importing": "cvtrace import of big OTLP JSON lines, Jaeger JSON and protobuf files",
    "analyses": "critical path, stats, compare of big traces; service map and RED at 1M spans",
    "tracesearch": "the trace page's in-trace search over 10k and 100k spans in Chromium",
    "collector": "the real collector on otel-collector.yaml: spans/s per core, RSS, memory limit",
    "export": "the single-file HTML export of a 10k-span trace: time, size, opening in Chromium",
    "scale": "the cost curve at 100k, 1M, 3M and 10M spans: ingest, search, fetch, start, disk",
    "remote": "a trace read from a real Jaeger (API v3, /api/traces) vs the local store",
}
ONLY_ON_REQUEST = ("scale",)
"""Run when named or with ``--scale``, not by default."""

REPORT_ORDER = (
    "request",
    "server",
    "loss",
    "ingest",
    "search",
    "bigtrace",
    "memory",
    "hostile",
    "serving",
    "importing",
    "analyses",
    "tracesearch",
    "collector",
    "export",
    "scale",
    "remote",
)
"""The numbering of BENCHMARKS.md (1-15; ``analyses`` and ``tracesearch`` are both section
11), used for ``results/ALL.md``; runs go in the order above."""


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmarks (all by default)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="benchmarks:\n"
        + "\n".join(f"  {name:10} {text}" for name, text in BENCHMARKS.items()),
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run")
    parser.add_argument(
        "--quick", action="store_true", help="tiny configurations: a smoke run of about a minute"
    )
    parser.add_argument(
        "--scale", action="store_true", help="run the cost curve (benchmark scale) only"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; expected {', '.join(BENCHMARKS)}")
    names = args.names or (
        ["scale"] if args.scale else [n for n in BENCHMARKS if n not in ONLY_ON_REQUEST]
    )
    started = time.monotonic()
    info = machine()
    sections = [
        "## Machine",
        "",
        table(["", ""], info.items()),
        "",
    ]
    sys.stdout.write("\n".join(sections) + "\n")
    save("machine", info, "\n".join(sections), args.quick)
    for name in names:
        log(f"{name}: {BENCHMARKS[name]}{' (quick)' if args.quick else ''}")
        t0 = time.monotonic()
        module = importlib.import_module(f"bench.{name}")
        result, text = module.run(quick=args.quick)
        result["quick"] = args.quick
        path = save(name, result, text, args.quick)
        sys.stdout.write(text + "\n\n")
        sys.stdout.flush()
        log(f"{name}: done in {time.monotonic() - t0:.0f} s; saved {path}")
    out = results_dir(args.quick)
    combined = out / "ALL.md"
    parts = [
        (out / f"{name}.md").read_text()
        for name in ("machine", *REPORT_ORDER)
        if (out / f"{name}.md").exists()
    ]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    parts.append(f"Load average at the end of the run (1/5/15 min): {load}.\n")
    combined.write_text("\n".join(parts))
    log(f"all done in {time.monotonic() - started:.0f} s; every table so far in {combined}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
