"""Free TCP ports on 127.0.0.1 for programs that must be told their port in advance.

The Go programs (collector, Jaeger) and PostgreSQL cannot report a port they picked,
so a port is chosen first and handed to them. A port from ``bind(("127.0.0.1", 0))``
comes from the kernel's ephemeral range, which every *outgoing* connection on the
machine draws from too: between choosing it and the child binding it, any client
(another test, the app retrying its exporter) may take it as its local port, and the
child fails with "address already in use". So ports are chosen below that range, where
only another listener can take them, and one process never hands out a port twice.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"
LOWEST_PORT = 20_000
"""Ports are chosen from here up to the start of the ephemeral range."""
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on, outside the ephemeral range.

    Falls back to a port from the kernel (``bind`` to port 0) when the ephemeral range
    leaves no room below it.
    """
    ephemeral_start = _ephemeral_start()
    for _ in range(200):
        if ephemeral_start - LOWEST_PORT < 1_000:
            break
        port = random.randrange(LOWEST_PORT, ephemeral_start)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port = int(sock.getsockname()[1])
    _handed_out.add(port)
    return port


def _ephemeral_start() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True
