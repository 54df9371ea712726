"""The writer under faults: a full disk is reported as one, and writes resume after it."""

from __future__ import annotations

import errno
import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from cvtrace.store import SpanStore, StoreFullError, WriteResult
from cvtrace.store.batches import Prepared, prepare_request
from tests.viewer.support import make_request, simple_trace

NO_PAGE_LIMIT = 1_073_741_823


def big_request() -> ExportTraceServiceRequest:
    """A request of about 100 KB: a dozen pages of the store at least."""
    return make_request(simple_trace(attrs={"blob": "x" * 100_000}))


def fill_to_page_limit(store: SpanStore, spare_pages: int = 2) -> None:
    """Let the store's file grow by ``spare_pages`` pages at most.

    SQLite's page limit (``max_page_count``) stands in for a full disk where no small
    disk can be mounted: SQLite raises the same error from the same place (the pager
    cannot get a page: ``SQLITE_FULL``, "database or disk is full") and, as on a
    full disk, has rolled the transaction back by then. The limit is a setting of
    the writing connection, hence the private attribute.
    """
    conn = store._writing().conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + spare_pages}")


def warnings_about_full(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "full" in r.getMessage()
    ]


def test_full_disk_is_reported_as_full_logged_once_and_writes_resume(
    store: SpanStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.write_request(make_request(simple_trace()))
    fill_to_page_limit(store)
    with caplog.at_level(logging.INFO, logger="cvtrace.store"):
        for _ in range(3):
            with pytest.raises(StoreFullError, match="database or disk is full") as failed:
                store.write_request(big_request())
            assert "cannot rollback" not in str(failed.value)
        assert len(warnings_about_full(caplog)) == 1
        store._writing().conn.execute(f"PRAGMA max_page_count = {NO_PAGE_LIMIT}")  # space freed
        specs = simple_trace(children=4)
        assert store.write_request(make_request(specs)).accepted_spans == 5
        assert any("resumed" in r.getMessage() for r in caplog.records)
    assert len(store.get_trace(specs[0].trace_id)) == 5
    assert store.trace_count() == 2  # the refused requests left nothing behind
    assert store.span_count() == 8


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a disk that really fills up.

    Mounting needs root (CAP_SYS_ADMIN), as this sandbox has; elsewhere the test
    above, with SQLite's page limit, covers the same path.
    """
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def fill_disk(path: Path) -> None:
    """Write zeros to ``path`` until its disk is full."""
    with path.open("wb", buffering=0) as f:
        while True:
            try:
                f.write(bytes(65536))
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    return
                raise


def first_refusal(store: SpanStore, attempts: int = 50) -> StoreFullError:
    """Write until the store refuses (the WAL's last free pages may take a few)."""
    for _ in range(attempts):
        try:
            store.write_request(big_request())
        except StoreFullError as exc:
            return exc
    raise AssertionError(f"{attempts} writes of 100 KB went onto a full disk")


def test_a_really_full_disk(small_disk: Path) -> None:
    store = SpanStore(small_disk / "t.sqlite3", max_spans=0)
    try:
        store.write_request(make_request(simple_trace()))
        fill_disk(small_disk / "ballast")
        assert "database or disk is full" in str(first_refusal(store))
        (small_disk / "ballast").unlink()
        specs = simple_trace()
        assert store.write_request(make_request(specs)).accepted_spans == 3
        assert len(store.get_trace(specs[0].trace_id)) == 3
    finally:
        store.close()


class TestGroupCommit:
    """Requests that wait for the writer together are prepared and written together."""

    def _wait_for_pending(self, store: SpanStore, n: int) -> None:
        deadline = time.monotonic() + 10
        while len(store._writing()._pending) < n:  # the writer's queue: private, read only
            assert time.monotonic() < deadline, "the requests never queued"
            time.sleep(0.005)

    def test_waiting_requests_are_prepared_and_written_in_one_transaction(
        self, tmp_path: Path
    ) -> None:
        store = SpanStore(tmp_path / "s.sqlite3", max_spans=0)
        writer = store._writing()
        statements: list[str] = []
        writer.conn.set_trace_callback(statements.append)
        prepared_in: list[int] = []
        requests = [make_request(simple_trace(f"svc{i}", children=2)) for i in range(3)]

        def prepare(request: ExportTraceServiceRequest) -> Prepared:
            prepared_in.append(threading.get_ident())
            return prepare_request(request, None, store.tag_keys)

        results: list[WriteResult] = []
        with writer.lock:  # a group being written: the three requests queue meanwhile
            threads = [
                threading.Thread(
                    target=lambda r=r: results.append(writer.write(lambda: prepare(r)))
                )
                for r in requests
            ]
            for t in threads:
                t.start()
            self._wait_for_pending(store, 3)
        for t in threads:
            t.join()
        assert [r.accepted_spans for r in results] == [3, 3, 3]
        assert len(set(prepared_in)) == 1  # all three by the thread that wrote them
        assert statements.count("BEGIN IMMEDIATE") == 1
        assert store.services() == ["svc0", "svc1", "svc2"]
        store.close()

    def test_a_request_that_cannot_be_prepared_fails_alone(self, tmp_path: Path) -> None:
        store = SpanStore(tmp_path / "s.sqlite3", max_spans=0)
        writer = store._writing()
        errors: list[BaseException] = []
        results: list[WriteResult] = []

        def good() -> None:
            request = make_request(simple_trace("good"))
            results.append(writer.write(lambda: prepare_request(request, None, store.tag_keys)))

        def broken() -> Prepared:
            msg = "cannot read this request"
            raise ValueError(msg)

        def bad() -> None:
            try:
                writer.write(broken)
            except ValueError as exc:
                errors.append(exc)

        with writer.lock:
            threads = [threading.Thread(target=f) for f in (bad, good)]
            for t in threads:
                t.start()
            self._wait_for_pending(store, 2)
        for t in threads:
            t.join()
        assert [str(e) for e in errors] == ["cannot read this request"]
        assert [r.accepted_spans for r in results] == [3]  # simple_trace: a root, two children
        assert store.services() == ["good"]
        store.close()
