"""The HTTP server of the viewer's UI and API: waitress, served from a thread.

Why waitress (and not Werkzeug's development server, which served the UI before,
nor gunicorn): a production WSGI server in pure Python that runs in the viewer's
one process with threads. One process matters: the UI, the API and the OTLP
receivers share one :class:`~cvtrace.store.SpanStore` (one writer, its caches)
and the gRPC server, which a forking server would copy (gRPC does not survive a
fork, and two processes would be two writers). gunicorn would also want to own
the process and its signals, and runs on Unix only. waitress parses requests
strictly (``Content-Length`` digits only, chunked framing checked), buffers
large request bodies to disk rather than memory, stops at
``max_request_body_size``, and holds at most ``outbuf_high_watermark`` bytes of a
response for a slow client, blocking the app's thread until they are sent, so a
streamed response stays small in memory. BENCHMARKS.md, "Serving", compares it
with Werkzeug's server on the search and trace pages.

:class:`WsgiServer` has the ``serve_forever``/``shutdown``/``server_close``
methods of :mod:`socketserver` servers, so ``cvtrace view`` and the tests start
and stop it like the OTLP/HTTP server.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from waitress.server import BaseWSGIServer, create_server

logger = logging.getLogger(__name__)

THREADS = 8
"""Requests served at once: a big trace streaming out keeps one busy for seconds."""
OUTPUT_BUFFER_BYTES = 4 * 1024 * 1024
"""Response bytes held for a slow client before the app's thread waits for it."""


class WsgiServer:
    """A WSGI app on ``host:port`` (0 picks a free port), served by waitress.

    Args:
        app: The WSGI application.
        host: The address to bind.
        port: The port; 0 picks a free one.
        max_body_bytes: The largest request body (413 above it).
        threads: Requests served at once.

    Raises:
        OSError: The address cannot be bound.
    """

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        max_body_bytes: int = 64 * 1024 * 1024,
        threads: int = THREADS,
    ) -> None:
        server = create_server(
            app,
            host=host.strip("[]"),
            port=port,
            threads=threads,
            ident="cvtrace",
            max_request_body_size=max_body_bytes,
            outbuf_high_watermark=OUTPUT_BUFFER_BYTES,
            clear_untrusted_proxy_headers=True,
            asyncore_use_poll=True,  # select() fails past 1024 file descriptors
        )
        assert isinstance(server, BaseWSGIServer)  # one address, so one server
        self._server = server
        self.server_port = int(server.effective_port)
        self._stopped = threading.Event()

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` (from another thread)."""
        try:
            self._server.run()
        finally:
            self._stopped.set()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop serving: close every connection and the socket, end the threads."""
        server = self._server

        def close_all() -> None:  # in the server's own thread: its map is not thread safe
            for channel in list(server._map.values()):
                channel.close()

        try:
            server.trigger.pull_trigger(close_all)
        except OSError:
            # The wake-up pipe's descriptor is gone (seen once in a full test run: EBADF,
            # likely a descriptor closed twice elsewhere in the process). The loop cannot
            # be woken: close from here, as waitress's own close() does, and let it end.
            logger.warning("waitress's wake-up pipe is closed; closing the server directly")
            for channel in [*server._map.values(), server]:
                with contextlib.suppress(OSError):
                    channel.close()
        self._stopped.wait(timeout_s)
        server.task_dispatcher.shutdown(timeout=timeout_s)

    def server_close(self) -> None:
        """Release the listening socket (if :meth:`shutdown` has not)."""
        if not self._stopped.is_set():
            self._server.close()
