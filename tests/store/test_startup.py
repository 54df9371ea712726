"""Opening a store costs the same however much it holds: nothing is scanned at start-up."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cvtrace.store import SpanStore, TraceQuery
from tests.viewer.support import T0_NS, make_request, simple_trace


def _fill(path: Path, traces: int) -> None:
    with SpanStore(path, max_spans=0) as store:
        for i in range(0, traces, 50):
            specs = [s for j in range(i, i + 50) for s in simple_trace(start_ns=T0_NS + j)]
            store.write_request(make_request(specs))


def _steps_to_open_and_read(monkeypatch: pytest.MonkeyPatch, path: Path) -> int:
    """SQLite VM steps (in hundreds) to open the store and answer what a viewer's first
    pages ask: the span count, the services, the newest traces."""
    steps = [0]
    real_connect: Callable[..., sqlite3.Connection] = sqlite3.connect

    def counting_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)

        def count() -> int:
            steps[0] += 1
            return 0

        conn.set_progress_handler(count, 100)
        return conn

    # the sqlite3 module that cvtrace.store.connections opens its connections with
    monkeypatch.setattr(sqlite3, "connect", counting_connect)
    with SpanStore(path, max_spans=1_000_000) as store:
        store.span_count()
        store.services()
        store.search(TraceQuery(limit=20))
    monkeypatch.undo()
    return steps[0]


def test_opening_a_store_does_not_scan_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    small, big = tmp_path / "small.sqlite3", tmp_path / "big.sqlite3"
    _fill(small, 50)
    _fill(big, 3_000)  # 60x the traces, 9,000 spans
    small_steps = _steps_to_open_and_read(monkeypatch, small)
    big_steps = _steps_to_open_and_read(monkeypatch, big)
    assert small_steps > 0
    # a scan of the big store's traces alone would be thousands of hundreds of steps
    assert big_steps <= small_steps + 20
