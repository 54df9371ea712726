"""``cvtrace view``: serve the viewer, the OTLP/HTTP and the OTLP/gRPC receivers."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from cvtrace.exceptions import CvtraceConfigError
from cvtrace.store import SpanStore, default_db_path

logger = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 60.0
CHECKPOINT_INTERVAL_S = 0.5


class _RequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without a log line per request, with TCP_NODELAY.

    A log line per OTLP request would flood the terminal at tens of requests a
    second; errors are still logged.
    """

    disable_nagle_algorithm = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log nothing per request (errors are still logged)."""


def register(subparsers: Any) -> None:
    """Add the ``view`` subcommand (see :mod:`cvtrace.cli`)."""
    parser = subparsers.add_parser(
        "view",
        help="serve the local trace viewer and OTLP receivers",
        description=(
            "Serve the trace viewer (UI and Jaeger-compatible JSON API) and receive "
            "OTLP over HTTP and gRPC into one SQLite file."
        ),
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help="the store file (default: $CVTRACE_LOCAL_DB, else "
        "$XDG_DATA_HOME/cvtrace/traces.sqlite3, the file the local exporter writes)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=16686, help="UI and API port (default 16686)")
    parser.add_argument(
        "--otlp-port", type=int, default=4318, help="OTLP/HTTP port (default 4318; 0 picks one)"
    )
    parser.add_argument(
        "--otlp-grpc-port",
        type=int,
        default=4317,
        help="OTLP/gRPC port (default 4317; 0 picks one; -1 turns gRPC off)",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="require this bearer token (default $CVTRACE_VIEWER_TOKEN); needed off loopback",
    )
    parser.add_argument(
        "--otlp-max-body-bytes",
        type=int,
        default=None,
        help="largest OTLP request after decompression (default 64 MiB)",
    )
    parser.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    """Return whether ``host`` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; return the exit code."""
    from cvtrace.viewer import DEFAULT_OTLP_MAX_BODY_BYTES, create_app
    from cvtrace.viewer.grpc_receiver import start_grpc_server
    from cvtrace.viewer.receiver import OtlpHttpServer

    token = args.token or os.environ.get("CVTRACE_VIEWER_TOKEN") or None
    if not is_loopback(args.host) and token is None:
        print(
            f"cvtrace view: refusing to listen on {args.host} without a token: anyone who "
            "can reach that address could read your traces and write spans.\n"
            "Pass --token TOKEN (or set CVTRACE_VIEWER_TOKEN), or keep the default "
            "--host 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    db_path = args.db or default_db_path()
    try:
        store = SpanStore(db_path, checkpoint_interval_s=CHECKPOINT_INTERVAL_S)
    except CvtraceConfigError as exc:
        print(f"cvtrace view: {exc}", file=sys.stderr)
        return 2
    max_body = args.otlp_max_body_bytes
    config: dict[str, Any] = {"STORE": store, "TOKEN": token}
    if token is None:  # only on loopback, see above: refuse other Host names
        config["ALLOWED_HOSTS"] = sorted({"localhost", "127.0.0.1", "::1", args.host.strip("[]")})
    if max_body is not None:
        config["OTLP_MAX_BODY_BYTES"] = max_body
    app = create_app(config)
    limit = int(app.config.get("OTLP_MAX_BODY_BYTES") or DEFAULT_OTLP_MAX_BODY_BYTES)
    servers: list[BaseWSGIServer | OtlpHttpServer] = []
    grpc_server = None
    try:
        ui_server = make_server(
            args.host, args.port, app, threaded=True, request_handler=_RequestHandler
        )
        servers.append(ui_server)
        otlp_server = OtlpHttpServer(
            (args.host, args.otlp_port),
            store,
            token=token,
            allowed_hosts=config.get("ALLOWED_HOSTS"),
            limit=limit,
        )
        servers.append(otlp_server)
        if args.otlp_grpc_port >= 0:
            grpc_server, grpc_port = start_grpc_server(
                store, args.host, args.otlp_grpc_port, token=token, max_message_bytes=limit
            )
    except OSError as exc:
        print(f"cvtrace view: cannot listen: {exc}", file=sys.stderr)
        for server in servers:
            server.server_close()
        store.close()
        return 1
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{ui_server.server_port}/"
    lines = [
        f"cvtrace viewer on {url}" + (f"?token={token}" if token else ""),
        f"  store: {db_path}",
        f"  OTLP/HTTP: http://{host}:{otlp_server.server_port}/v1/traces",
    ]
    if grpc_server is not None:
        lines.append(f"  OTLP/gRPC: {host}:{grpc_port}")
    print("\n".join(lines), flush=True)
    # Everything made so far (Flask, plotly, the store's caches) lives as long as the
    # process: move it out of the collector's way, so that full collections during
    # requests stay short (BENCHMARKS.md, viewer search: the p99 was those collections).
    gc.freeze()

    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    threads = [
        threading.Thread(target=s.serve_forever, name=f"cvtrace-view-{i}", daemon=True)
        for i, s in enumerate(servers)
    ]
    for thread in threads:
        thread.start()
    try:
        while not stop.wait(RETENTION_INTERVAL_S):
            try:
                store.enforce_retention()
            except Exception:
                logger.exception("applying retention failed")
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        if grpc_server is not None:
            grpc_server.stop(grace=2).wait()
        store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
