"""``python -m bench.serve_ui SERVER DB``: the viewer's app alone, served by SERVER.

SERVER is ``waitress`` (:class:`cvtrace.viewer.wsgi_server.WsgiServer`, what
``cvtrace view`` serves the UI with) or ``werkzeug`` (Werkzeug's threaded
development server as ``cvtrace view`` configured it before: no log line per
request, TCP_NODELAY). Prints ``port N`` once listening; serves until killed.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from cvtrace.store import SpanStore
from cvtrace.viewer import create_app


def main() -> int:
    """Serve until killed."""
    server_name, db = sys.argv[1], Path(sys.argv[2])
    app = create_app({"STORE": SpanStore(db, max_spans=0)})
    server: object
    if server_name == "werkzeug":
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Handler(WSGIRequestHandler):
            disable_nagle_algorithm = True

            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                """No log line per request."""

        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Handler)
    elif server_name == "waitress":
        from cvtrace.viewer.wsgi_server import WsgiServer

        server = WsgiServer(app, "127.0.0.1", 0)
    else:
        sys.stderr.write(f"unknown server {server_name!r}; expected werkzeug or waitress\n")
        return 2
    gc.freeze()  # as cvtrace view does
    sys.stdout.write(f"port {server.server_port}\n")
    sys.stdout.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
