"""The viewer's waitress server: it stops cleanly, even when its wake-up pipe is gone."""

from __future__ import annotations

import threading
import urllib.request

import pytest
from flask import Flask

from cvtrace.viewer.wsgi_server import WsgiServer


def _hello() -> Flask:
    app = Flask(__name__)
    app.add_url_rule("/", "hello", lambda: "hello")
    return app


def test_shutdown_survives_a_closed_wake_up_pipe(caplog: pytest.LogCaptureFixture) -> None:
    """A full run once saw EBADF from waitress's trigger in shutdown: stop anyway, say so."""
    server = WsgiServer(_hello(), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/", timeout=10) as answer:
        assert answer.read() == b"hello"
    # the write end's descriptor gone (EBADF on write); its real pipe still closes after
    server._server.trigger.trigger = 1 << 20
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert "wake-up pipe is closed" in caplog.text
