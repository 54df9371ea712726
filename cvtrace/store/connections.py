"""Opening the span store's file: pragmas, the writer, the reader pool, checkpoints.

The file is in WAL mode with a busy timeout, so an app writing through the
``local`` exporter and a viewer reading and receiving share it: one connection
writes (:mod:`cvtrace.store.writing`), reads use connections lent from a small
pool (threads come and go) and never block the writer. The viewer checkpoints the
WAL from a background thread (``checkpoint_interval_s``), off the request path.

Nothing is written to a file before it is known to be a span store or empty
(:func:`check_file`, which only reads): a file of another application given as
``CVTRACE_LOCAL_DB`` or ``--db`` is left byte for byte as it was, with no
``-wal`` or ``-shm`` file beside it. A store this user cannot write
(:func:`is_writable`) is opened read-only, or not at all: SQLite would open it
read-only by itself, create ``-wal`` and ``-shm`` files beside it, and fail each
write.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from cvtrace.exceptions import CvtraceConfigError
from cvtrace.store.schema import check_not_newer, register_functions, store_version

logger = logging.getLogger(__name__)

PAGE_SIZE = 8192
SQL_VARS = 500
"""Ids per ``IN (...)`` query."""
_MAX_IDLE_READERS = 8
_SQLITE_HEADER = b"SQLite format 3\x00"


class StoreRefused(CvtraceConfigError):
    """A file refused as a span store; the message names the setting and the fix.

    Said for ``CVTRACE_LOCAL_DB`` (the setting the library and the viewer share); a
    command whose user named the file otherwise words it for that option instead
    (:meth:`worded_for`).
    """

    def __init__(self, path: Path, reason: str, *, untouched: bool = True) -> None:
        self.path = path
        self.reason = reason
        self.untouched = untouched
        super().__init__(
            self.worded_for(
                "CVTRACE_LOCAL_DB", pointed_by="CVTRACE_LOCAL_DB (or cvtrace view --db)"
            )
        )

    def worded_for(
        self, setting: str, *, pointed_by: str | None = None, new_file_ok: bool = True
    ) -> str:
        """The message for a user who named the file with ``setting``."""
        return (
            f"{setting}: cannot open the span store {str(self.path)!r}: {self.reason}"
            + ("; nothing was written to it" if self.untouched else "")
            + f". Point {pointed_by or setting} at a cvtrace store"
            + (", or at a file that does not exist yet" if new_file_ok else "")
        )


def refusal(path: Path, reason: str, *, untouched: bool = True) -> StoreRefused:
    """Return the error that refuses ``path`` as a store, naming the settings and the fix.

    Args:
        path: The file.
        reason: Why it is refused.
        untouched: Whether the message may say that nothing was written to it.
    """
    return StoreRefused(path, reason, untouched=untouched)


def check_creatable(path: Path) -> None:
    """Raise unless a store could be made at ``path``, writing nothing that stays.

    A file that exists is :func:`check_file`'s to judge. Otherwise its nearest existing
    folder must take a new entry: a folder made and removed there says so, even for
    root, whom permission bits do not stop (``/proc``, a read-only mount).

    Raises:
        StoreRefused: nothing can be created in that folder (or it is a file).
    """
    if path.exists():
        return
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        tempfile.TemporaryDirectory(dir=folder, prefix=".cvtrace-probe-").cleanup()
    except OSError as exc:
        reason = f"nothing can be created in {str(folder)!r} ({exc.strerror or exc})"
        raise refusal(path, reason) from None


def is_writable(path: Path) -> bool:
    """Return whether this user can write ``path`` and create its WAL files beside it."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def read_only_uri(path: Path) -> str:
    """Return a URI that opens ``path`` for reading, creating no file beside it.

    While another connection has the file open in WAL mode (its ``-wal`` and ``-shm``
    exist), SQLite reads through them (``mode=ro``); otherwise the file is read as
    immutable, as even a read-only connection to a WAL-mode file creates them.
    """
    in_use = Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
    quoted = urllib.parse.quote(os.fspath(path.absolute()))
    return f"file:{quoted}?{'mode=ro' if in_use else 'immutable=1'}"


def file_identity(path: Path) -> tuple[int, int] | None:
    """Return the device and inode ``path`` names now; None if nothing is there."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def check_file(path: Path) -> int:
    """Return the schema version of the store at ``path`` (0: none yet), writing nothing.

    A missing or empty file is a new store (unless the ``-wal`` and ``-shm`` of a
    deleted one remain); a SQLite database with no tables an empty one.

    Raises:
        CvtraceConfigError: The file cannot be read, is not a SQLite database, is
            another application's database, or a store of a newer cvtrace.
    """
    try:
        with path.open("rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        leftovers = [f"{path.name}{x}" for x in ("-wal", "-shm") if Path(f"{path}{x}").exists()]
        if leftovers:  # SQLite would read them as the new file's
            raise refusal(
                path,
                f"it was deleted but {' and '.join(leftovers)} remain beside it (SQLite "
                "keeps them while a process has the deleted file open, and after); "
                "remove them once no process (a viewer, an app) has it open",
            ) from None
        return 0
    except IsADirectoryError:
        raise refusal(path, "it is a directory") from None
    except OSError as exc:
        raise refusal(path, f"cannot read it ({exc})") from exc
    if not header:
        return 0
    if header != _SQLITE_HEADER:
        raise refusal(path, "it is not a SQLite database")
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True)
        try:
            user_version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = frozenset(
                name
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite%'"
                )
            )
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise refusal(path, f"SQLite cannot read it ({exc})") from exc
    version = store_version(user_version, tables)
    if version is None:
        names = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise refusal(
            path,
            f"it is another application's SQLite database (tables: {names or 'none'}; "
            f"user_version {user_version}), not a cvtrace span store",
        )
    check_not_newer(version, path)
    return version


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
        read_only: Open readers only, through :func:`read_only_uri`.
    """

    def __init__(self, path: Path, *, busy_timeout_s: float, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._idle_readers: list[sqlite3.Connection] = []
        self.closed = False
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None

    def _connect(self, *, write: bool) -> sqlite3.Connection:
        read_only = self.read_only and not write
        conn = sqlite3.connect(
            read_only_uri(self.path) if read_only else str(self.path),
            timeout=self._busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
            uri=read_only,
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
        if self.read_only:
            msg = f"the span store {self.path} is open read-only"
            raise RuntimeError(msg)
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
