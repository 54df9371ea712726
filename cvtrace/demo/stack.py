"""``make stack``: what ``docker compose up`` runs, as local processes, without Docker.

``python -m cvtrace.demo.stack`` (from the repository, after ``make collector``) runs,
every one on 127.0.0.1 and on free ports: a throwaway PostgreSQL server
(:mod:`cvtrace.demo.postgres`, Debian's ``postgresql`` programs), the demo and its
preview service on a seeded database there, traced with cvtrace's ``otlp`` exporter
(``--database-url`` puts the demo on another database, ``sqlite:///FILE`` included);
the OpenTelemetry
Collector on ``otel-collector.yaml``; Jaeger v2 on ``deploy/jaeger-local.yaml``; and
``cvtrace view``, which the collector feeds as it feeds Jaeger. It drives traffic at the
demo, prints every URL, and runs until Ctrl-C (or SIGTERM), which stops everything in
the order that loses no span: the services (they flush into the collector), the
collector (it flushes into Jaeger and the viewer), then Jaeger and the viewer, and last
the PostgreSQL server, whose directory is deleted.

New Relic is on when ``NEW_RELIC_LICENSE_KEY`` is set, as in compose (and
``NEW_RELIC_OTLP_ENDPOINT`` moves it). The collector's memory limit is compose's: 80 %
of its 512 MB container, 410 MiB (on one machine the limiter's percentages would be of
the whole machine). The Jaeger built from its Go module has no UI (its release builds
embed the jaeger-ui assets, which the module does not carry): its query API is all
there, and the viewer shows the same traces.

Every process runs in its own process group and is stopped with it, as ``cvtrace demo``
stops its own; the work directory (logs, the viewer's store) is deleted at the end, and
kept, with its path printed, when something failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cvtrace.demo.cli import (
    Child,
    Cleanup,
    DemoError,
    ProgressBar,
    run_supervised,
    start_services,
)
from cvtrace.demo.pipeline import (
    CollectorAddresses,
    JaegerAddresses,
    start_collector,
    start_jaeger,
    start_viewer,
)

DEFAULT_REQUESTS = 300
SEED_CIRCUITS = 300
TRAFFIC_GAP_S = 0.02
MEMORY_LIMIT_MIB = 410
"""compose.yaml's mem_limit (512 MB) times memory_limiter's 80 %."""
NEW_RELIC_VARIABLES = ("NEW_RELIC_LICENSE_KEY", "NEW_RELIC_OTLP_ENDPOINT")


def _out(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        msg = f"{what} not found at {path}: run `make collector` (or `make stack`) first"
        raise DemoError(msg)
    return path.resolve()


def _throwaway_database(cleanups: list[Cleanup]) -> tuple[str, str]:
    """Start a throwaway PostgreSQL server with a ``circuits`` database.

    Returns:
        The database's URL, and a line saying where it is (without the password).
    """
    from cvtrace.demo.postgres import PostgresError, ThrowawayPostgres

    server = ThrowawayPostgres()
    try:
        server.start()
    except PostgresError as exc:
        msg = (
            f"no PostgreSQL for the demo: {exc}\n(`make system-deps` installs Debian's "
            "postgresql; --database-url sqlite:///demo.sqlite3 runs the demo on SQLite)"
        )
        raise DemoError(msg) from None
    cleanups.append(server.stop)
    url = server.create_database("circuits")
    return url, f"PostgreSQL on {server.host}:{server.port}, database circuits (throwaway)"


def run_stack(
    args: argparse.Namespace,
    workdir: Path,
    children: list[Child],
    cleanups: list[Cleanup],
) -> int:
    """Start everything, drive traffic, print the URLs, and wait to be interrupted.

    Every child started is appended to ``children``, and whatever else needs stopping
    (the database server) to ``cleanups``, for the caller to stop, in reverse.
    """
    from cvtrace.demo.db import make_engine
    from cvtrace.demo.seed import describe, seed
    from cvtrace.demo.traffic import drive

    collector_binary = _existing(args.collector, "the collector")
    jaeger_binary = _existing(args.jaeger, "Jaeger")
    collector_config = _existing(args.collector_config, "the collector's config")
    jaeger_config = _existing(args.jaeger_config, "Jaeger's config")
    if args.database_url:
        database_url, database = args.database_url, "the one --database-url gives"
    else:
        database_url, database = _throwaway_database(cleanups)
    engine = make_engine(database_url)
    counts = seed(engine, circuits=SEED_CIRCUITS)
    engine.dispose()
    _out(f"seeded the demo database: {describe(counts)}")

    viewer, viewer_otlp = start_viewer(
        workdir / "viewer.sqlite3", workdir / "viewer.log", started=children
    )
    jaeger = JaegerAddresses.on_free_ports()
    start_jaeger(jaeger_binary, jaeger_config, jaeger, workdir / "jaeger.log", started=children)
    collector = CollectorAddresses.on_free_ports()
    new_relic = {name: os.environ[name] for name in NEW_RELIC_VARIABLES if name in os.environ}
    start_collector(
        collector_binary,
        collector_config,
        collector,
        workdir / "collector.log",
        started=children,
        jaeger_otlp_grpc=jaeger.otlp_grpc,
        viewer_otlp_http=viewer_otlp,
        environment={"CVTRACE_COLLECTOR_MEMORY_LIMIT_MIB": str(MEMORY_LIMIT_MIB), **new_relic},
    )
    tracing = {
        "CVTRACE_EXPORTERS": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http_url,
        "CVTRACE_ENVIRONMENT": "stack",
        # Spans in Jaeger a second or three after a request (the collector batches 2 s).
        "OTEL_BSP_SCHEDULE_DELAY": "1000",
    }
    site, preview = start_services(workdir, database_url, tracing, started=children)
    _out(f"demo (service.name=circuits) on {site.url}, its preview service on {preview.url}")

    bar = ProgressBar("traffic", sys.stdout)
    result = drive(site.url, args.requests, mean_gap_s=TRAFFIC_GAP_S, on_progress=bar.update)
    _out(result.summary())

    key_set = bool(new_relic.get("NEW_RELIC_LICENSE_KEY"))
    new_relic_state = (
        "on (NEW_RELIC_LICENSE_KEY is set)"
        if key_set
        else "off (set NEW_RELIC_LICENSE_KEY to send there too)"
    )
    lines = [
        "",
        f"demo:       {site.url}/circuits",
        f"database:   {database}",
        f"Jaeger:     {jaeger.query_url}/api/traces?service=circuits   (its query API;",
        "            this build of Jaeger has no UI: the viewer shows the same traces)",
        f"viewer:     {viewer.url}",
        f"collector:  OTLP/HTTP {collector.otlp_http_url}, OTLP/gRPC {collector.otlp_grpc},",
        f"            health http://{collector.health}/, metrics {collector.metrics_url}",
        f"New Relic:  {new_relic_state}",
        f"logs:       {workdir}",
        "",
        "Ctrl-C stops everything.",
    ]
    _out("\n".join(lines))
    if result.transport_errors:
        sys.stderr.write(
            f"cvtrace stack: {result.transport_errors} requests got no answer from the demo\n"
        )
    try:
        viewer.process.wait()
    except KeyboardInterrupt:
        _out("\nstopping: the services, the collector, then Jaeger and the viewer")
        return 0
    msg = f"the viewer exited with code {viewer.process.returncode}:\n{viewer.log_tail()}"
    raise DemoError(msg)


def run(args: argparse.Namespace) -> int:
    """Run the stack; return its exit code.

    Started in the order in which senders come before their receivers, the processes
    stop in reverse (services, collector, then Jaeger and the viewer), so no span is lost.
    """
    if args.requests < 0:
        sys.stderr.write(f"cvtrace stack: --requests must be 0 or more, got {args.requests}\n")
        return 2
    return run_supervised(
        "stack",
        lambda workdir, children, cleanups: run_stack(args, workdir, children, cleanups),
        stop_timeout_s=30,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the stack."""
    parser = argparse.ArgumentParser(
        prog="python -m cvtrace.demo.stack",
        description="The compose stack as local processes: the demo, the collector, "
        "Jaeger and the viewer on 127.0.0.1, with traffic. Ctrl-C stops every process.",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=DEFAULT_REQUESTS,
        metavar="N",
        help=f"requests of traffic to send first (default {DEFAULT_REQUESTS})",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="the demo's database as a SQLAlchemy URL, e.g. sqlite:///demo.sqlite3 "
        "(default: a throwaway PostgreSQL server, started for the stack and deleted after)",
    )
    parser.add_argument(
        "--collector",
        type=Path,
        default=Path(".cache/bin/otelcol-cvtrace"),
        help="the collector binary (default: what `make collector` builds)",
    )
    parser.add_argument(
        "--jaeger",
        type=Path,
        default=Path(".cache/bin/jaeger"),
        help="the Jaeger binary (default: what `make collector` builds)",
    )
    parser.add_argument("--collector-config", type=Path, default=Path("otel-collector.yaml"))
    parser.add_argument("--jaeger-config", type=Path, default=Path("deploy/jaeger-local.yaml"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
