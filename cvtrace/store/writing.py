"""Writing prepared requests into the span store: one writer, its caches, group commit.

A request is read into per-trace batches first, outside the transaction
(:mod:`cvtrace.store.batches`); :class:`Writer` then stores them:

- **Short write transactions, grouped.** One request is written in one
  ``BEGIN IMMEDIATE`` transaction, each table's rows with multi-row ``INSERT``
  statements of a hundred rows; requests that wait for the lock at the same time
  share one (group commit), since every commit rewrites the tail pages of the
  search tables. A request is read into batches under the lock too, by the thread
  that writes its group: concurrent requests then take turns instead of fighting
  over the GIL (see :meth:`Writer.write`). A request is answered only after its
  transaction commits, so what was acknowledged survives a crash of the process
  (``tests/viewer/test_durability.py``) and is searchable at once.
- **Trace ids indexed in batches.** A write must know whether each incoming
  trace is stored already. Indexing every new trace id as it arrives put each
  one on a random page of the index: the largest share of the pages every
  commit wrote. Instead the writer keeps the ids of the recent traces (above
  ``meta.indexed_key``) in memory, reads those other writers added at the start
  of each transaction, and adds them to ``trace_ids`` ``_INDEX_BATCH`` at a
  time, in order, which rewrites each page of the index about once. (Readers
  find a recent trace by scanning the recent rows: :func:`cvtrace.store.reading.trace_keys`.)
- **The writer's caches mirror the file**: the ids of dictionary rows (services,
  operations, resources, scopes, tags) and the recent traces. They are cleared
  together whenever a write transaction rolls back.
- **Failures of the store are named**: a full disk raises :class:`StoreFullError`
  (logged once, until a write succeeds again), a file that cannot be written
  :class:`StoreReadOnlyError`; the receivers answer each with its own status.

Where a write's cost goes (``bench.ingest`` and ``bench.profile ingest`` have
the numbers): the viewer spends ~15-18 µs of CPU per span of a 512-span demo
request: a third reading the spans out of protobuf and grouping them, a third
SQLite inserting ~1,900 rows (mostly ``trace_tags``) and committing ~120 pages
of 8 KiB (about 65 new ones: the spans and trace rows; the rest the tails of the
search tables and the duration index, and the batched trace-id index), the rest
Python bookkeeping and HTTP.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cvtrace.store import calls
from cvtrace.store.batches import Prepared, StoredSummary, TraceBatch, duration_bucket
from cvtrace.store.connections import SQL_VARS, write_transaction
from cvtrace.store.retention import Retention
from cvtrace.store.schema import ORDINAL_BITS

logger = logging.getLogger(__name__)

_ROWS_PER_INSERT = 100  # rows per multi-row INSERT statement
_INDEX_BATCH = 10_000
"""Recent traces are added to the trace-id index this many at a time."""


class WriteResult(NamedTuple):
    """What :meth:`cvtrace.store.SpanStore.write_request` did with one request."""

    accepted_spans: int
    """Spans stored (or already stored: a resent span is not stored twice)."""
    rejected_spans: int
    """Spans refused as invalid (bad or all-zero ids)."""
    error_message: str
    """Why spans were refused; empty when none were."""
    new_spans: int = 0
    """Accepted spans that were not stored before (the others were already there,
    or came twice in the request)."""


class StoreWriteError(sqlite3.OperationalError):
    """The store cannot take spans now, for a reason of its own (not of the request)."""


class StoreFullError(StoreWriteError):
    """The store's disk is full: nothing more fits until space is freed.

    Writes resume by themselves once it is.
    """


class StoreReadOnlyError(StoreWriteError):
    """The store is open read-only, or its file cannot be written by this user."""


_SQLITE_READONLY = 8
_SQLITE_FULL = 13


def _is_error(exc: sqlite3.Error, code: int, message: str) -> bool:
    """Return whether ``exc`` is SQLite's error ``code`` (its message before Python 3.11)."""
    extended = getattr(exc, "sqlite_errorcode", None)
    if extended is not None:
        return int(extended) & 0xFF == code
    return message in str(exc)


class _Ticket:
    """One request waiting to be prepared and written, maybe by another thread."""

    __slots__ = ("done", "error", "prepare", "prepared")

    def __init__(self, prepare: Callable[[], Prepared]) -> None:
        self.prepare = prepare
        self.prepared: Prepared | None = None
        self.done = False
        self.error: BaseException | None = None


def _insert_rows(conn: sqlite3.Connection, insert: str, width: int, values: list[object]) -> None:
    """Run ``insert`` (``INSERT INTO t (columns)``) for rows of ``width`` values laid
    end to end in ``values``, a hundred rows per statement."""
    step = width * _ROWS_PER_INSERT
    for start in range(0, len(values), step):
        chunk = values[start : start + step]
        conn.execute(_values_sql(insert, width, len(chunk) // width), chunk)


@functools.lru_cache(maxsize=1024)
def _values_sql(insert: str, width: int, rows: int) -> str:
    row = "(" + ",".join("?" * width) + ")"
    return f"{insert} VALUES {','.join([row] * rows)}"


def _id_for(
    conn: sqlite3.Connection,
    cache: dict[Any, int],
    cache_key: object,
    select_sql: str,
    insert_sql: str,
    select_args: tuple[object, ...],
    insert_args: tuple[object, ...],
) -> int:
    """Return the id of a dictionary row, inserting it if missing."""
    found = cache.get(cache_key)
    if found is not None:
        return found
    row = conn.execute(select_sql, select_args).fetchone()
    if row is None:
        cur = conn.execute(insert_sql, insert_args)
        row_id = cur.lastrowid
        assert row_id is not None
    else:
        row_id = int(row[0])
    cache[cache_key] = row_id
    return row_id


class _Ids:
    """The ids of the dictionary rows the writer has seen: read or inserted once each."""

    __slots__ = ("operations", "resources", "scopes", "services", "tags")

    def __init__(self) -> None:
        self.services: dict[str, int] = {}
        self.operations: dict[tuple[int, str], int] = {}
        self.resources: dict[bytes, int] = {}
        self.scopes: dict[bytes, int] = {}
        self.tags: dict[tuple[str, str], int] = {}

    def clear(self) -> None:
        """Forget every id (the rows of a rolled-back transaction are gone)."""
        for cache in (self.services, self.operations, self.resources, self.scopes, self.tags):
            cache.clear()

    def service(self, conn: sqlite3.Connection, name: str) -> int:
        """Return the id of a service name."""
        return _id_for(
            conn,
            self.services,
            name,
            "SELECT id FROM services WHERE name = ?",
            "INSERT INTO services (name) VALUES (?)",
            (name,),
            (name,),
        )

    def operation(self, conn: sqlite3.Connection, service_id: int, name: str) -> int:
        """Return the id of an operation (span name) of a service."""
        return _id_for(
            conn,
            self.operations,
            (service_id, name),
            "SELECT id FROM operations WHERE service_id = ? AND name = ?",
            "INSERT INTO operations (service_id, name) VALUES (?, ?)",
            (service_id, name),
            (service_id, name),
        )

    def tag(self, conn: sqlite3.Connection, tag: tuple[str, str]) -> int:
        """Return the id of an indexed (key, value) pair."""
        return _id_for(
            conn,
            self.tags,
            tag,
            "SELECT id FROM tags WHERE key = ? AND value = ?",
            "INSERT INTO tags (key, value) VALUES (?, ?)",
            tag,
            tag,
        )

    def resource(
        self, conn: sqlite3.Connection, digest: bytes, service_id: int, body: bytes, schema_url: str
    ) -> int:
        """Return the id of a resource, stored once by the digest of its bytes."""
        return _id_for(
            conn,
            self.resources,
            digest,
            "SELECT id FROM resources WHERE digest = ?",
            "INSERT INTO resources (digest, service_id, body, schema_url) VALUES (?, ?, ?, ?)",
            (digest,),
            (digest, service_id, body, schema_url),
        )

    def scope(self, conn: sqlite3.Connection, digest: bytes, body: bytes, schema_url: str) -> int:
        """Return the id of an instrumentation scope, stored once by its digest."""
        return _id_for(
            conn,
            self.scopes,
            digest,
            "SELECT id FROM scopes WHERE digest = ?",
            "INSERT INTO scopes (digest, body, schema_url) VALUES (?, ?, ?)",
            (digest,),
            (digest, body, schema_url),
        )


class _RecentTraces:
    """The traces newer than the trace-id index (``meta.indexed_key``): id -> key."""

    __slots__ = ("indexed_upto", "keys", "upto")

    def __init__(self) -> None:
        self.keys: dict[bytes, int] = {}
        self.upto = -1
        """The newest key read into ``keys``; -1: read them all again."""
        self.indexed_upto = -1
        """``meta.indexed_key`` when ``keys`` was last synced."""

    def clear(self) -> None:
        """Forget them: the next transaction reads them again."""
        self.keys.clear()
        self.upto = self.indexed_upto = -1

    def next_key(self) -> int:
        """Return the key of the next new trace: above every key used or indexed."""
        return max(self.upto, self.indexed_upto) + 1

    def sync(self, conn: sqlite3.Connection) -> None:
        """Bring ``keys`` up to date with the traces other writers added.

        A write looks its traces up here and in the index. Called in every write
        transaction; usually it reads nothing, as this writer added the newest
        traces itself.
        """
        indexed = int(
            conn.execute("SELECT value FROM meta WHERE key = 'indexed_key'").fetchone()[0]
        )
        if indexed != self.indexed_upto:  # indexed since, by us or another writer
            self.keys = {t: k for t, k in self.keys.items() if k > indexed}
            self.upto = max(self.upto, indexed)
            self.indexed_upto = indexed
        for trace_id, key in conn.execute(
            "SELECT trace_id, key FROM traces WHERE key > ?", (self.upto,)
        ):
            self.keys[trace_id] = key
            self.upto = key


class _Resources(NamedTuple):
    """A request's resources as stored: by their index in the request."""

    ids: list[int]
    service_ids: list[int]
    tag_ids: list[list[int]]
    """The ids of each resource's indexed tags."""


class _Rows:
    """The rows one request adds and changes, values laid end to end per table."""

    __slots__ = ("groups", "operations", "services", "spans", "tags", "trace_updates", "traces")

    def __init__(self) -> None:
        self.groups: list[object] = []
        self.traces: list[object] = []
        self.trace_updates: list[tuple[object, ...]] = []
        self.services: list[object] = []
        self.operations: list[object] = []
        self.tags: list[object] = []
        self.spans = 0
        """Spans written."""

    def insert(self, conn: sqlite3.Connection) -> None:
        """Insert and update the rows."""
        # One statement per hundred rows rather than executemany: sqlite3 releases the
        # GIL around every row's step, and in an app's export thread each re-acquisition
        # can wait a whole switch interval (5 ms) for a busy request thread: hundreds of
        # rows per batch then took seconds and the span queue overflowed (BENCHMARKS.md,
        # span loss of the local exporter). Multi-row VALUES is also the cheapest way in.
        _insert_rows(
            conn,
            "INSERT INTO span_groups (id, resource_id, scope_id, span_ids, body)",
            5,
            self.groups,
        )
        _insert_rows(
            conn,
            "INSERT INTO traces (start_ns, end_ns, span_count, error_count, has_root, "
            "root_name, root_service, services, duration_bucket, key, trace_id)",
            11,
            self.traces,
        )
        conn.executemany(
            "UPDATE traces SET start_ns = ?, end_ns = ?, span_count = ?, error_count = ?, "
            "has_root = ?, root_name = ?, root_service = ?, services = ?, duration_bucket = ? "
            "WHERE key = ?",
            self.trace_updates,
        )
        for table, column, rows in (
            ("trace_services", "service_id", self.services),
            ("trace_operations", "operation_id", self.operations),
            ("trace_tags", "tag_id", self.tags),
        ):
            _insert_rows(conn, f"INSERT OR IGNORE INTO {table} ({column}, trace_key)", 2, rows)
        conn.execute("UPDATE meta SET value = value + ? WHERE key = 'span_count'", (self.spans,))


def _stored_spans(conn: sqlite3.Connection, key: int) -> tuple[set[bytes], int]:
    """Return the ids of a stored trace's spans, and the ordinal of its next span group."""
    first = key << ORDINAL_BITS
    stored: set[bytes] = set()
    last = first - 1
    for row_id, span_ids in conn.execute(
        "SELECT id, span_ids FROM span_groups WHERE id >= ? AND id < ?",
        (first, first + (1 << ORDINAL_BITS)),
    ):
        stored.update(span_ids[i : i + 8] for i in range(0, len(span_ids), 8))
        last = row_id
    return stored, last + 1 - first


def _add_span_groups(
    rows: _Rows, key: int, ordinal: int, batch: TraceBatch, resources: _Resources, scopes: list[int]
) -> None:
    """Add a trace's new spans as span groups, rows ``key << 32 | ordinal, ...``."""
    base = (key << ORDINAL_BITS) + ordinal
    if len(batch.blocks) == 1:  # one resource and scope, as usual: one group
        ((ri, si),) = batch.blocks
        spans = batch.spans
        body = b"".join([span[3] for span in spans.values()])
        rows.groups += (base, resources.ids[ri], scopes[si], b"".join(spans), body)
    else:
        groups: dict[tuple[int, int], tuple[list[bytes], list[bytes]]] = {}
        for span in batch.spans.values():
            group = groups.get((span[1], span[2]))
            if group is None:
                group = groups[span[1], span[2]] = ([], [])
            group[0].append(span[0])
            group[1].append(span[3])
        for i, ((ri, si), (ids, bodies)) in enumerate(groups.items()):
            rows.groups += (
                base + i,
                resources.ids[ri],
                scopes[si],
                b"".join(ids),
                b"".join(bodies),
            )
    rows.spans += len(batch.spans)


class Writer:
    """The store's one writing connection, the requests waiting for it, and its caches.

    Thread safe: writes are serialized by :attr:`lock`; requests that wait for it
    together are written in one transaction by whichever thread gets it.

    Args:
        conn: The writing connection (see :class:`cvtrace.store.connections.Connections`).
        path: The store's file, for messages.
        retention: Applied after each successful transaction, under the lock.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, retention: Retention) -> None:
        self.conn = conn
        self.path = path
        self.lock = threading.Lock()
        self._retention = retention
        self._pending_lock = threading.Lock()
        self._pending: list[_Ticket] = []
        self._closed = False
        self._ids = _Ids()
        self._recent = _RecentTraces()
        self._json_names: dict[str, str] = {}
        self._full = False
        """Whether the last write found the disk full (logged once until one succeeds)."""

    def close(self) -> None:
        """Wait for the write in progress, then refuse new ones."""
        with self.lock:
            self._closed = True

    def enforce_retention(self) -> None:
        """Apply both retention limits now, between writes."""
        with self.lock:
            self._retention.apply(self.conn, check_age_now=True)

    def write(self, prepare: Callable[[], Prepared]) -> WriteResult:
        """Prepare and store a request's spans, all or none (see ``SpanStore.write_request``).

        ``prepare`` reads the request into batches (:mod:`cvtrace.store.batches`). It runs
        under the write lock, in whichever thread writes the group the request joins:
        requests that arrive while a group is being written wait without the GIL and
        are then prepared and written together, in one transaction. Preparing outside
        the lock let the threads of concurrent requests take turns on the GIL in
        Python while the writing thread, back from each SQLite call, waited for it (a
        switch interval, 5 ms, each time): two senders cost 16.9 µs of CPU per span
        against one sender's 15.7; now 14.8 against 14.0 (BENCHMARKS.md, ingest).
        """
        ticket = _Ticket(prepare)
        with self._pending_lock:
            self._pending.append(ticket)
        with self.lock:
            if not ticket.done:
                wrote = self._write_pending()
                if wrote and ticket.error is None:
                    try:
                        self._index_recent_traces()
                        self._retention.apply(self.conn)
                    except sqlite3.OperationalError as exc:
                        named = self._named(exc)
                        if named is exc:
                            raise
                        raise named from exc
        if ticket.error is not None:
            raise ticket.error
        prepared = ticket.prepared
        assert prepared is not None
        message = ""
        if prepared.rejected:
            reasons = "; ".join(f"{n} with {why}" for why, n in prepared.reasons.items())
            message = f"rejected {prepared.rejected} invalid span(s): {reasons}"
        return WriteResult(prepared.accepted, prepared.rejected, message, prepared.new_spans)

    def _write_pending(self) -> bool:
        """Prepare every waiting request and write them in one transaction (the lock is
        held); return whether a transaction was written."""
        with self._pending_lock:
            tickets, self._pending = self._pending, []
        group: list[_Ticket] = []
        for t in tickets:
            try:
                t.prepared = t.prepare()
            except BaseException as exc:  # this request's own failure: not the others'
                t.error = exc
            if t.prepared is not None and t.prepared.traces:
                group.append(t)
            else:  # nothing valid to write (or its preparation failed)
                t.done = True
        if not group:
            return False
        error: BaseException | None = None
        try:
            if self._closed:
                msg = f"the span store {self.path} is closed"
                raise RuntimeError(msg)
            self._write_group([t.prepared for t in group if t.prepared is not None])
        except sqlite3.OperationalError as exc:
            error = self._named(exc)
            if error is not exc:
                error.__cause__ = exc
        except BaseException as exc:
            error = exc
        else:
            if self._full:
                logger.info("writes to the span store %s resumed", self.path)
                self._full = False
        for t in group:
            t.error = error
            t.done = True
        return True

    def _named(self, exc: sqlite3.OperationalError) -> sqlite3.OperationalError:
        """Return the store's own error for a full disk or a read-only file, else ``exc``."""
        if isinstance(exc, StoreWriteError):
            return exc
        if _is_error(exc, _SQLITE_FULL, "database or disk is full"):
            if not self._full:
                logger.warning(
                    "the span store %s is full (%s): spans are refused until space is "
                    "freed on its disk",
                    self.path,
                    exc,
                )
                self._full = True
            return StoreFullError(
                f"the span store {self.path} is full ({exc}): free space on its disk; "
                "writes resume by themselves"
            )
        if _is_error(exc, _SQLITE_READONLY, "attempt to write a readonly database"):
            return StoreReadOnlyError(
                f"the span store {self.path} cannot be written ({exc}): it takes no spans"
            )
        return exc

    def _write_group(self, group: Sequence[Prepared]) -> None:
        """Write prepared requests in one transaction."""
        conn = self.conn
        try:
            with write_transaction(conn):
                for prepared in group:
                    self._write_one(conn, prepared)
        except BaseException:
            self._forget()
            raise

    def _forget(self) -> None:
        """Clear the caches: the transaction that filled them rolled back."""
        self._recent.clear()
        self._ids.clear()

    def _write_one(self, conn: sqlite3.Connection, prepared: Prepared) -> None:
        """Write one prepared request in the open transaction."""
        resources = self._store_resources(conn, prepared)
        scope_ids = [self._ids.scope(conn, *scope) for scope in prepared.scopes]
        existing = self._stored_summaries(conn, list(prepared.traces))
        self._store_new_tags(conn, prepared)
        rows = _Rows()
        call_rows = calls.CallWriter(conn)
        recent = self._recent
        # new traces get keys above every key used or indexed, so the new traces
        # are all above the indexed ones
        next_key = recent.next_key()
        for trace_id, batch in prepared.traces.items():
            old = existing.get(trace_id)
            if old is None:
                key = recent.keys[trace_id] = next_key
                next_key += 1
                ordinal = 0
            else:  # a span already stored is not stored again
                key = old[0]
                stored, ordinal = _stored_spans(conn, key)
                if not stored.isdisjoint(batch.spans):
                    batch.leave_out(stored)
                    if not batch.spans:
                        continue
            _add_span_groups(rows, key, ordinal, batch, resources, scope_ids)
            self._add_search_rows(conn, rows, key, batch, resources)
            call_rows.add_trace(
                key, batch.spans, resources.service_ids, self._ids.operations, old is not None
            )
            self._add_summary(rows, trace_id, key, batch, old)
        recent.upto = next_key - 1
        rows.insert(conn)
        calls.write_rows(conn, call_rows)
        prepared.new_spans = rows.spans

    def _store_resources(self, conn: sqlite3.Connection, prepared: Prepared) -> _Resources:
        """Return the ids of a request's resources, their services and their tags."""
        ids = self._ids
        resources = _Resources([], [], [])
        for (digest, service, body, schema_url), tags in zip(
            prepared.resources, prepared.resource_tags, strict=True
        ):
            service_id = ids.service(conn, service)
            resources.service_ids.append(service_id)
            resources.ids.append(ids.resource(conn, digest, service_id, body, schema_url))
            resources.tag_ids.append([ids.tag(conn, t) for t in tags])
        return resources

    def _store_new_tags(self, conn: sqlite3.Connection, prepared: Prepared) -> None:
        """Give the tags first seen in this request their ids."""
        seen = set().union(*(batch.tags for batch in prepared.traces.values()))
        for tag in sorted(seen.difference(self._ids.tags)):  # sorted: ids independent of set order
            self._ids.tag(conn, tag)

    def _stored_summaries(
        self, conn: sqlite3.Connection, trace_ids: list[bytes]
    ) -> dict[bytes, StoredSummary]:
        """Return the stored summaries of the traces among ``trace_ids`` already stored."""
        self._recent.sync(conn)
        recent = self._recent.keys
        keys = [recent[t] for t in trace_ids if t in recent]
        unknown = [t for t in trace_ids if t not in recent]
        for i in range(0, len(unknown), SQL_VARS):
            chunk = unknown[i : i + SQL_VARS]
            marks = ",".join("?" * len(chunk))
            keys.extend(
                key
                for (key,) in conn.execute(
                    f"SELECT key FROM trace_ids WHERE trace_id IN ({marks})", chunk
                )
            )
        found: dict[bytes, StoredSummary] = {}
        for i in range(0, len(keys), SQL_VARS):
            key_chunk = keys[i : i + SQL_VARS]
            marks = ",".join("?" * len(key_chunk))
            for row in conn.execute(
                "SELECT trace_id, key, start_ns, end_ns, span_count, error_count, has_root, "
                f"root_name, root_service, services FROM traces WHERE key IN ({marks})",
                key_chunk,
            ):
                found[row[0]] = tuple(row[1:])
        return found

    def _add_search_rows(
        self,
        conn: sqlite3.Connection,
        rows: _Rows,
        key: int,
        batch: TraceBatch,
        resources: _Resources,
    ) -> None:
        """Add the rows that let a search find the trace: services, operations, tags."""
        for ri in {ri for ri, _name in batch.operations}:
            rows.services += (resources.service_ids[ri], key)
            rows.tags += [x for tag_id in resources.tag_ids[ri] for x in (tag_id, key)]
        operation_ids = self._ids.operations
        for ri, name in batch.operations:
            service_id = resources.service_ids[ri]
            op_id = operation_ids.get((service_id, name))
            if op_id is None:
                op_id = self._ids.operation(conn, service_id, name)
            rows.operations += (op_id, key)
        tag_ids = self._ids.tags
        rows.tags += [x for tag in batch.tags for x in (tag_ids[tag], key)]

    def _add_summary(
        self,
        rows: _Rows,
        trace_id: bytes,
        key: int,
        batch: TraceBatch,
        old: StoredSummary | None,
    ) -> None:
        """Add the trace's summary row, or its update merged with the stored one."""
        batch.summarize(old)
        summary = (
            batch.start_ns,
            batch.end_ns,
            len(batch.spans) + (old[3] if old is not None else 0),
            batch.errors,
            int(batch.has_root),
            batch.root_name,
            batch.root_service,
            self._services_json(batch.services),
            duration_bucket(batch.end_ns - batch.start_ns),
            key,
        )
        if old is None:
            rows.traces += (*summary, trace_id)
        else:
            rows.trace_updates.append(summary)

    def _services_json(self, services: dict[str, int]) -> str:
        """Return spans per service as JSON (``json.dumps`` costs ~1 µs per trace)."""
        names = self._json_names
        parts = []
        for name, count in services.items():
            text = names.get(name)
            if text is None:
                text = names[name] = json.dumps(name)
            parts.append(f"{text}:{count}")
        return "{" + ",".join(parts) + "}"

    def _index_recent_traces(self) -> None:
        """Add the recent traces to the trace-id index once there are enough of them.

        One sorted insert of ``_INDEX_BATCH`` ids rewrites each page of the index
        about once; inserting them as they come wrote a random page per new trace,
        the largest share of every commit (BENCHMARKS.md, ingest).
        """
        recent = self._recent
        if recent.upto - recent.indexed_upto < _INDEX_BATCH or recent.indexed_upto < 0:
            return
        conn = self.conn
        try:
            with write_transaction(conn):
                recent.sync(conn)
                conn.execute(
                    "INSERT OR IGNORE INTO trace_ids (trace_id, key) "
                    "SELECT trace_id, key FROM traces WHERE key > ? ORDER BY trace_id",
                    (recent.indexed_upto,),
                )
                conn.execute("UPDATE meta SET value = ? WHERE key = 'indexed_key'", (recent.upto,))
        except BaseException:
            self._forget()
            raise
        recent.keys.clear()
        recent.indexed_upto = recent.upto
