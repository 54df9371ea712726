"""Opening a store file: nothing is written to a file that is no store, or cannot be written."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import cvtrace
from cvtrace.exceptions import CvtraceConfigError
from cvtrace.store import SCHEMA_VERSION, SpanStore, StoreReadOnlyError, TraceQuery
from tests.viewer.support import make_request, simple_trace


def app_database(user_version: int = 0, journal_mode: str = "delete") -> Callable[[Path], None]:
    """Another application's SQLite file: a ``users`` table with a row."""

    def make(path: Path) -> None:
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA journal_mode = {journal_mode}")
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ada')")
        conn.execute(f"PRAGMA user_version = {user_version}")
        conn.commit()
        conn.close()

    return make


def text_file(path: Path) -> None:
    path.write_text("not sqlite at all\n" * 100)


def newer_store(path: Path) -> None:
    with SpanStore(path) as store:
        store.write_request(make_request(simple_trace()))
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()


def sqlite_header_only(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)


BROKEN_FILES = {
    # name: (how to make it, what the message says)
    "text": (text_file, "not a SQLite database"),
    "another app's database": (app_database(), "another application's SQLite database"),
    "... with user_version 2": (app_database(2), "another application's SQLite database"),
    "... with user_version 7": (app_database(7), "another application's SQLite database"),
    "... in WAL mode": (app_database(0, "wal"), "another application's SQLite database"),
    "a SQLite header on garbage": (sqlite_header_only, "SQLite cannot read it"),
    "a store of a newer cvtrace": (newer_store, "newer than this cvtrace"),
}


def fingerprint(path: Path) -> tuple[str, list[str]]:
    """The file's bytes (a digest) and the names beside it."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), sorted(
        p.name for p in path.parent.iterdir()
    )


@pytest.mark.parametrize("name", list(BROKEN_FILES))
class TestNotAStore:
    """Refused with the setting and the fix named; the file byte for byte as it was."""

    def test_span_store_refuses(self, tmp_path: Path, name: str) -> None:
        make, reason = BROKEN_FILES[name]
        path = tmp_path / "app.db"
        make(path)
        before = fingerprint(path)
        with pytest.raises(CvtraceConfigError) as refused:
            SpanStore(path)
        message = str(refused.value)
        assert reason in message
        assert "CVTRACE_LOCAL_DB" in message
        assert "--db" in message
        assert fingerprint(path) == before  # no -wal or -shm beside it either

    def test_local_exporter_refuses_at_init(self, tmp_path: Path, name: str) -> None:
        make, reason = BROKEN_FILES[name]
        path = tmp_path / "app.db"
        make(path)
        before = fingerprint(path)
        with pytest.raises(CvtraceConfigError, match=f"CVTRACE_LOCAL_DB: .*{reason}"):
            cvtrace.init(exporters="local", local_db=path)
        assert cvtrace.get_handle() is None
        assert fingerprint(path) == before


def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    path.touch()
    with SpanStore(path) as store:
        store.write_request(make_request(simple_trace()))
        assert store.span_count() == 3


def test_a_store_in_use_by_another_writer_is_recognised(tmp_path: Path) -> None:
    """The check reads through the other writer's WAL (its -wal and -shm exist)."""
    path = tmp_path / "shared.sqlite3"
    with SpanStore(path) as first:
        first.write_request(make_request(simple_trace()))
        with SpanStore(path) as second:
            assert second.span_count() == 3


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("/proc/no-such-folder/traces.sqlite3", "nothing can be created in '/proc'"),
        ("{tmp}/a-file/traces.sqlite3", "Not a directory"),
    ],
)
def test_a_store_that_cannot_be_created_stops_init(tmp_path: Path, where: str, says: str) -> None:
    """Before, init() logged "tracing ... to local" and every export failed later."""
    (tmp_path / "a-file").write_text("")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(CvtraceConfigError, match=f"CVTRACE_LOCAL_DB: .*{says}"):
        cvtrace.init(exporters="local", local_db=where.format(tmp=tmp_path))
    assert cvtrace.get_handle() is None
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_store_in_a_folder_yet_to_be_made_is_fine(tmp_path: Path) -> None:
    handle = cvtrace.init(exporters="local", local_db=tmp_path / "new" / "deeper" / "t.sqlite3")
    assert handle.enabled
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # made on the first export


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CvtraceConfigError, match=r"CVTRACE_LOCAL_DB: .*is a directory"):
        SpanStore(tmp_path)


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """Make ``path`` a file this process cannot write, as another user's file is.

    Tests run as root here, and root writes any file whatever its mode bits. The
    immutable attribute (``chattr +i``) stops root too: ``access(2)`` answers "not
    writable" and SQLite opens the file read-only, as it does for a user without
    write permission (checked with ``setpriv`` as ``nobody`` on a 0444 file in a
    writable directory: the same read-only open, and before the fix the same
    ``-wal``/``-shm`` files created beside it). Any other user gets mode 0444.
    """
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"chattr +i is not possible here: {done.stderr.decode().strip()}")
    else:
        path.chmod(0o444)
    try:
        assert not os.access(path, os.W_OK)
        yield
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(0o644)


def stored_store(path: Path) -> bytes:
    """Write a store with one trace of three spans; return the trace id."""
    specs = simple_trace("shop")
    with SpanStore(path) as store:
        store.write_request(make_request(specs))
    return specs[0].trace_id


def older_store(path: Path) -> None:
    stored_store(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    conn.close()


class TestReadOnly:
    def test_an_unwritable_store_opens_read_only_and_writes_nothing(self, tmp_path: Path) -> None:
        path = tmp_path / "theirs.sqlite3"
        trace_id = stored_store(path)
        before = fingerprint(path)
        with unwritable(path), SpanStore(path, read_only=True) as store:
            assert store.read_only
            assert [s.trace_id for s in store.search(TraceQuery(service="shop"))] == [trace_id]
            assert len(store.get_trace(trace_id)) == 3
            assert store.services() == ["shop"]
            with pytest.raises(StoreReadOnlyError, match="read-only"):
                store.write_request(make_request(simple_trace()))
            store.enforce_retention()  # nothing to do, and no error
            assert fingerprint(path) == before  # no -wal or -shm beside it
        assert fingerprint(path) == before

    def test_read_only_reads_through_the_wal_of_a_writer_at_work(self, tmp_path: Path) -> None:
        """While its owner writes the store, its -wal and -shm exist: read through them."""
        path = tmp_path / "theirs.sqlite3"
        with SpanStore(path) as owner:
            first = simple_trace("shop")
            owner.write_request(make_request(first))  # in the WAL, not yet in the file
            names = fingerprint(path)[1]
            with unwritable(path), SpanStore(path, read_only=True) as viewer:
                assert len(viewer.get_trace(first[0].trace_id)) == 3
                later = simple_trace("shop")
                owner.write_request(make_request(later))
                assert len(viewer.get_trace(later[0].trace_id)) == 3
                assert viewer.trace_count() == 2
                assert fingerprint(path)[1] == names

    def test_opening_an_unwritable_file_to_write_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "theirs.sqlite3"
        stored_store(path)
        before = fingerprint(path)
        with unwritable(path):
            with pytest.raises(CvtraceConfigError, match="this user cannot write it"):
                SpanStore(path)
            assert fingerprint(path) == before

    def test_the_local_exporter_refuses_an_unwritable_file_at_init(self, tmp_path: Path) -> None:
        path = tmp_path / "theirs.sqlite3"
        stored_store(path)
        with unwritable(path):
            with pytest.raises(CvtraceConfigError, match=r"CVTRACE_LOCAL_DB: .*cannot write"):
                cvtrace.init(exporters="local", local_db=path)
            assert cvtrace.get_handle() is None

    @pytest.mark.parametrize(
        ("make", "reason"),
        [
            (lambda path: path.touch(), "holds no span store yet"),
            (app_database(), "another application's SQLite database"),
            (older_store, "to migrate it"),
        ],
    )
    def test_read_only_needs_a_store(
        self, tmp_path: Path, make: Callable[[Path], None], reason: str
    ) -> None:
        path = tmp_path / "theirs.sqlite3"
        make(path)
        with unwritable(path), pytest.raises(CvtraceConfigError, match=reason):
            SpanStore(path, read_only=True)
