"""Ports chosen for child processes: free, never repeated, and out of the clients' way."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from cvtrace.demo import ports
from cvtrace.demo.ports import LOOPBACK, LOWEST_PORT, free_port


def test_a_port_is_free_and_below_the_range_outgoing_connections_draw_from() -> None:
    ephemeral_start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    port = free_port()
    assert LOWEST_PORT <= port < ephemeral_start
    with socket.socket() as sock:
        sock.bind((LOOPBACK, port))
        sock.listen()


def test_one_process_never_hands_out_a_port_twice() -> None:
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)


def test_a_port_something_listens_on_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen()
        taken = int(listener.getsockname()[1])
        choices = iter([taken, taken, LOWEST_PORT + 1])
        monkeypatch.setattr(random, "randrange", lambda start, stop: next(choices))
        assert ports.free_port() == LOWEST_PORT + 1
