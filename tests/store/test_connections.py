"""Opening a store file: a file that is not a store is refused before anything is written."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

import cvtrace
from cvtrace.exceptions import CvtraceConfigError
from cvtrace.store import SCHEMA_VERSION, SpanStore
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

    def test_local_exporter_refuses_at_init(
        self, clean_env: pytest.MonkeyPatch, tmp_path: Path, name: str
    ) -> None:
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


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CvtraceConfigError, match=r"CVTRACE_LOCAL_DB: .*is a directory"):
        SpanStore(tmp_path)
