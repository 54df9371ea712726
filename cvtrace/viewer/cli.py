"""``cvtrace view``: serve the viewer, the OTLP/HTTP and the OTLP/gRPC receivers.

The token (see :mod:`cvtrace.viewer.auth`) comes from ``--token-file``, else
``$CVTRACE_VIEWER_TOKEN``, else ``--token`` (which warns: a command line is
visible to every local user in ``ps``). The UI's ``?token=`` URL is printed to
the terminal that started the viewer only: to stdout if it is a terminal, else to
the controlling terminal (``/dev/tty``) if there is one, never into a pipe, a
log file or a container's log.
"""

from __future__ import annotations

import argparse
import errno
import gc
import ipaddress
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cvtrace.exceptions import CvtraceConfigError
from cvtrace.exporters.local import default_db_path

logger = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 60.0
CHECKPOINT_INTERVAL_S = 0.5


def port(text: str) -> int:
    """A TCP port for argparse: 0 to 65535 (0: the system picks a free one)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        msg = f"{text!r} is not a port: give 0 to 65535 (0 picks a free one)"
        raise argparse.ArgumentTypeError(msg)
    return value


def port_or_off(text: str) -> int:
    """A TCP port for argparse, or -1 for none."""
    return -1 if text.strip() == "-1" else port(text)


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
    parser.add_argument("--port", type=port, default=16686, help="UI and API port (default 16686)")
    parser.add_argument(
        "--otlp-port", type=port, default=4318, help="OTLP/HTTP port (default 4318; 0 picks one)"
    )
    parser.add_argument(
        "--otlp-grpc-port",
        type=port_or_off,
        default=4317,
        help="OTLP/gRPC port (default 4317; 0 picks one; -1 turns gRPC off)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="require the bearer token in this file (its first line); needed off loopback "
        "(default: $CVTRACE_VIEWER_TOKEN)",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="require this bearer token; visible to other local users in ps, so prefer "
        "--token-file or $CVTRACE_VIEWER_TOKEN",
    )
    parser.add_argument(
        "--otlp-max-body-bytes",
        type=int,
        default=None,
        help="largest OTLP request after decompression (default 64 MiB)",
    )
    remote = parser.add_argument_group(
        "a remote Jaeger",
        "read traces from a Jaeger query service too (read-only; see docs/operations.md)",
    )
    remote.add_argument(
        "--jaeger-url",
        default=None,
        metavar="URL",
        help="a Jaeger query service whose traces the viewer shows beside the local store's, "
        "e.g. http://jaeger:16686 (default: $CVTRACE_VIEWER_JAEGER_URL)",
    )
    remote.add_argument(
        "--jaeger-header",
        action="append",
        default=None,
        metavar="'NAME: VALUE'",
        help="a header sent to it, e.g. 'Authorization: Bearer TOKEN'; repeatable (default: "
        "$CVTRACE_VIEWER_JAEGER_HEADERS, as NAME=VALUE,... with values URL-encoded)",
    )
    remote.add_argument(
        "--jaeger-timeout",
        default=None,
        metavar="SECONDS",
        help="how long one answer of it may take, whole (default 10; "
        "$CVTRACE_VIEWER_JAEGER_TIMEOUT_S)",
    )
    remote.add_argument(
        "--no-local",
        action="store_true",
        default=None,
        help="show the Jaeger's traces only, not the local store's (which still receives "
        "OTLP and keeps saved traces; default: $CVTRACE_VIEWER_NO_LOCAL)",
    )
    parser.set_defaults(func=run)


def cannot_listen(host: str, what: str, option: str, chosen: int, error: OSError) -> str:
    """The message for a port that could not be bound: which one, why, and the way out."""
    reason = error.strerror or str(error)
    advice = (
        "another program holds it (a collector, or another cvtrace view?); "
        f"pick another with {option} PORT, or {option} 0 for any free one"
        if error.errno == errno.EADDRINUSE
        else f"pick another with {option} PORT, or another --host"
    )
    return (
        f"cvtrace view: cannot listen on {host}:{chosen} for {what} ({option}): {reason}; {advice}"
    )


def is_loopback(host: str) -> bool:
    """Return whether ``host`` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(args: argparse.Namespace) -> str | None:
    """Return the token from ``--token-file``, ``$CVTRACE_VIEWER_TOKEN`` or ``--token``.

    Raises:
        CvtraceConfigError: Both options are given, or the file cannot be read or is empty.
    """
    if args.token_file is not None and args.token is not None:
        msg = "--token and --token-file: give one of them (--token-file keeps it out of ps)"
        raise CvtraceConfigError(msg)
    if args.token_file is not None:
        try:
            text = args.token_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"--token-file: cannot read {args.token_file}: {exc}; give a readable file"
            raise CvtraceConfigError(msg) from None
        lines = text.splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            msg = f"--token-file: {args.token_file} is empty; put the token on its first line"
            raise CvtraceConfigError(msg)
        return token
    if args.token is not None:
        print(
            "cvtrace view: warning: --token puts the token on the command line, where every "
            "user of this machine can read it (ps); use --token-file or CVTRACE_VIEWER_TOKEN.",
            file=sys.stderr,
            flush=True,
        )
        return str(args.token) or None
    return os.environ.get("CVTRACE_VIEWER_TOKEN") or None


def show_token_url(url: str) -> str:
    """Write the URL with its token to the starting terminal only; say where it went.

    Returns:
        The line for stdout: the URL itself if stdout is that terminal, else a note.
    """
    if sys.stdout.isatty():
        return url
    try:
        with open("/dev/tty", "w", encoding="utf-8") as tty:  # the controlling terminal
            tty.write(f"cvtrace viewer: open {url}\n")
        where = "written to this terminal only"
    except OSError:  # no terminal: a service, a container, a pipe
        where = "not printed: no terminal; open the URL with ?token=TOKEN once"
    return f"{url.split('?', 1)[0]} (the URL with its token is {where})"


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; return the exit code."""
    from cvtrace.store.connections import StoreRefused
    from cvtrace.viewer import DEFAULT_OTLP_MAX_BODY_BYTES, create_app, get_store
    from cvtrace.viewer.grpc_receiver import start_grpc_server
    from cvtrace.viewer.otlp_http import OtlpHttpServer
    from cvtrace.viewer.receiver import decode_slots
    from cvtrace.viewer.remote import RemoteError
    from cvtrace.viewer.sources import get_source
    from cvtrace.viewer.wsgi_server import WsgiServer

    try:
        token = read_token(args)
    except CvtraceConfigError as exc:
        print(f"cvtrace view: {exc}", file=sys.stderr)
        return 2
    if not is_loopback(args.host) and token is None:
        print(
            f"cvtrace view: refusing to listen on {args.host} without a token: anyone who "
            "can reach that address could read your traces and write spans.\n"
            "Pass --token-file FILE (or set CVTRACE_VIEWER_TOKEN), or keep the default "
            "--host 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("waitress").setLevel(logging.WARNING)
    db_path = args.db or default_db_path()
    max_body = args.otlp_max_body_bytes
    config: dict[str, Any] = {
        "DB_PATH": db_path,
        "TOKEN": token,
        "CHECKPOINT_INTERVAL_S": CHECKPOINT_INTERVAL_S,
    }
    if token is None:  # only on loopback, see above: refuse other Host names
        config["ALLOWED_HOSTS"] = sorted({"localhost", "127.0.0.1", "::1", args.host.strip("[]")})
    if max_body is not None:
        config["OTLP_MAX_BODY_BYTES"] = max_body
    for key, value in (
        ("JAEGER_URL", args.jaeger_url),
        ("JAEGER_HEADERS", args.jaeger_header),
        ("JAEGER_TIMEOUT_S", args.jaeger_timeout),
        ("NO_LOCAL", args.no_local),
    ):
        if value is not None:  # else the CVTRACE_VIEWER_* variable, else the default
            config[key] = value
    try:  # opens the store, with the CVTRACE_VIEWER_* settings
        app = create_app(config)
    except StoreRefused as exc:
        print(f"cvtrace view: {exc.worded_for('--db') if args.db else exc}", file=sys.stderr)
        return 2
    except CvtraceConfigError as exc:
        print(f"cvtrace view: {exc}", file=sys.stderr)
        return 2
    store = get_store(app)
    limit = int(app.config.get("OTLP_MAX_BODY_BYTES") or DEFAULT_OTLP_MAX_BODY_BYTES)
    slots = decode_slots(app)  # one bound on decoding for all three receivers
    servers: list[WsgiServer | OtlpHttpServer] = []
    grpc_server = None
    listening = "the UI and API", "--port", args.port
    try:
        ui_server = WsgiServer(app, args.host, args.port, max_body_bytes=limit)
        servers.append(ui_server)
        listening = "OTLP/HTTP", "--otlp-port", args.otlp_port
        otlp_server = OtlpHttpServer(
            (args.host, args.otlp_port),
            store,
            token=token,
            allowed_hosts=config.get("ALLOWED_HOSTS"),
            limit=limit,
            slots=slots,
        )
        servers.append(otlp_server)
        if args.otlp_grpc_port >= 0:
            listening = "OTLP/gRPC", "--otlp-grpc-port", args.otlp_grpc_port
            grpc_server, grpc_port = start_grpc_server(
                store,
                args.host,
                args.otlp_grpc_port,
                token=token,
                max_message_bytes=limit,
                slots=slots,
            )
    except OSError as exc:
        print(cannot_listen(args.host, *listening, exc), file=sys.stderr)
        for server in servers:
            server.server_close()
        store.close()
        return 1
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{ui_server.server_port}/"
    shown = show_token_url(f"{url}?token={quote(token, safe='')}") if token else url
    lines = [
        f"cvtrace viewer on {shown}",
        f"  store: {db_path}"
        + (" (read-only: this user cannot write it; OTLP is refused)" if store.read_only else ""),
        f"  OTLP/HTTP: http://{host}:{otlp_server.server_port}/v1/traces",
    ]
    if grpc_server is not None:
        lines.append(f"  OTLP/gRPC: {host}:{grpc_port}")
    remote = get_source(app).remote
    if remote is not None:
        shown_where = "instead of the store's" if get_source(app).local is None else "too"
        try:  # said at once: a wrong URL or a missing header shows here, not later
            api = f"API {remote.version()}"
        except RemoteError as exc:
            api = f"not answering yet: {exc.reason}"
        lines.append(f"  traces {shown_where} from the Jaeger at {remote.url} ({api})")
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


def register_export(subparsers: Any) -> None:
    """Add the ``export`` subcommand (see :mod:`cvtrace.cli`)."""
    parser = subparsers.add_parser(
        "export",
        help="write one trace as a single HTML file that opens anywhere, offline",
        description=(
            "Write a trace as one self-contained HTML file: the viewer's trace page "
            "(waterfall, overview, span details, folding) with the trace's data, scripts "
            "and styles inside. It opens in any browser with nothing installed and no "
            "network (it loads nothing, from anywhere): send it to a colleague. It is "
            "read-only, and states the trace id, services and export time; spans whose "
            "producer dropped data at a size limit are named."
        ),
        epilog="example: cvtrace export 4bf92f3577b34da6a3ce929d0e0e4736 -o slow-checkout.html",
    )
    parser.add_argument(
        "trace_id", metavar="TRACE_ID", help="the trace's id (hex, as in the trace page's address)"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="the file to write (default: trace-TRACE_ID.html in the current directory; "
        "- for standard output)",
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help="the store file, opened read-only (default: $CVTRACE_LOCAL_DB, else "
        "$XDG_DATA_HOME/cvtrace/traces.sqlite3, the file cvtrace view opens)",
    )
    parser.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Write the file; return 0, 1 if the trace or the store is not there, 2 on bad input."""
    import time

    from cvtrace.store import SpanStore
    from cvtrace.store.connections import StoreRefused
    from cvtrace.viewer import create_app
    from cvtrace.viewer.exporting import (
        ExportError,
        TraceNotFound,
        default_file_name,
        export_html_chunks,
    )
    from cvtrace.viewer.jaeger_api import BadParameter, parse_trace_id

    started = time.perf_counter()
    try:
        trace_id = parse_trace_id(args.trace_id)
    except BadParameter:
        print(
            f"cvtrace export: {args.trace_id[:80]!r} is not a trace id: give up to 32 hex "
            "digits, as in the trace page's address (/trace/ID)",
            file=sys.stderr,
        )
        return 2
    db_path = args.db or default_db_path()
    if not db_path.exists():
        print(
            f"cvtrace export: no store at {db_path}; name it with --db "
            "(or CVTRACE_LOCAL_DB), as given to cvtrace view",
            file=sys.stderr,
        )
        return 1
    try:  # read-only: exporting writes nothing to the store, whoever else writes it
        store = SpanStore(db_path, read_only=True)
    except StoreRefused as exc:
        setting = "--db" if args.db else "CVTRACE_LOCAL_DB"
        print(f"cvtrace export: {exc.worded_for(setting, new_file_ok=False)}", file=sys.stderr)
        return 2
    except CvtraceConfigError as exc:
        print(f"cvtrace export: {exc}", file=sys.stderr)
        return 2
    to_stdout = str(args.output) == "-"
    target: Path = args.output or Path(default_file_name(trace_id))
    partial = target.with_name(target.name + ".part")
    size = 0
    try:
        chunks = export_html_chunks(create_app({"STORE": store}), trace_id)
        if to_stdout:
            for chunk in chunks:
                sys.stdout.buffer.write(chunk.encode("utf-8"))
            sys.stdout.flush()
            return 0
        # whole or not at all: a half-written file would open as a broken page
        with partial.open("wb") as out:
            for chunk in chunks:
                size += out.write(chunk.encode("utf-8"))
        partial.replace(target)
    except TraceNotFound as exc:
        print(f"cvtrace export: {exc}", file=sys.stderr)
        return 1
    except ExportError as exc:  # the page needs what the export cannot embed: a bug
        print(f"cvtrace export: cannot make the file: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `cvtrace export ID -o - | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 1
    except OSError as exc:
        partial.unlink(missing_ok=True)
        # the reason without the file name: the one written was a temporary sibling
        reason = exc.strerror or str(exc)
        print(f"cvtrace export: cannot write {target}: {reason}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(
        f"cvtrace export: wrote {target} ({size / 1e6:.1f} MB) in "
        f"{time.perf_counter() - started:.1f} s; it opens in any browser, with no network"
    )
    return 0
