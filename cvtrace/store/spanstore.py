"""The span store: one SQLite file shared by the ``local`` exporter and the viewer.

Spans arrive as OTLP ``ExportTraceServiceRequest`` messages from the viewer's OTLP
receivers (:meth:`SpanStore.write_request`), and as SDK spans encoded one by one by
:class:`cvtrace.otlp.encoding.SpanEncoder` from the ``local`` exporter
(:meth:`SpanStore.write_encoded`, which reads the span fields from the SDK's objects
instead of decoding a request again). Both store the same rows for the same spans
(``tests/store/test_local_vs_otlp.py`` compares every table). Reading either into
per-trace batches, before the write transaction, is :mod:`cvtrace.store.batches`; the
SQLite schema and its migrations are :mod:`cvtrace.store.schema`; this module opens
the file, writes the batches, and reads and searches.

Usage::

    store = SpanStore(default_db_path())
    result = store.write_request(request)   # WriteResult(accepted, rejected, message, new)
    store.search(TraceQuery(service="shop", tags={"http.route": "/cart"}))
    store.get_trace(trace_id)               # list[StoredSpan], or [] when unknown
    store.close()

Design (the benchmark issue measures ingest at 1,000,000 stored spans and search
p99 at the same size):

- **Span groups, not a row per span.** The spans of one trace, resource and
  scope that arrive in one request are one ``span_groups`` row: the ids of its
  resource and scope, the 8-byte span ids, and the spans as serialized OTLP
  protobuf, a ``ScopeSpans.spans`` field (so ``ScopeSpans.FromString`` reads
  them back). The bytes are the ones the spans were sent as when the caller
  hands them over (the OTLP/HTTP receiver and the ``local`` exporter do), else
  serialized again. A demo request of 512 spans writes ~110 rows instead of
  512 (a row costs SQLite ~2-3 µs, mostly independent of its size). Attributes,
  events and links are
  encoded once, by protobuf, and round-trip losslessly to OTLP JSON, Jaeger JSON
  and the waterfall. Resources and scopes are stored once each (deduplicated by
  a digest of their bytes).
- **Append-ordered keys.** A trace gets an integer key the first time one of its
  spans is seen. Every search table is keyed by it, and a span group's own key
  is ``trace key << 32 | its ordinal in the trace``, so inserts land at the end
  of the B-trees (a random 16-byte trace id as the key would dirty one random
  page per span), a trace's spans are one range of the table, and it needs no
  index (schema 1 had one on ``(trace_key, span_id)``: a second B-tree written
  per span). Duplicates (a span resent) are dropped by comparing with the span
  ids of the traces the request continues.
- **Trace ids indexed in batches.** A write must know whether each incoming
  trace is stored already. Indexing every new trace id as it arrives put each
  one on a random page of the index: the largest share of the pages every
  commit wrote. Instead the writer keeps the ids of the recent traces (above
  ``meta.indexed_key``) in memory, reads those other writers added at the start
  of each transaction, and adds them to ``trace_ids`` ``_INDEX_BATCH`` at a
  time, in order, which rewrites each page of the index about once. Readers
  find a recent trace by scanning the recent rows, newest first.
- **A per-trace summary** (``traces``: start, end, span count, error count, root
  operation and service, spans per service) is merged on write, so a search never
  groups span rows.
- **Search tables, one row per trace and value**, not per span:
  ``trace_services``, ``trace_operations`` and ``trace_tags``. A search walks
  the smallest of the tables its filters name, newest trace first, checks the
  other filters with primary-key lookups, and stops at the limit. Results are
  in order of arrival (close to start time; the final page is sorted by start).
  Which table is smallest is counted once per value and cached for
  ``_SIZE_CACHE_S``; with a single filter nothing is counted.
- **Duration buckets.** ``traces.duration_bucket`` (two per power of two of
  the duration, indexed with the key) lets a minimum-duration search walk only
  the buckets at or above it, newest first in each, merged: without it, a rare
  or impossible minimum duration scanned every trace.
- **Tag search is indexed for a bounded set of keys**: the low-cardinality keys
  people filter on (``error``, ``span.kind``, ``http.route``,
  ``http.response.status_code``, ``db.system.name``, ``service.version`` ... see
  ``DEFAULT_TAG_KEYS``), plus the keys named in ``CVTRACE_STORE_TAG_KEYS``
  (comma separated), for values up to 256 characters. Indexing every attribute
  would write a row per attribute per span, and per-request values (ids, URLs,
  SQL) would grow the value dictionary without bound; reading attribute values
  out of protobuf is also the costliest step of ingest (about 1 µs each). A tag
  filter on any other key still works: it decodes the spans of candidate
  traces, newest first, and gives up after ``UNINDEXED_TAG_SCAN_SPANS`` spans
  (narrow it with a service or operation).
- **Short write transactions, grouped.** One request is written in one
  ``BEGIN IMMEDIATE`` transaction, each table's rows with multi-row ``INSERT``
  statements of a hundred rows; requests that wait for
  the lock at the same time share one (group commit), since every commit
  rewrites the tail pages of the search tables. The file is in WAL mode with a
  busy timeout, so an app writing through the ``local`` exporter and a viewer
  reading and receiving share it; reads use one connection per thread and never
  block writers. The viewer checkpoints the WAL from a background thread
  (``checkpoint_interval_s``), off the request path.

Where a write's cost goes (``bench.ingest`` and ``bench.profile ingest`` have
the numbers): the viewer spends ~15-18 µs of CPU per span of a 512-span demo
request: a third reading the spans out of protobuf and grouping them, a third
SQLite inserting ~1,900 rows (mostly ``trace_tags``) and committing ~120 pages
of 8 KiB (about 65 new ones: the spans and trace rows; the rest the tails of the
search tables and the duration index, and the batched trace-id index), the rest
Python bookkeeping and HTTP. Searches at
1,000,000 spans take 0.1-0.6 ms in the store (``bench.search``).

Semantics of a search: a trace matches when it has a span of the service, a span
of the operation in that service, and, for each tag, a span or resource carrying
it (not necessarily the same span); ``min/max duration`` and ``errors_only``
apply to the whole trace; a time range applies to the trace's start.

Retention, applied by whoever writes (``local`` exporter or viewer):

- ``CVTRACE_VIEWER_MAX_SPANS`` (default 1,000,000): above it, the oldest traces
  (by arrival) are deleted, whole, until the store holds 90% of the limit.
- ``CVTRACE_VIEWER_MAX_AGE_HOURS`` (default 0, no age limit): traces that started
  longer ago are deleted, oldest arrival first, checked at most once a minute;
  the sweep stops at the first newer trace, so a trace with a skewed clock that
  arrived among newer ones waits for the next sweep past it.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import (
    ResourceSpans,
    ScopeSpans,
    Span,
    TracesData,
)

from cvtrace.config import parse_float, parse_non_negative_int
from cvtrace.exceptions import CvtraceConfigError
from cvtrace.otlp.encoding import EncodedResource
from cvtrace.store.batches import (
    SPAN_KIND_NAMES,
    STATUS_ERROR,
    STATUS_NAMES,
    Prepared,
    StoredSummary,
    any_value_text,
    duration_bucket,
    group_spans,
    prepare_encoded,
    prepare_request,
)
from cvtrace.store.schema import SCHEMA_VERSION, migrate, register_functions

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TAG_KEYS",
    "SCHEMA_VERSION",
    "SpanStore",
    "StoredSpan",
    "TraceQuery",
    "TraceSummary",
    "WriteResult",
    "default_db_path",
    "spans_to_traces_data",
]


DEFAULT_MAX_SPANS = 1_000_000
UNINDEXED_TAG_SCAN_SPANS = 200_000
"""How many spans a search on a tag outside the indexed keys decodes at most."""


DEFAULT_TAG_KEYS: frozenset[str] = frozenset(
    {
        # derived from the span itself, as Jaeger shows them
        "error",
        "otel.status_code",
        "span.kind",
        # HTTP (stable, and the old names other SDKs still send)
        "http.request.method",
        "http.response.status_code",
        "http.route",
        "http.method",
        "http.status_code",
        # databases, RPC, messaging, errors
        "db.system",
        "db.system.name",
        "rpc.system",
        "rpc.service",
        "rpc.method",
        "messaging.system",
        "error.type",
        # resource attributes (checked once per resource, not per span)
        "service.version",
        "service.namespace",
        "service.instance.id",
        "deployment.environment.name",
        "deployment.environment",
        "host.name",
        "telemetry.sdk.language",
    }
)
"""Attribute keys indexed for tag search by default: low-cardinality keys people
filter on. Per-request values such as ``url.path`` or ``db.query.text`` are left
out (they would grow the tag dictionary without bound); add keys with
``CVTRACE_STORE_TAG_KEYS``, or search them unindexed."""

_AGE_CHECK_INTERVAL_S = 60.0
_RETAIN_FRACTION = 0.9
_SQL_VARS = 500  # ids per "IN (...)" query
_ROWS_PER_INSERT = 100  # rows per multi-row INSERT statement
_PAGE_SIZE = 8192
_INDEX_BATCH = 10_000
"""Recent traces are added to the trace-id index this many at a time."""
_MAX_IDLE_READERS = 8
_ORDINAL_BITS = 32
"""A span row's id is its trace's key shifted by this, plus its ordinal in the trace."""
_TRACE_SPAN_IDS = 1 << _ORDINAL_BITS
_MAX_BUCKET = 2 * 62 + 1  # the bucket of the longest duration an int64 holds
_SIZE_CACHE_S = 30.0
"""How long a search reuses the row count of a search table's value."""


def default_db_path() -> Path:
    """Return the store file the ``local`` exporter and ``cvtrace view`` share.

    ``$CVTRACE_LOCAL_DB`` if set, else ``$XDG_DATA_HOME/cvtrace/traces.sqlite3``
    (``XDG_DATA_HOME`` defaults to ``~/.local/share``).
    """
    explicit = os.environ.get("CVTRACE_LOCAL_DB", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME", "").strip()
    base = Path(data_home).expanduser() if data_home else Path.home() / ".local" / "share"
    return base / "cvtrace" / "traces.sqlite3"


class WriteResult(NamedTuple):
    """What :meth:`SpanStore.write_request` did with one request."""

    accepted_spans: int
    """Spans stored (or already stored: a resent span is not stored twice)."""
    rejected_spans: int
    """Spans refused as invalid (bad or all-zero ids)."""
    error_message: str
    """Why spans were refused; empty when none were."""
    new_spans: int = 0
    """Accepted spans that were not stored before (the others were already there,
    or came twice in the request)."""


@dataclass(frozen=True)
class StoredSpan:
    """One span as stored, with the resource and scope it was sent with."""

    span: Span
    resource: Resource
    resource_schema_url: str
    scope: InstrumentationScope
    scope_schema_url: str
    service: str


@dataclass(frozen=True)
class TraceSummary:
    """One search result: a trace's summary, maintained on write."""

    trace_id: bytes
    start_ns: int
    end_ns: int
    span_count: int
    error_count: int
    root_name: str
    root_service: str
    has_root: bool
    services: dict[str, int]
    """Span count per service name."""

    @property
    def duration_ns(self) -> int:
        """Return the trace's duration, from its first start to its last end."""
        return max(0, self.end_ns - self.start_ns)


@dataclass
class TraceQuery:
    """What to search for; every filter is optional."""

    service: str | None = None
    operation: str | None = None
    """Operation (span name); only with ``service``, as in Jaeger."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tag key to value (compared as strings: ``true``, ``200``)."""
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    start_min_ns: int | None = None
    start_max_ns: int | None = None
    errors_only: bool = False
    limit: int = 20


class _Ticket:
    """One request waiting to be written, maybe by another thread's transaction."""

    __slots__ = ("done", "error", "prepared")

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
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


def _tag_keys_from_env() -> frozenset[str]:
    extra = os.environ.get("CVTRACE_STORE_TAG_KEYS", "")
    keys = {k.strip() for k in extra.split(",") if k.strip()}
    return DEFAULT_TAG_KEYS | keys


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return parse_non_negative_int(name, raw) if raw else default


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return parse_float(name, raw) if raw else default


class SpanStore:
    """A SQLite file of spans, written by exporters and receivers, read by the viewer.

    Thread safe: writes are serialized by a lock on one connection; reads use one
    connection per thread. After ``fork()``, open a new store in the child.

    Args:
        path: The database file; created, with its parent directories, if missing.
        max_spans: Retention by span count; ``None`` reads ``CVTRACE_VIEWER_MAX_SPANS``
            (default 1,000,000); 0 means no limit.
        max_age_s: Retention by age; ``None`` reads ``CVTRACE_VIEWER_MAX_AGE_HOURS``
            (default 0, no limit).
        tag_keys: Attribute keys indexed for tag search; ``None`` means
            ``DEFAULT_TAG_KEYS`` plus ``CVTRACE_STORE_TAG_KEYS``.
        busy_timeout_s: How long a write waits for another writer.
        checkpoint_interval_s: If set, copy the write-ahead log into the database
            from a background thread this often, instead of in the writing
            thread every few thousand pages (the viewer does this: it takes
            several milliseconds of I/O off every few requests).

    Raises:
        CvtraceConfigError: A retention setting is malformed, or the file was
            written by a newer cvtrace.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_spans: int | None = None,
        max_age_s: float | None = None,
        tag_keys: Iterable[str] | None = None,
        busy_timeout_s: float = 10.0,
        checkpoint_interval_s: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.max_spans = (
            max_spans
            if max_spans is not None
            else _int_env("CVTRACE_VIEWER_MAX_SPANS", DEFAULT_MAX_SPANS)
        )
        self.max_age_s = (
            max_age_s
            if max_age_s is not None
            else _float_env("CVTRACE_VIEWER_MAX_AGE_HOURS", 0.0) * 3600.0
        )
        self.tag_keys = frozenset(tag_keys) if tag_keys is not None else _tag_keys_from_env()
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: list[_Ticket] = []
        self._idle_readers: list[sqlite3.Connection] = []
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        self._next_age_check = 0.0
        # id caches; cleared whenever a write transaction rolls back
        self._service_ids: dict[str, int] = {}
        self._operation_ids: dict[tuple[int, str], int] = {}
        self._resource_ids: dict[bytes, int] = {}
        self._scope_ids: dict[bytes, int] = {}
        self._tag_ids: dict[tuple[str, str], int] = {}
        self._json_names: dict[str, str] = {}
        # trace id -> key of the traces not yet in the trace-id index; see _sync_recent
        self._recent: dict[bytes, int] = {}
        self._recent_upto = -1  # the newest key read into _recent; -1: read them all again
        self._indexed_upto = -1  # meta.indexed_key when _recent was last synced
        # decoded resources and scopes, for reads
        self._resource_cache: dict[int, tuple[Resource, str, str]] = {}
        self._scope_cache: dict[int, tuple[InstrumentationScope, str]] = {}
        # search: (expiry, row count) of search table values, see _driver_size
        self._sizes: dict[tuple[object, ...], tuple[float, int]] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = self._connect(write=True)
            migrate(self._writer, self.path)
        except (sqlite3.DatabaseError, OSError) as exc:
            self.close()
            msg = (
                f"CVTRACE_LOCAL_DB: cannot open the span store {str(self.path)!r}: {exc}; "
                "point CVTRACE_LOCAL_DB (or cvtrace view --db) at a writable file that "
                "is a cvtrace store or does not exist yet"
            )
            raise CvtraceConfigError(msg) from exc
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if checkpoint_interval_s:
            # a safety net only: the thread below normally checkpoints first
            self._writer.execute("PRAGMA wal_autocheckpoint = 50000")
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop,
                args=(checkpoint_interval_s, self._connect(write=False)),
                name="cvtrace-store-checkpoint",
                daemon=True,
            )
            self._checkpointer.start()

    # -- connections -------------------------------------------------------

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
            conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
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
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """Lend a reader connection from a small pool (threads come and go)."""
        if self._closed:
            msg = f"the span store {self.path} is closed"
            raise RuntimeError(msg)
        with self._connections_lock:
            conn = self._idle_readers.pop() if self._idle_readers else None
        if conn is None:
            conn = self._connect(write=False)
        try:
            yield conn
        finally:
            with self._connections_lock:
                keep = not self._closed and len(self._idle_readers) < _MAX_IDLE_READERS
                if keep:
                    self._idle_readers.append(conn)
                elif conn in self._connections:
                    self._connections.remove(conn)
            if not keep:
                conn.close()

    def _checkpoint_loop(self, interval_s: float, conn: sqlite3.Connection) -> None:
        while not self._stop.wait(interval_s):
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:  # closed under us, or busy: try again later
                logger.debug("background checkpoint failed", exc_info=True)

    def close(self) -> None:
        """Close every connection this store opened; idempotent."""
        stop: threading.Event | None = getattr(self, "_stop", None)
        checkpointer: threading.Thread | None = getattr(self, "_checkpointer", None)
        if stop is not None:
            stop.set()
        if checkpointer is not None and checkpointer is not threading.current_thread():
            checkpointer.join(timeout=5)
        with self._lock:
            self._closed = True
            with self._connections_lock:
                conns, self._connections = self._connections, []
                self._idle_readers = []
            for conn in conns:
                try:
                    conn.close()
                except sqlite3.Error:  # pragma: no cover - closing from another thread
                    logger.debug("closing a store connection failed", exc_info=True)

    def __enter__(self) -> SpanStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------

    def write_request(
        self, request: ExportTraceServiceRequest, encoded: bytes | None = None
    ) -> WriteResult:
        """Store the valid spans of one OTLP request, all or none.

        Requests that wait for the write lock together are written in one
        transaction (group commit): each commit rewrites the tail pages of the
        search tables, so fewer commits cost less per span. Each request's
        spans are stored whole or, if the transaction fails, not at all.

        Spans with a trace id that is not 16 bytes, a span id that is not 8
        bytes, an all-zero id, or a parent span id that is neither empty nor 8
        bytes are refused and counted; the others are stored. A span already
        stored (same trace and span id) is not stored again.

        Args:
            request: An OTLP ``ExportTraceServiceRequest``.
            encoded: The protobuf bytes ``request`` was decoded from, if at hand:
                each span is then stored as its slice of them, as sent, instead
                of being serialized again.

        Returns:
            How many spans were accepted and rejected, and why.
        """
        return self._write(prepare_request(request, encoded, self.tag_keys))

    def write_encoded(self, resources: Sequence[EncodedResource]) -> WriteResult:
        """Store SDK spans encoded by :class:`cvtrace.otlp.encoding.SpanEncoder`.

        The ``local`` exporter's path: the same rows as :meth:`write_request` of
        the request :func:`cvtrace.otlp.encoding.request_bytes` makes of them
        (``tests/store/test_local_vs_otlp.py`` compares every table), without decoding
        that request again: the span fields come from the SDK's objects.
        """
        return self._write(prepare_encoded(resources, self.tag_keys))

    def _write(self, prepared: Prepared) -> WriteResult:
        message = ""
        if prepared.rejected:
            reasons = "; ".join(f"{n} with {why}" for why, n in prepared.reasons.items())
            message = f"rejected {prepared.rejected} invalid span(s): {reasons}"
        if prepared.traces:
            ticket = _Ticket(prepared)
            with self._pending_lock:
                self._pending.append(ticket)
            with self._lock:
                if not ticket.done:
                    with self._pending_lock:
                        group, self._pending = self._pending, []
                    try:
                        if self._closed:
                            msg = f"the span store {self.path} is closed"
                            raise RuntimeError(msg)
                        self._write_prepared([t.prepared for t in group])
                    except BaseException as exc:
                        for t in group:
                            t.error = exc
                    for t in group:
                        t.done = True
                    if ticket.error is None:
                        self._index_recent_traces()
                        self._apply_retention()
            if ticket.error is not None:
                raise ticket.error
        return WriteResult(prepared.accepted, prepared.rejected, message, prepared.new_spans)

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

    def _write_prepared(self, group: Sequence[Prepared]) -> None:
        """Write prepared requests in one transaction."""
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            for prepared in group:
                self._write_in_transaction(conn, prepared)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._clear_id_caches()
            raise

    def _clear_id_caches(self) -> None:
        self._recent.clear()
        self._recent_upto = self._indexed_upto = -1
        self._service_ids.clear()
        self._operation_ids.clear()
        self._resource_ids.clear()
        self._scope_ids.clear()
        self._tag_ids.clear()

    def _id_for(
        self,
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

    def _service_id(self, conn: sqlite3.Connection, name: str) -> int:
        return self._id_for(
            conn,
            self._service_ids,
            name,
            "SELECT id FROM services WHERE name = ?",
            "INSERT INTO services (name) VALUES (?)",
            (name,),
            (name,),
        )

    def _tag_id(self, conn: sqlite3.Connection, tag: tuple[str, str]) -> int:
        return self._id_for(
            conn,
            self._tag_ids,
            tag,
            "SELECT id FROM tags WHERE key = ? AND value = ?",
            "INSERT INTO tags (key, value) VALUES (?, ?)",
            tag,
            tag,
        )

    def _sync_recent(self, conn: sqlite3.Connection) -> None:
        """Bring ``_recent`` up to date with the traces other writers added.

        ``_recent`` maps the ids of the traces newer than the trace-id index
        (``meta.indexed_key``) to their keys: a write looks its traces up there
        and in the index. Called in every write transaction; usually it reads
        nothing, as this store added the newest traces itself.
        """
        indexed = int(
            conn.execute("SELECT value FROM meta WHERE key = 'indexed_key'").fetchone()[0]
        )
        if indexed != self._indexed_upto:  # indexed since, by us or another writer
            self._recent = {t: k for t, k in self._recent.items() if k > indexed}
            self._recent_upto = max(self._recent_upto, indexed)
            self._indexed_upto = indexed
        for trace_id, key in conn.execute(
            "SELECT trace_id, key FROM traces WHERE key > ?", (self._recent_upto,)
        ):
            self._recent[trace_id] = key
            self._recent_upto = key

    def _stored_summaries(
        self, conn: sqlite3.Connection, trace_ids: list[bytes]
    ) -> dict[bytes, StoredSummary]:
        """Return the stored summaries of the traces among ``trace_ids`` already stored."""
        self._sync_recent(conn)
        recent = self._recent
        keys = [recent[t] for t in trace_ids if t in recent]
        unknown = [t for t in trace_ids if t not in recent]
        for i in range(0, len(unknown), _SQL_VARS):
            chunk = unknown[i : i + _SQL_VARS]
            marks = ",".join("?" * len(chunk))
            keys.extend(
                key
                for (key,) in conn.execute(
                    f"SELECT key FROM trace_ids WHERE trace_id IN ({marks})", chunk
                )
            )
        found: dict[bytes, StoredSummary] = {}
        for i in range(0, len(keys), _SQL_VARS):
            key_chunk = keys[i : i + _SQL_VARS]
            marks = ",".join("?" * len(key_chunk))
            for row in conn.execute(
                "SELECT trace_id, key, start_ns, end_ns, span_count, error_count, has_root, "
                f"root_name, root_service, services FROM traces WHERE key IN ({marks})",
                key_chunk,
            ):
                found[row[0]] = tuple(row[1:])
        return found

    def _index_recent_traces(self) -> None:
        """Add the recent traces to the trace-id index once there are enough of them.

        One sorted insert of ``_INDEX_BATCH`` ids rewrites each page of the index
        about once; inserting them as they come wrote a random page per new trace,
        the largest share of every commit (BENCHMARKS.md, ingest).
        """
        if self._recent_upto - self._indexed_upto < _INDEX_BATCH or self._indexed_upto < 0:
            return
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._sync_recent(conn)
            conn.execute(
                "INSERT OR IGNORE INTO trace_ids (trace_id, key) "
                "SELECT trace_id, key FROM traces WHERE key > ? ORDER BY trace_id",
                (self._indexed_upto,),
            )
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'indexed_key'", (self._recent_upto,)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._clear_id_caches()
            raise
        self._recent.clear()
        self._indexed_upto = self._recent_upto

    def _write_in_transaction(self, conn: sqlite3.Connection, prepared: Prepared) -> None:
        # dictionaries: services, resources, scopes
        resource_ids: list[int] = []
        resource_service_ids: list[int] = []
        resource_tag_ids: list[list[int]] = []
        for (digest, service, body, schema_url), rtags in zip(
            prepared.resources, prepared.resource_tags, strict=True
        ):
            service_id = self._service_id(conn, service)
            resource_service_ids.append(service_id)
            resource_ids.append(
                self._id_for(
                    conn,
                    self._resource_ids,
                    digest,
                    "SELECT id FROM resources WHERE digest = ?",
                    "INSERT INTO resources (digest, service_id, body, schema_url) "
                    "VALUES (?, ?, ?, ?)",
                    (digest,),
                    (digest, service_id, body, schema_url),
                )
            )
            resource_tag_ids.append([self._tag_id(conn, t) for t in rtags])
        scope_ids = [
            self._id_for(
                conn,
                self._scope_ids,
                digest,
                "SELECT id FROM scopes WHERE digest = ?",
                "INSERT INTO scopes (digest, body, schema_url) VALUES (?, ?, ?)",
                (digest,),
                (digest, body, schema_url),
            )
            for digest, body, schema_url in prepared.scopes
        ]
        # traces: find the existing ones, create the new ones (keys above every
        # key used or indexed, so the new traces are all above the indexed ones)
        existing = self._stored_summaries(conn, list(prepared.traces))
        next_key = max(self._recent_upto, self._indexed_upto) + 1
        recent = self._recent

        # tags first seen in this request
        tag_ids = self._tag_ids
        seen = set().union(*(batch.tags for batch in prepared.traces.values()))
        for tag in sorted(seen.difference(tag_ids)):  # sorted: ids independent of set order
            self._tag_id(conn, tag)

        # a trace's span groups are rows trace key << 32 | 0, 1, 2 ... in order of
        # arrival; a span already stored is not stored again
        # rows to insert, their values laid end to end
        group_rows: list[object] = []
        trace_rows: list[object] = []
        service_rows: list[object] = []
        operation_rows: list[object] = []
        tag_rows: list[object] = []
        updates: list[tuple[object, ...]] = []
        op_ids = self._operation_ids
        written = 0
        for trace_id, batch in prepared.traces.items():
            old = existing.get(trace_id)
            if old is None:
                key = recent[trace_id] = next_key
                next_key += 1
                ordinal = 0
            else:
                key = old[0]
                first = key << _ORDINAL_BITS
                stored: set[bytes] = set()
                last = first - 1
                for row_id, span_ids in conn.execute(
                    "SELECT id, span_ids FROM span_groups WHERE id >= ? AND id < ?",
                    (first, first + _TRACE_SPAN_IDS),
                ):
                    stored.update(span_ids[i : i + 8] for i in range(0, len(span_ids), 8))
                    last = row_id
                ordinal = last + 1 - first
                if not stored.isdisjoint(batch.spans):
                    batch.leave_out(stored)
                    if not batch.spans:
                        continue
            base = (key << _ORDINAL_BITS) + ordinal
            if len(batch.blocks) == 1:  # one resource and scope, as usual: one group
                ((ri, si),) = batch.blocks
                spans = batch.spans
                body = b"".join([span[3] for span in spans.values()])
                group_rows += (base, resource_ids[ri], scope_ids[si], b"".join(spans), body)
            else:
                groups: dict[tuple[int, int], tuple[list[bytes], list[bytes]]] = {}
                for span in batch.spans.values():
                    group = groups.get((span[1], span[2]))
                    if group is None:
                        group = groups[span[1], span[2]] = ([], [])
                    group[0].append(span[0])
                    group[1].append(span[3])
                for i, ((ri, si), (ids, bodies)) in enumerate(groups.items()):
                    group_rows += (
                        base + i,
                        resource_ids[ri],
                        scope_ids[si],
                        b"".join(ids),
                        b"".join(bodies),
                    )
            written += len(batch.spans)
            for ri in {ri for ri, _name in batch.operations}:
                service_rows += (resource_service_ids[ri], key)
                tag_rows += [x for tag_id in resource_tag_ids[ri] for x in (tag_id, key)]
            for ri, name in batch.operations:
                service_id = resource_service_ids[ri]
                op_id = op_ids.get((service_id, name))
                if op_id is None:
                    op_id = self._id_for(
                        conn,
                        op_ids,
                        (service_id, name),
                        "SELECT id FROM operations WHERE service_id = ? AND name = ?",
                        "INSERT INTO operations (service_id, name) VALUES (?, ?)",
                        (service_id, name),
                        (service_id, name),
                    )
                operation_rows += (op_id, key)
            tag_rows += [x for tag in batch.tags for x in (tag_ids[tag], key)]
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
                trace_rows += (*summary, trace_id)
            else:
                updates.append(summary)
        self._recent_upto = next_key - 1
        # One statement per hundred rows rather than executemany: sqlite3 releases the
        # GIL around every row's step, and in an app's export thread each re-acquisition
        # can wait a whole switch interval (5 ms) for a busy request thread: hundreds of
        # rows per batch then took seconds and the span queue overflowed (BENCHMARKS.md,
        # span loss of the local exporter). Multi-row VALUES is also the cheapest way in.
        _insert_rows(
            conn,
            "INSERT INTO span_groups (id, resource_id, scope_id, span_ids, body)",
            5,
            group_rows,
        )
        _insert_rows(
            conn,
            "INSERT INTO traces (start_ns, end_ns, span_count, error_count, has_root, "
            "root_name, root_service, services, duration_bucket, key, trace_id)",
            11,
            trace_rows,
        )
        conn.executemany(
            "UPDATE traces SET start_ns = ?, end_ns = ?, span_count = ?, error_count = ?, "
            "has_root = ?, root_name = ?, root_service = ?, services = ?, duration_bucket = ? "
            "WHERE key = ?",
            updates,
        )
        for table, column, rows in (
            ("trace_services", "service_id", service_rows),
            ("trace_operations", "operation_id", operation_rows),
            ("trace_tags", "tag_id", tag_rows),
        ):
            _insert_rows(conn, f"INSERT OR IGNORE INTO {table} ({column}, trace_key)", 2, rows)
        conn.execute("UPDATE meta SET value = value + ? WHERE key = 'span_count'", (written,))
        prepared.new_spans = written

    # -- retention ---------------------------------------------------------

    def span_count(self) -> int:
        """Return how many spans the store holds."""
        with self._reading() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'span_count'").fetchone()
        return int(row[0])

    def trace_count(self) -> int:
        """Return how many traces the store holds."""
        with self._reading() as conn:
            return int(conn.execute("SELECT count(*) FROM traces").fetchone()[0])

    def _apply_retention(self) -> None:
        conn = self._writer
        if self.max_spans:
            row = conn.execute("SELECT value FROM meta WHERE key = 'span_count'").fetchone()
            total = int(row[0])
            if total > self.max_spans:
                excess = total - int(self.max_spans * _RETAIN_FRACTION)
                self._delete_oldest(conn, max_spans=excess)
        if self.max_age_s and time.monotonic() >= self._next_age_check:
            self._next_age_check = time.monotonic() + _AGE_CHECK_INTERVAL_S
            self._delete_oldest(conn, started_before_ns=time.time_ns() - int(self.max_age_s * 1e9))

    def enforce_retention(self) -> None:
        """Apply both retention limits now (every write also does this)."""
        with self._lock:
            self._next_age_check = 0.0
            self._apply_retention()

    def _delete_oldest(
        self,
        conn: sqlite3.Connection,
        *,
        max_spans: int | None = None,
        started_before_ns: int | None = None,
    ) -> None:
        """Delete the oldest traces by arrival, whole.

        Deletes until at least ``max_spans`` spans are gone, or while traces
        started before ``started_before_ns``.
        """
        cutoff: int | None = None
        counted = 0
        after = -1
        done = False
        while not done:
            rows = conn.execute(
                "SELECT key, start_ns, span_count FROM traces WHERE key > ? ORDER BY key "
                "LIMIT 1000",
                (after,),
            ).fetchall()
            if not rows:
                break
            for key, start, n in rows:
                if max_spans is not None and counted >= max_spans:
                    done = True
                    break
                if started_before_ns is not None and start >= started_before_ns:
                    done = True
                    break
                cutoff = key
                counted += n
            after = rows[-1][0]
        if cutoff is None:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            removed = int(
                conn.execute(
                    "SELECT coalesce(sum(span_count), 0) FROM traces WHERE key <= ?", (cutoff,)
                ).fetchone()[0]
            )
            conn.execute(
                "DELETE FROM trace_ids WHERE trace_id IN "
                "(SELECT trace_id FROM traces WHERE key <= ?)",
                (cutoff,),
            )
            conn.execute("DELETE FROM span_groups WHERE id < ?", ((cutoff + 1) << _ORDINAL_BITS,))
            conn.execute("DELETE FROM traces WHERE key <= ?", (cutoff,))
            for table, column, id_table in (
                ("trace_services", "service_id", "services"),
                ("trace_operations", "operation_id", "operations"),
                ("trace_tags", "tag_id", "tags"),
            ):
                conn.execute(
                    f"DELETE FROM {table} WHERE {column} IN (SELECT id FROM {id_table}) "
                    "AND trace_key <= ?",
                    (cutoff,),
                )
            conn.execute(
                "UPDATE meta SET value = max(0, value - ?) WHERE key = 'span_count'", (removed,)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        logger.info("span store retention removed %d spans (traces up to #%d)", removed, cutoff)

    # -- reading -----------------------------------------------------------

    def services(self) -> list[str]:
        """Return the names of the services with stored spans, sorted."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT name FROM services s WHERE EXISTS "
                "(SELECT 1 FROM trace_services t WHERE t.service_id = s.id) ORDER BY name"
            ).fetchall()
        return [r[0] for r in rows]

    def operations(self, service: str) -> list[str]:
        """Return the operation (span) names of one service, sorted."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT o.name FROM operations o JOIN services s ON s.id = o.service_id "
                "WHERE s.name = ? AND EXISTS "
                "(SELECT 1 FROM trace_operations t WHERE t.operation_id = o.id) ORDER BY o.name",
                (service,),
            ).fetchall()
        return [r[0] for r in rows]

    def get_summary(self, trace_id: bytes) -> TraceSummary | None:
        """Return one trace's summary, or None if it is not stored."""
        with self._reading() as conn:
            key = _trace_keys(conn, [trace_id]).get(trace_id)
            if key is None:
                return None
            row = conn.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM traces t WHERE key = ?", (key,)
            ).fetchone()
        return _summary(row) if row is not None else None

    def get_trace(self, trace_id: bytes) -> list[StoredSpan]:
        """Return the spans of one trace in start order; [] if unknown."""
        return self.get_traces([trace_id]).get(trace_id, [])

    def get_traces(self, trace_ids: Sequence[bytes]) -> dict[bytes, list[StoredSpan]]:
        """Return the spans of the stored traces among ``trace_ids``, in start order.

        One lookup for them all: the recent traces are found by a scan (see
        :func:`_trace_keys`), once for every trace asked for.
        """
        found: dict[bytes, list[StoredSpan]] = {}
        with self._reading() as conn:
            for trace_id, key in _trace_keys(conn, trace_ids).items():
                found[trace_id] = self._spans_of(conn, key)
        for spans in found.values():
            spans.sort(key=lambda s: (s.span.start_time_unix_nano, s.span.span_id))
        return found

    def trace_pieces(self, trace_id: bytes, *, groups_per_read: int = 4) -> TracePieces | None:
        """Return one trace to read in pieces (None if it is not stored).

        For answers too big to build at once (a 200,000-span trace is over 100 MB
        of JSON): each iteration reads the trace's span groups a few at a time,
        in the order they were stored, and lends a reader connection only while
        it reads them. Every iteration reads the same groups: those stored when
        this was called (later ones are left out; ones deleted since are skipped).
        """
        with self._reading() as conn:
            key = _trace_keys(conn, [trace_id]).get(trace_id)
            if key is None:
                return None
            row = conn.execute(
                "SELECT max(id) FROM span_groups WHERE id >= ? AND id < ?",
                (key << _ORDINAL_BITS, (key + 1) << _ORDINAL_BITS),
            ).fetchone()
        if row is None or row[0] is None:
            return None
        return TracePieces(self, key << _ORDINAL_BITS, int(row[0]), groups_per_read)

    def _read_groups(
        self, first_id: int, last_id: int, count: int
    ) -> tuple[list[StoredSpan], int | None]:
        """Return the spans of up to ``count`` groups from ``first_id`` to ``last_id``,
        and the id of the last group read (None: none left)."""
        spans: list[StoredSpan] = []
        last: int | None = None
        with self._reading() as conn:
            for group_id, body, resource_id, scope_id in conn.execute(
                "SELECT id, body, resource_id, scope_id FROM span_groups "
                "WHERE id >= ? AND id <= ? ORDER BY id LIMIT ?",
                (first_id, last_id, count),
            ):
                resource, rschema, service = self._resource(conn, resource_id)
                scope, sschema = self._scope(conn, scope_id)
                spans.extend(
                    StoredSpan(span, resource, rschema, scope, sschema, service)
                    for span in group_spans(body)
                )
                last = int(group_id)
        return spans, last

    def get_span(self, trace_id: bytes, span_id: bytes) -> StoredSpan | None:
        """Return one span of one trace, or None."""
        with self._reading() as conn:
            key = _trace_keys(conn, [trace_id]).get(trace_id)
            if key is None:
                return None
            rows = conn.execute(
                "SELECT body, resource_id, scope_id, span_ids FROM span_groups "
                "WHERE id >= ? AND id < ?",
                (key << _ORDINAL_BITS, (key + 1) << _ORDINAL_BITS),
            ).fetchall()
            for body, resource_id, scope_id, span_ids in rows:
                for i in range(0, len(span_ids), 8):
                    if span_ids[i : i + 8] == span_id:
                        resource, rschema, service = self._resource(conn, resource_id)
                        scope, sschema = self._scope(conn, scope_id)
                        span = group_spans(body)[i // 8]
                        return StoredSpan(span, resource, rschema, scope, sschema, service)
        return None

    def _spans_of(self, conn: sqlite3.Connection, trace_key: int) -> list[StoredSpan]:
        out: list[StoredSpan] = []
        for body, resource_id, scope_id in conn.execute(
            "SELECT body, resource_id, scope_id FROM span_groups WHERE id >= ? AND id < ?",
            (trace_key << _ORDINAL_BITS, (trace_key + 1) << _ORDINAL_BITS),
        ):
            resource, rschema, service = self._resource(conn, resource_id)
            scope, sschema = self._scope(conn, scope_id)
            out.extend(
                StoredSpan(span, resource, rschema, scope, sschema, service)
                for span in group_spans(body)
            )
        return out

    def _resource(self, conn: sqlite3.Connection, resource_id: int) -> tuple[Resource, str, str]:
        cached = self._resource_cache.get(resource_id)
        if cached is None:
            body, schema_url, service = conn.execute(
                "SELECT r.body, r.schema_url, s.name FROM resources r "
                "JOIN services s ON s.id = r.service_id WHERE r.id = ?",
                (resource_id,),
            ).fetchone()
            cached = (Resource.FromString(body), schema_url, service)
            self._resource_cache[resource_id] = cached
        return cached

    def _scope(self, conn: sqlite3.Connection, scope_id: int) -> tuple[InstrumentationScope, str]:
        cached = self._scope_cache.get(scope_id)
        if cached is None:
            body, schema_url = conn.execute(
                "SELECT body, schema_url FROM scopes WHERE id = ?", (scope_id,)
            ).fetchone()
            cached = (InstrumentationScope.FromString(body), schema_url)
            self._scope_cache[scope_id] = cached
        return cached

    def search(self, query: TraceQuery) -> list[TraceSummary]:
        """Return the newest traces matching ``query``, newest start first.

        See the module docstring for what matches.
        """
        with self._reading() as conn:
            return self._search(conn, query)

    def _search(self, conn: sqlite3.Connection, query: TraceQuery) -> list[TraceSummary]:
        limit = max(1, min(int(query.limit), 10_000))
        drivers: list[tuple[str, str, int]] = []  # (table, id column, id)
        service_id: int | None = None
        if query.service:
            row = conn.execute(
                "SELECT id FROM services WHERE name = ?", (query.service,)
            ).fetchone()
            if row is None:
                return []
            service_id = int(row[0])
            drivers.append(("trace_services", "service_id", service_id))
        if query.operation:
            if service_id is not None:
                rows = conn.execute(
                    "SELECT id FROM operations WHERE service_id = ? AND name = ?",
                    (service_id, query.operation),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT id FROM operations WHERE name = ?", (query.operation,)
                ).fetchall()
            if not rows:
                return []
            if len(rows) == 1:
                drivers.append(("trace_operations", "operation_id", int(rows[0][0])))
            else:  # the same name in several services: filter after
                pass
        unindexed: dict[str, str] = {}
        for key, value in query.tags.items():
            if key in self.tag_keys:
                row = conn.execute(
                    "SELECT id FROM tags WHERE key = ? AND value = ?", (key, str(value))
                ).fetchone()
                if row is None:
                    return []
                drivers.append(("trace_tags", "tag_id", int(row[0])))
            else:
                unindexed[key] = str(value)
        where: list[str] = []
        params: list[object] = []
        if query.operation and service_id is None:
            where.append(
                "EXISTS (SELECT 1 FROM trace_operations x JOIN operations o "
                "ON o.id = x.operation_id WHERE o.name = ? AND x.trace_key = t.key)"
            )
            params.append(query.operation)
        if query.min_duration_ns is not None:
            where.append("t.end_ns - t.start_ns >= ?")
            params.append(int(query.min_duration_ns))
        if query.max_duration_ns is not None:
            where.append("t.end_ns - t.start_ns <= ?")
            params.append(int(query.max_duration_ns))
        if query.start_min_ns is not None:
            where.append("t.start_ns >= ?")
            params.append(int(query.start_min_ns))
        if query.start_max_ns is not None:
            where.append("t.start_ns <= ?")
            params.append(int(query.start_max_ns))
        if query.errors_only:
            where.append("t.error_count > 0")

        # the driver: the search table (or the duration buckets) with the fewest rows
        buckets: tuple[int, int] | None = None
        if query.min_duration_ns is not None:
            buckets = (
                duration_bucket(int(query.min_duration_ns)),
                _MAX_BUCKET
                if query.max_duration_ns is None
                else duration_bucket(int(query.max_duration_ns)),
            )
        by_duration = buckets is not None and not drivers
        if buckets is not None and drivers:
            sizes = [self._driver_size(conn, table, col, ident) for table, col, ident in drivers]
            by_duration = self._duration_size(conn, buckets) < min(sizes)
        elif len(drivers) > 1:
            sizes = [self._driver_size(conn, table, col, ident) for table, col, ident in drivers]
        else:
            sizes = [0] * len(drivers)
        driver = drivers.pop(sizes.index(min(sizes))) if drivers and not by_duration else None
        for other_table, other_col, other_id in drivers:
            where.append(
                f"EXISTS (SELECT 1 FROM {other_table} WHERE {other_col} = ? AND trace_key = t.key)"
            )
            params.append(other_id)
        row_limit = [] if unindexed else [limit]
        limit_sql = "" if unindexed else " LIMIT ?"
        candidates: Iterable[Sequence[Any]]
        if by_duration:
            assert buckets is not None
            sql = (
                f"SELECT {_SUMMARY_COLUMNS}, t.key FROM traces t "
                "INDEXED BY traces_by_duration WHERE t.duration_bucket = ?"
                + "".join(f" AND {w}" for w in where)
                + " ORDER BY t.key DESC"
                + limit_sql
            )
            candidates = heapq.merge(
                *(
                    conn.execute(sql, [bucket, *params, *row_limit])
                    for bucket in self._buckets(conn, *buckets)
                ),
                key=lambda r: int(r[-1]),
                reverse=True,
            )
        elif driver is not None:
            table, col, ident = driver
            sql = (
                f"SELECT {_SUMMARY_COLUMNS}, t.key FROM {table} d CROSS JOIN traces t "
                f"ON t.key = d.trace_key WHERE d.{col} = ? "
                + "".join(f" AND {w}" for w in where)
                + " ORDER BY d.trace_key DESC"
                + limit_sql
            )
            candidates = conn.execute(sql, [ident, *params, *row_limit])
        else:
            sql = (
                f"SELECT {_SUMMARY_COLUMNS}, t.key FROM traces t"
                + (" WHERE " + " AND ".join(where) if where else "")
                + " ORDER BY t.key DESC"
                + limit_sql
            )
            candidates = conn.execute(sql, [*params, *row_limit])
        results: list[TraceSummary] = []
        if not unindexed:
            results = [_summary(row) for row in itertools.islice(candidates, limit)]
        else:
            budget = UNINDEXED_TAG_SCAN_SPANS
            for row in candidates:
                summary = _summary(row)
                budget -= summary.span_count
                if budget < 0:
                    logger.info("tag search stopped after %d spans", UNINDEXED_TAG_SCAN_SPANS)
                    break
                if _trace_has_tags(self._spans_of(conn, int(row[-1])), unindexed):
                    results.append(summary)
                    if len(results) >= limit:
                        break
        results.sort(key=lambda s: s.start_ns, reverse=True)
        return results

    def _driver_size(self, conn: sqlite3.Connection, table: str, col: str, ident: int) -> int:
        """Return how many traces a search table holds for one value (up to 20,000).

        Counted at most every ``_SIZE_CACHE_S`` seconds: only the order of the
        sizes matters, and counting costs a few milliseconds per value.
        """
        return self._cached_size(
            (table, ident),
            conn,
            f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {col} = ? LIMIT 20000)",
            (ident,),
        )

    def _duration_size(self, conn: sqlite3.Connection, buckets: tuple[int, int]) -> int:
        """Return how many traces are in a range of duration buckets (up to 20,000)."""
        return self._cached_size(
            ("duration", *buckets),
            conn,
            "SELECT count(*) FROM (SELECT 1 FROM traces INDEXED BY traces_by_duration "
            "WHERE duration_bucket BETWEEN ? AND ? LIMIT 20000)",
            buckets,
        )

    def _cached_size(
        self,
        cache_key: tuple[object, ...],
        conn: sqlite3.Connection,
        sql: str,
        params: tuple[object, ...],
    ) -> int:
        now = time.monotonic()
        cached = self._sizes.get(cache_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        size = int(conn.execute(sql, params).fetchone()[0])
        self._sizes[cache_key] = (now + _SIZE_CACHE_S, size)
        return size

    @staticmethod
    def _buckets(conn: sqlite3.Connection, low: int, high: int) -> list[int]:
        """Return the duration buckets from ``low`` to ``high`` that hold traces."""
        found: list[int] = []
        bucket = low - 1
        while True:
            row = conn.execute(
                "SELECT min(duration_bucket) FROM traces WHERE duration_bucket > ? "
                "AND duration_bucket <= ?",
                (bucket, high),
            ).fetchone()
            if row[0] is None:
                return found
            bucket = int(row[0])
            found.append(bucket)

    def iter_trace_ids(self) -> Iterator[bytes]:
        """Yield every stored trace id, oldest arrival first."""
        with self._reading() as conn:
            rows = conn.execute("SELECT trace_id FROM traces ORDER BY key").fetchall()
        for (trace_id,) in rows:
            yield bytes(trace_id)


class TracePieces:
    """One stored trace, read a few span groups at a time (see :meth:`SpanStore.trace_pieces`)."""

    def __init__(self, store: SpanStore, first_id: int, last_id: int, groups_per_read: int):
        self._store = store
        self._first_id = first_id
        self._last_id = last_id
        self._groups_per_read = groups_per_read

    def __iter__(self) -> Iterator[list[StoredSpan]]:
        """Yield the trace's spans in pieces, in stored order."""
        next_id = self._first_id
        while True:
            spans, last = self._store._read_groups(next_id, self._last_id, self._groups_per_read)
            if last is None:
                return
            yield spans
            next_id = last + 1


def _trace_keys(conn: sqlite3.Connection, trace_ids: Sequence[bytes]) -> dict[bytes, int]:
    """Return the keys of the stored traces among ``trace_ids``.

    The indexed traces are found in ``trace_ids``; the recent ones (above
    ``meta.indexed_key``, at most ``_INDEX_BATCH``) by a scan of their rows, newest
    first, that stops when every trace is found (the traces asked for are usually
    the newest). One read transaction: both lookups see the same snapshot.
    """
    keys: dict[bytes, int] = {}
    conn.execute("BEGIN")
    try:
        indexed = conn.execute("SELECT value FROM meta WHERE key = 'indexed_key'").fetchone()[0]
        for i in range(0, len(trace_ids), _SQL_VARS):
            chunk = list(trace_ids[i : i + _SQL_VARS])
            marks = ",".join("?" * len(chunk))
            for trace_id, key in conn.execute(
                f"SELECT trace_id, key FROM trace_ids WHERE trace_id IN ({marks})", chunk
            ):
                keys[bytes(trace_id)] = int(key)
            missing = [t for t in chunk if t not in keys]
            if missing:
                marks = ",".join("?" * len(missing))
                for trace_id, key in conn.execute(
                    f"SELECT trace_id, key FROM traces WHERE key > ? AND trace_id IN ({marks}) "
                    "ORDER BY key DESC LIMIT ?",
                    (indexed, *missing, len(missing)),
                ):
                    keys[bytes(trace_id)] = int(key)
    finally:
        conn.execute("COMMIT")
    return keys


_SUMMARY_COLUMNS = (
    "t.trace_id, t.start_ns, t.end_ns, t.span_count, t.error_count, "
    "t.root_name, t.root_service, t.has_root, t.services"
)


def _summary(row: Sequence[object]) -> TraceSummary:
    return TraceSummary(
        trace_id=bytes(row[0]),  # type: ignore[call-overload]
        start_ns=int(row[1]),  # type: ignore[call-overload]
        end_ns=int(row[2]),  # type: ignore[call-overload]
        span_count=int(row[3]),  # type: ignore[call-overload]
        error_count=int(row[4]),  # type: ignore[call-overload]
        root_name=str(row[5]),
        root_service=str(row[6]),
        has_root=bool(row[7]),
        services=json.loads(str(row[8])),
    )


def span_tag_texts(stored: StoredSpan) -> dict[str, str]:
    """Return every scalar attribute of a span and its resource as tag strings.

    Includes the derived tags ``span.kind``, ``otel.status_code`` and ``error``.
    """
    tags: dict[str, str] = {}
    for kv in stored.resource.attributes:
        text = any_value_text(kv.value)
        if text is not None:
            tags[kv.key] = text
    span = stored.span
    for kv in span.attributes:
        text = any_value_text(kv.value)
        if text is not None:
            tags[kv.key] = text
    kind_name = SPAN_KIND_NAMES.get(span.kind)
    if kind_name is not None:
        tags["span.kind"] = kind_name
    status_name = STATUS_NAMES.get(span.status.code)
    if status_name is not None:
        tags["otel.status_code"] = status_name
    if span.status.code == STATUS_ERROR:
        tags["error"] = "true"
    return tags


def _trace_has_tags(spans: Sequence[StoredSpan], wanted: Mapping[str, str]) -> bool:
    missing = dict(wanted)
    for stored in spans:
        tags = span_tag_texts(stored)
        for key in [k for k, v in missing.items() if tags.get(k) == v]:
            del missing[key]
        if not missing:
            return True
    return False


def spans_to_traces_data(spans: Iterable[StoredSpan]) -> TracesData:
    """Group stored spans back into OTLP ``TracesData`` by resource and scope."""
    data = TracesData()
    resource_index: dict[tuple[bytes, str], ResourceSpans] = {}
    scope_index: dict[tuple[bytes, str, bytes, str], ScopeSpans] = {}
    for stored in spans:
        rkey = (stored.resource.SerializeToString(deterministic=True), stored.resource_schema_url)
        rs = resource_index.get(rkey)
        if rs is None:
            rs = data.resource_spans.add()
            rs.resource.CopyFrom(stored.resource)
            rs.schema_url = stored.resource_schema_url
            resource_index[rkey] = rs
        skey = (*rkey, stored.scope.SerializeToString(deterministic=True), stored.scope_schema_url)
        ss = scope_index.get(skey)
        if ss is None:
            ss = rs.scope_spans.add()
            ss.scope.CopyFrom(stored.scope)
            ss.schema_url = stored.scope_schema_url
            scope_index[skey] = ss
        ss.spans.append(stored.span)
    return data
