"""The span store's SQLite schema, and the migrations that bring older files to it.

Each version's script runs once, in order, in one transaction per store
(:func:`migrate`); a new file runs them all.

The layout (the benchmark issue measures ingest at 1,000,000 stored spans and search
p99 at the same size):

- **Span groups, not a row per span.** The spans of one trace, resource and
  scope that arrive in one request are one ``span_groups`` row: the ids of its
  resource and scope, the 8-byte span ids, and the spans as serialized OTLP
  protobuf, a ``ScopeSpans.spans`` field (so ``ScopeSpans.FromString`` reads
  them back). The bytes are the ones the spans were sent as when the caller
  hands them over (the OTLP/HTTP receiver and the ``local`` exporter do), else
  serialized again. A demo request of 512 spans writes ~110 rows instead of
  512 (a row costs SQLite ~2-3 µs, mostly independent of its size). Attributes,
  events and links are encoded once, by protobuf, and round-trip losslessly to
  OTLP JSON, Jaeger JSON and the waterfall. Resources and scopes are stored once
  each (deduplicated by a digest of their bytes).
- **Append-ordered keys.** A trace gets an integer key the first time one of its
  spans is seen. Every search table is keyed by it, and a span group's own key
  is ``trace key << 32 | its ordinal in the trace`` (:data:`ORDINAL_BITS`), so
  inserts land at the end of the B-trees (a random 16-byte trace id as the key
  would dirty one random page per span), a trace's spans are one range of the
  table, and it needs no index (schema 1 had one on ``(trace_key, span_id)``: a
  second B-tree written per span). Duplicates (a span resent) are dropped by
  comparing with the span ids of the traces the request continues.
- **A per-trace summary** (``traces``: start, end, span count, error count, root
  operation and service, spans per service, duration bucket) is merged on write,
  so a search never groups span rows.
- **Search tables, one row per trace and value**, not per span:
  ``trace_services``, ``trace_operations`` and ``trace_tags`` (how a search uses
  them: :mod:`cvtrace.store.search`).

A file is recognised as a store by its tables (:func:`store_version`), before
anything is written to it.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from cvtrace.exceptions import CvtraceConfigError
from cvtrace.store.batches import duration_bucket, span_field

logger = logging.getLogger("cvtrace.store")

SCHEMA_VERSION = 6
"""Version of the schema this module writes (``PRAGMA user_version``)."""

ORDINAL_BITS = 32
"""A span group's id is its trace's key shifted by this, plus its ordinal in the trace."""

_SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('span_count', 0);
CREATE TABLE services (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE operations (
    id INTEGER PRIMARY KEY,
    service_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    UNIQUE (service_id, name)
);
CREATE TABLE resources (
    id INTEGER PRIMARY KEY,
    digest BLOB NOT NULL UNIQUE,
    service_id INTEGER NOT NULL,
    body BLOB NOT NULL,
    schema_url TEXT NOT NULL
);
CREATE TABLE scopes (
    id INTEGER PRIMARY KEY,
    digest BLOB NOT NULL UNIQUE,
    body BLOB NOT NULL,
    schema_url TEXT NOT NULL
);
CREATE TABLE tags (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    UNIQUE (key, value)
);
CREATE TABLE traces (
    key INTEGER PRIMARY KEY,
    trace_id BLOB NOT NULL UNIQUE,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    has_root INTEGER NOT NULL,
    root_name TEXT NOT NULL,
    root_service TEXT NOT NULL,
    services TEXT NOT NULL
);
CREATE TABLE spans (
    trace_key INTEGER NOT NULL,
    span_id BLOB NOT NULL,
    resource_id INTEGER NOT NULL,
    scope_id INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE UNIQUE INDEX spans_by_trace ON spans (trace_key, span_id);
CREATE TABLE trace_services (
    service_id INTEGER NOT NULL,
    trace_key INTEGER NOT NULL,
    PRIMARY KEY (service_id, trace_key)
) WITHOUT ROWID;
CREATE TABLE trace_operations (
    operation_id INTEGER NOT NULL,
    trace_key INTEGER NOT NULL,
    PRIMARY KEY (operation_id, trace_key)
) WITHOUT ROWID;
CREATE TABLE trace_tags (
    tag_id INTEGER NOT NULL,
    trace_key INTEGER NOT NULL,
    PRIMARY KEY (tag_id, trace_key)
) WITHOUT ROWID;
"""

_SCHEMA_V2 = """
CREATE TABLE spans_v2 (
    id INTEGER PRIMARY KEY,
    span_id BLOB NOT NULL,
    resource_id INTEGER NOT NULL,
    scope_id INTEGER NOT NULL,
    body BLOB NOT NULL
);
INSERT INTO spans_v2 (id, span_id, resource_id, scope_id, body)
    SELECT (trace_key << 32) + row_number() OVER (PARTITION BY trace_key ORDER BY span_id) - 1,
        span_id, resource_id, scope_id, body
    FROM spans INDEXED BY spans_by_trace ORDER BY trace_key, span_id;
DROP TABLE spans;
ALTER TABLE spans_v2 RENAME TO spans;
ALTER TABLE traces ADD COLUMN duration_bucket INTEGER NOT NULL DEFAULT 0;
UPDATE traces SET duration_bucket = cvtrace_duration_bucket(end_ns - start_ns);
CREATE INDEX traces_by_duration ON traces (duration_bucket, key);
"""
"""Version 2: span rows keyed by ``trace key << 32 | ordinal`` (one B-tree per
span instead of a table and an index), and traces indexed by duration bucket.
The ordinals follow the old index, so the copy needs no sort."""

_SCHEMA_V3 = """
CREATE TABLE span_groups (
    id INTEGER PRIMARY KEY,
    resource_id INTEGER NOT NULL,
    scope_id INTEGER NOT NULL,
    span_ids BLOB NOT NULL,
    body BLOB NOT NULL
);
INSERT INTO span_groups (id, resource_id, scope_id, span_ids, body)
    SELECT id, resource_id, scope_id, span_id, cvtrace_span_field(body) FROM spans ORDER BY id;
DROP TABLE spans;
"""
"""Version 3: the spans of one trace, resource and scope that arrive together are
one row (a ``ScopeSpans`` message's ``spans`` field, and their ids), not a row each."""

_SCHEMA_V4 = """
CREATE TABLE traces_v4 (
    key INTEGER PRIMARY KEY,
    trace_id BLOB NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    has_root INTEGER NOT NULL,
    root_name TEXT NOT NULL,
    root_service TEXT NOT NULL,
    services TEXT NOT NULL,
    duration_bucket INTEGER NOT NULL
);
INSERT INTO traces_v4 SELECT key, trace_id, start_ns, end_ns, span_count, error_count,
    has_root, root_name, root_service, services, cvtrace_duration_bucket(end_ns - start_ns)
    FROM traces ORDER BY key;
DROP TABLE traces;
ALTER TABLE traces_v4 RENAME TO traces;
CREATE INDEX traces_by_duration ON traces (duration_bucket, key);
CREATE TABLE trace_ids (trace_id BLOB PRIMARY KEY, key INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO trace_ids (trace_id, key) SELECT trace_id, key FROM traces ORDER BY trace_id;
INSERT INTO meta (key, value) SELECT 'indexed_key', coalesce(max(key), 0) FROM traces;
"""
"""Version 4: the trace ids are indexed in batches (``trace_ids``), not one by one
by a unique index on ``traces``; ``meta.indexed_key`` is the newest trace indexed.
Two duration buckets per power of two instead of four."""

_SCHEMA_V5 = """
CREATE TABLE calls (
    start_ns INTEGER NOT NULL,
    span_id BLOB NOT NULL,
    trace_key INTEGER NOT NULL,
    operation_id INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    parent_service_id INTEGER,
    PRIMARY KEY (start_ns, span_id)
) WITHOUT ROWID;
CREATE TABLE pending_calls (
    trace_key INTEGER NOT NULL,
    parent_span_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    start_ns INTEGER NOT NULL,
    operation_id INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    service_id INTEGER NOT NULL,
    PRIMARY KEY (trace_key, parent_span_id, span_id)
) WITHOUT ROWID
"""
"""Version 5: the call rows of the service map and RED metrics (:mod:`.calls`): ``calls``,
keyed by start time (the reads are time windows, and
spans mostly arrive in time order, so inserts land near the end), and
``pending_calls``, the spans whose parent has not arrived yet. ``parent_service_id``
is set when the parent is in another service."""

_SCHEMA_V6 = """
CREATE INDEX calls_by_trace ON calls (trace_key)
"""
"""Version 6: the call rows indexed by trace key, for retention: deleting the oldest
traces scanned the whole ``calls`` table (2.3 million rows at 10,000,000 spans) each
time. Trace keys grow with arrival, so the index is appended to."""

MIGRATIONS: dict[int, str] = {
    1: _SCHEMA_V1,
    2: _SCHEMA_V2,
    3: _SCHEMA_V3,
    4: _SCHEMA_V4,
    5: _SCHEMA_V5,
    6: _SCHEMA_V6,
}
"""Script that brings a store from version ``n - 1`` to version ``n``."""


def group_id_range(trace_key: int) -> tuple[int, int]:
    """Return the first span-group id of a trace and the first id after its groups."""
    return trace_key << ORDINAL_BITS, (trace_key + 1) << ORDINAL_BITS


STORE_TABLES = frozenset(
    {
        "meta",
        "services",
        "operations",
        "resources",
        "scopes",
        "tags",
        "traces",
        "trace_services",
        "trace_operations",
        "trace_tags",
    }
)
"""The tables every version of the schema has: what makes a file a span store."""


def store_version(user_version: int, tables: frozenset[str]) -> int | None:
    """Return the schema version of a database with these tables, if it is a store.

    Returns:
        0 for an empty database (no tables, ``user_version`` 0): a new store;
        ``user_version`` for a span store (it may be newer than
        :data:`SCHEMA_VERSION`); None for a database of another application.
    """
    if not tables and user_version == 0:
        return 0
    if user_version > 0 and tables >= STORE_TABLES:
        return user_version
    return None


def check_not_newer(version: int, path: Path) -> None:
    """Refuse a store written by a newer cvtrace.

    Raises:
        CvtraceConfigError: ``version`` is above :data:`SCHEMA_VERSION`.
    """
    if version > SCHEMA_VERSION:
        msg = (
            f"CVTRACE_LOCAL_DB: the store {path} has schema version {version}, "
            f"newer than this cvtrace reads ({SCHEMA_VERSION}); nothing was written to it. "
            "Upgrade cvtrace, or point CVTRACE_LOCAL_DB (or cvtrace view --db) at another file"
        )
        raise CvtraceConfigError(msg)


def register_functions(conn: sqlite3.Connection) -> None:
    """Define the SQL functions the migration scripts call on ``conn``."""
    conn.create_function("cvtrace_duration_bucket", 1, duration_bucket, deterministic=True)
    conn.create_function("cvtrace_span_field", 1, span_field, deterministic=True)


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the store open on ``conn`` (its writer) to :data:`SCHEMA_VERSION`.

    Raises:
        CvtraceConfigError: The file was written by a newer cvtrace.
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version == SCHEMA_VERSION:
        return
    check_not_newer(version, path)
    # temporary structures of the copies on disk: in memory they held every
    # span of the store (~440 MB for a million spans)
    conn.execute("PRAGMA temp_store = FILE")
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version == 0:  # a new store: made in one go, nothing to migrate
            logger.info("creating the span store %s (schema %d)", path, SCHEMA_VERSION)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            if version > 0:
                logger.info("migrating the span store %s to schema %d", path, target)
            for statement in MIGRATIONS[target].split(";"):
                if statement.strip():
                    conn.execute(statement)
            if target == 5 and version > 0:  # the call rows of the spans stored before
                from cvtrace.store.calls import backfill

                backfill(conn)
            conn.execute(f"PRAGMA user_version = {target}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite rolls some failures back itself (a full disk)
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.execute("PRAGMA temp_store = MEMORY")
