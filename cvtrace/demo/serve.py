"""Run one of the demo's services with a small threaded server (no gunicorn needed).

``python -m cvtrace.demo.serve app`` (the site) or ``python -m cvtrace.demo.serve preview``,
listening on ``--port`` (default ``$PORT``, else 8000 for the app and 8001 for the
preview; 0 picks a free port). Once listening it prints one line,
``listening on http://HOST:PORT``, which ``cvtrace demo`` waits for. SIGTERM or Ctrl-C
stops it cleanly: requests in flight and queued jobs finish, then cvtrace flushes.
Production runs the same factories under gunicorn (see the Dockerfile).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from werkzeug.serving import make_server

import cvtrace

DEFAULT_PORTS = {"app": 8000, "preview": 8001}


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m cvtrace.demo.serve", description=__doc__)
    parser.add_argument("service", choices=sorted(DEFAULT_PORTS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    port = args.port
    if port is None:
        raw = os.environ.get("PORT") or str(DEFAULT_PORTS[args.service])
        try:
            port = int(raw)
        except ValueError:
            parser.error(f"PORT: {raw!r} is not a port number; set it to e.g. 8000")
    if args.service == "app":
        from cvtrace.demo.app import create_app
    else:
        from cvtrace.demo.preview_service import create_app
    app = create_app()
    server = make_server(args.host, port, app, threaded=True)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        # serve_forever() returns once shutdown() is called from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stdout.write(f"listening on http://{args.host}:{server.server_port}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()
        jobs = app.extensions.get("demo_jobs")
        if jobs is not None:
            jobs.shutdown()
        cvtrace.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
