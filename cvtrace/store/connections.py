"""Opening the span store's file: pragmas, the writer, the reader pool, checkpoints.

The file is in WAL mode with a busy timeout, so an app writing through the
``local`` exporter and a viewer reading and receiving share it: one connection
writes (:mod:`cvtrace.store.writing`), reads use connections lent from a small
pool (threads come and go) and never block the writer. The viewer checkpoints the
WAL from a background thread (``checkpoint_interval_s``), off the request path.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from cvtrace.store.schema import register_functions

logger = logging.getLogger(__name__)

PAGE_SIZE = 8192
SQL_VARS = 500
"""Ids per ``IN (...)`` query."""
_MAX_IDLE_READERS = 8


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """Run the block in one ``BEGIN IMMEDIATE`` transaction, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already.

    After some errors (a full disk, for one) SQLite rolls the transaction back
    itself: a ROLLBACK then fails with "cannot rollback - no transaction is
    active", which must not replace the error that says what happened.
    """
    if not conn.in_transaction:
        return
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        logger.warning("rolling back a failed write failed", exc_info=True)


class Connections:
    """Every connection one store opens: its writer, its readers, its checkpointer.

    Args:
        path: The database file.
        busy_timeout_s: How long a statement waits for another connection's lock.
    """

    def __init__(self, path: Path, *, busy_timeout_s: float) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._idle_readers: list[sqlite3.Connection] = []
        self.closed = False
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None

    def _connect(self, *, write: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path),
            timeout=self._busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        if write:
            # for a new file (an existing one keeps its size): fewer WAL frames per
            # commit, about 5% more spans/s (BENCHMARKS.md, ingest)
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA cache_size = -32768")  # 32 MiB
            # fewer, larger checkpoints: pages rewritten by consecutive requests
            # (the tails of the search tables) are copied back once
            conn.execute("PRAGMA wal_autocheckpoint = 4000")
        else:
            conn.execute("PRAGMA cache_size = -16384")
            conn.execute("PRAGMA mmap_size = 268435456")
        conn.execute("PRAGMA temp_store = MEMORY")
        register_functions(conn)  # for migrations
        with self._lock:
            self._all.append(conn)
        return conn

    def open_writer(self) -> sqlite3.Connection:
        """Open the connection that writes (WAL mode, larger cache)."""
        return self._connect(write=True)

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """Lend a reader connection from a small pool (threads come and go)."""
        if self.closed:
            msg = f"the span store {self.path} is closed"
            raise RuntimeError(msg)
        with self._lock:
            conn = self._idle_readers.pop() if self._idle_readers else None
        if conn is None:
            conn = self._connect(write=False)
        try:
            yield conn
        finally:
            with self._lock:
                keep = not self.closed and len(self._idle_readers) < _MAX_IDLE_READERS
                if keep:
                    self._idle_readers.append(conn)
                elif conn in self._all:
                    self._all.remove(conn)
            if not keep:
                conn.close()

    def start_checkpointer(self, writer: sqlite3.Connection, interval_s: float) -> None:
        """Copy the WAL into the database from a background thread every ``interval_s``.

        Instead of in the writing thread every few thousand pages (the viewer does
        this: it takes several milliseconds of I/O off every few requests).
        """
        # a safety net only: the thread below normally checkpoints first
        writer.execute("PRAGMA wal_autocheckpoint = 50000")
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop,
            args=(interval_s, self._connect(write=False)),
            name="cvtrace-store-checkpoint",
            daemon=True,
        )
        self._checkpointer.start()

    def _checkpoint_loop(self, interval_s: float, conn: sqlite3.Connection) -> None:
        while not self._stop.wait(interval_s):
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:  # closed under us, or busy: try again later
                logger.debug("background checkpoint failed", exc_info=True)

    def stop_checkpointer(self) -> None:
        """Stop the checkpoint thread, if one runs; idempotent."""
        self._stop.set()
        checkpointer = self._checkpointer
        if checkpointer is not None and checkpointer is not threading.current_thread():
            checkpointer.join(timeout=5)

    def close(self) -> None:
        """Close every connection (no write may be running); idempotent."""
        self.stop_checkpointer()
        with self._lock:
            self.closed = True
            conns, self._all = self._all, []
            self._idle_readers = []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover - closing from another thread
                logger.debug("closing a store connection failed", exc_info=True)
