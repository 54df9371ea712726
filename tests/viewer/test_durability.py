"""Spans acknowledged with 200 survive ``kill -9`` of ``cvtrace view`` (issue 16).

A real viewer subprocess receives OTLP/HTTP from two senders (so that concurrent
requests are grouped into one transaction, as under load); it is killed with
SIGKILL while they send. Every span of every request answered 200 must then be in
the store, which must pass ``PRAGMA integrity_check``, and a restarted viewer must
serve and take spans again.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from pathlib import Path

import pytest
import requests

from cvtrace.store import SpanStore
from cvtrace.store.batches import group_spans
from tests.viewer.support import SpanSpec, make_request, new_span_id, new_trace_id
from tests.viewer.test_cli import read_banner, start_view

pytestmark = pytest.mark.slow

SPANS_PER_REQUEST = 256
KILL_AFTER_ACKS = 40
"""Requests acknowledged (both senders together) before the viewer is killed."""


def _request(n: int) -> tuple[bytes, set[bytes]]:
    """Return an encoded request of ``n`` spans in traces of 8, and their span ids."""
    specs: list[SpanSpec] = []
    for i in range(0, n, 8):
        trace_id = new_trace_id()
        root = SpanSpec("GET /x", trace_id, service=f"svc{i % 3}", attrs={"http.route": "/x"})
        specs.append(root)
        specs.extend(
            SpanSpec("SELECT", trace_id, parent_span_id=root.span_id, span_id=new_span_id())
            for _ in range(7)
        )
    return make_request(specs).SerializeToString(), {s.span_id for s in specs}


class _Sender(threading.Thread):
    """Posts prepared requests back to back until the viewer goes away; records the acked.

    The sender whose answer is the ``KILL_AFTER_ACKS``-th 200 kills the viewer at
    once, from its own thread: the other sender has a request in flight, and a
    viewer that answered before its write was durable would lose the last ones.
    """

    def __init__(self, url: str, pid: int, acks: list[int], lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.pid = pid
        self.acks = acks
        self.lock = lock
        self.acked: set[bytes] = set()
        self.requests = [_request(SPANS_PER_REQUEST) for _ in range(KILL_AFTER_ACKS)]

    def run(self) -> None:
        session = requests.Session()
        headers = {"Content-Type": "application/x-protobuf"}
        for body, span_ids in self.requests:
            try:
                response = session.post(self.url, data=body, headers=headers, timeout=30)
            except requests.RequestException:
                return  # the viewer is gone: this request was never acknowledged
            if response.status_code == 200:
                self.acked |= span_ids
                with self.lock:
                    self.acks[0] += 1
                    if self.acks[0] == KILL_AFTER_ACKS:
                        os.kill(self.pid, signal.SIGKILL)


def _stored_span_ids(db: Path) -> set[bytes]:
    with SpanStore(db, max_spans=0) as store, store._connections.reading() as conn:
        return {
            span.span_id
            for (body,) in conn.execute("SELECT body FROM span_groups")
            for span in group_spans(body)
        }


def test_acknowledged_spans_survive_kill_9(tmp_path: Path) -> None:
    """Each span answered 200 before SIGKILL is stored; the file is intact."""
    proc = start_view(tmp_path, env={"CVTRACE_VIEWER_MAX_SPANS": "0"})
    try:
        urls = read_banner(proc)
        acks = [0]
        lock = threading.Lock()
        senders = [_Sender(urls["otlp"], proc.pid, acks, lock) for _ in range(2)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(timeout=120)
            assert not sender.is_alive()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
    db = tmp_path / "cli.sqlite3"
    acked = set().union(*(s.acked for s in senders))
    assert acks[0] >= KILL_AFTER_ACKS  # killed mid-ingest, not after the senders were done
    assert len(acked) >= KILL_AFTER_ACKS * SPANS_PER_REQUEST

    conn = sqlite3.connect(db)  # recovers the WAL the killed viewer left
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    stored = _stored_span_ids(db)
    missing = acked - stored
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged spans are not stored"

    # a restarted viewer serves what was stored and takes spans again
    proc = start_view(tmp_path, env={"CVTRACE_VIEWER_MAX_SPANS": "0"})
    try:
        urls = read_banner(proc)
        body, span_ids = _request(16)
        response = requests.post(
            urls["otlp"],
            data=body,
            headers={"Content-Type": "application/x-protobuf"},
            timeout=30,
        )
        assert response.status_code == 200
        services = requests.get(urls["ui"] + "api/services", timeout=30).json()["data"]
        assert sorted(services) == ["svc", "svc0", "svc1", "svc2"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert span_ids <= _stored_span_ids(db)
